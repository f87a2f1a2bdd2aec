"""The 9-stage flow of one execution, as a generator of effects (sans-I/O).

A driver creates the flow with `execution_flow(...)`, then repeatedly carries out the
yielded effect and resumes the flow with `send((now, result))` — or throws the BrokerError
a broker call ended in into it, stamped with the time (`error.at`). The flow never reads a
clock, sleeps, or touches a broker or database: all of that is the driver's job, which
is why the same code runs in SimPy's virtual time and on the wall clock.

Working an order at the broker (submission, reconciliation, monitoring, expiry, slippage)
is `engine.core.orders`; stops on positions are `engine.core.protection`.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace
from datetime import timedelta
from typing import Any

from engine.core.config import ENGINE_VERSION, EngineConfig
from engine.core.costing import Costing, run_for, trade_facts
from engine.core.effects import (
    Effect,
    FetchAccount,
    FetchMargin,
    FetchPositions,
    FetchQuote,
    FetchSymbol,
)
from engine.core.events import (
    ExecutionAbandoned,
    ExecutionRequested,
    RemainderRequested,
    ValidationCompleted,
    ValidationFailed,
)
from engine.core.ids import child_client_order_id, client_order_id_for, execution_id_for
from engine.core.instruments import SymbolSpec, VolumeError, units_to_lots
from engine.core.lifecycle import Execution
from engine.core.orders import (
    Reconciled,
    Run,
    close_order,
    measure_slippage,
    monitor_until_closed,
    monitor_until_done,
    reconcile,
    submit_with_retry,
)
from engine.core.ports import (
    AccountState,
    BrokerError,
    BrokerOrderState,
    BrokerRejected,
    OrderReport,
    OrderRequest,
    Position,
)
from engine.core.positions import Levels, PositionFailure, resolve_position
from engine.core.protection import modify_stops, protect, recover_modify
from engine.core.slippage import deviation_points, reference_price
from engine.core.validation import (
    CHECK_NAMES,
    CheckFailure,
    MarketContext,
    decision_approved,
    run_market_checks,
    trading_halted,
)
from engine.core.vocabulary import (
    ExecutionRejectionReason,
    ExecutionStatus,
    OrderType,
    PartialFillPolicy,
    TradeIntent,
    utc,
)
from engine.schemas import ExecutionRequest, MarketSnapshot, RPMOutput

Flow = Generator[Effect, tuple[float, Any], Execution]

R = ExecutionRejectionReason
S = ExecutionStatus


def build_request(
    rpm: RPMOutput, idempotency_key: str, config: EngineConfig, now: float, engine_instance: str
) -> ExecutionRequest:
    """Stage 2: the request as it will be stored, with its deterministic ids."""
    trade = rpm.decision.approved_trade
    execution_id = execution_id_for(idempotency_key)
    max_slippage = trade.max_slippage_pips if trade else None
    terms: dict[str, Any] = {}
    if trade is not None:
        expires_at = trade.expires_at
        if trade.order_type is OrderType.LIMIT and expires_at is None:
            expires_at = utc(now) + timedelta(seconds=config.order_timeout_seconds)
        if expires_at is not None:
            # Good till a whole second: MT5 takes an expiration in whole seconds only, and a
            # limit must end at the same instant at every broker.
            expires_at = expires_at.replace(microsecond=0)
        terms = {
            "intent": trade.intent,
            "position_id": trade.position_id,
            "order_type": trade.order_type,
            "limit_price": trade.limit_price,
            "expires_at": expires_at,
            "stop_loss": trade.stop_loss,
            "stop_loss_pips": trade.stop_loss_pips,
            "take_profit": trade.take_profit,
            "take_profit_pips": trade.take_profit_pips,
            "partial_fills": trade.partial_fills or config.partial_fills,
        }
    return ExecutionRequest(
        execution_id=execution_id,
        idempotency_key=idempotency_key,
        client_order_id=client_order_id_for(execution_id),
        symbol=trade.symbol if trade else None,
        direction=trade.direction if trade else None,
        intended_units=trade.position_units if trade else 0,
        max_slippage_pips=max_slippage
        if max_slippage is not None
        else config.default_max_slippage_pips,
        decision=rpm.model_dump(mode="json"),
        received_at=utc(now),
        engine_version=ENGINE_VERSION,
        config_version=config.version,
        engine_instance=engine_instance,
        **terms,
    )


def levels_of(request: ExecutionRequest) -> Levels:
    return Levels(
        request.stop_loss, request.stop_loss_pips, request.take_profit, request.take_profit_pips
    )


def execution_flow(
    rpm: RPMOutput,
    request: ExecutionRequest,
    config: EngineConfig,
    started_at: float,
    engine_halted: bool = False,
    costing: Costing | None = None,
) -> Flow:
    """Stages 1-9 for one decision; returns the Execution in its final (or deferred) state.
    With `costing`, a validated order's cost estimate is recorded before it is sent."""
    run = run_for(Execution(request.execution_id), config, started_at, costing)
    eid = request.execution_id
    run.now, _ = yield run.record(ExecutionRequested(eid, run.now, request))

    failure = decision_approved(rpm) or trading_halted(rpm, engine_halted)
    if failure is not None:
        yield run.record(
            ValidationFailed(eid, run.now, failure.check, failure.reason, failure.detail)
        )
        return run.execution

    try:
        ctx = yield from _market_context(run, request)
    except BrokerError as error:
        failure = _unreachable(error)
    else:
        failure = run_market_checks(ctx, config)
    if failure is not None:
        yield run.record(
            ValidationFailed(eid, run.now, failure.check, failure.reason, failure.detail)
        )
        return run.execution
    assert ctx.snapshot is not None and ctx.spec is not None  # the checks passed
    assert ctx.lots is not None and request.direction is not None and request.symbol is not None

    deviation = (
        deviation_points(request.max_slippage_pips, ctx.spec)
        if request.max_slippage_pips is not None and request.order_type is OrderType.MARKET
        else None
    )
    run.now, _ = yield run.record(
        ValidationCompleted(
            eid, run.now, CHECK_NAMES, ctx.lots, ctx.snapshot.bid, ctx.snapshot.ask, deviation
        )
    )
    if costing is not None:
        trade = trade_facts(run.execution)
        assert trade is not None  # validated: its arrival quote is known
        features = costing.arrived(trade)
        if request.intent is not TradeIntent.MODIFY_STOPS:  # a stop change sends no order
            yield run.record(costing.estimated(eid, run.now, features))
    if request.intent is TradeIntent.MODIFY_STOPS:
        assert isinstance(ctx.position, Position)
        yield from modify_stops(run, request, levels_of(request), ctx.position, ctx.spec)
        return run.execution
    order = _order_for(request, ctx, deviation)
    report = yield from submit_with_retry(run, order)
    if report is None:
        return run.execution
    yield from _work_order(run, order, report, ctx.spec)
    reference = reference_price(order.direction, ctx.snapshot.bid, ctx.snapshot.ask)
    yield from measure_slippage(run, order.direction, reference, ctx.spec.pip)
    if request.protected:
        yield from protect(run, request, levels_of(request), order, ctx.spec)
    return run.execution


def _order_for(
    request: ExecutionRequest, ctx: MarketContext, deviation: int | None
) -> OrderRequest:
    """The order the decision becomes: market or limit, opening or closing a named
    position, with its stops attached where they are prices and the venue allows it."""
    assert ctx.snapshot is not None and ctx.spec is not None and ctx.lots is not None
    assert request.direction is not None and request.symbol is not None
    limit = request.order_type is OrderType.LIMIT
    price = reference_price(request.direction, ctx.snapshot.bid, ctx.snapshot.ask)
    closes = request.intent in (TradeIntent.REDUCE, TradeIntent.CLOSE)
    levels = levels_of(request)
    attach = request.protected and levels.as_prices and ctx.spec.stops_on_order
    return OrderRequest(
        client_order_id=request.client_order_id,
        symbol=request.symbol,
        direction=request.direction,
        units=request.intended_units,
        lots=ctx.lots,
        price=request.limit_price if limit and request.limit_price is not None else price,
        deviation_points=deviation,
        order_type=request.order_type,
        limit_price=request.limit_price,
        expires_at=request.expires_at.timestamp() if limit and request.expires_at else None,
        position_id=ctx.position.position_id if isinstance(ctx.position, Position) else None,
        reduce_only=closes,
        stop_loss=request.stop_loss if attach else None,
        take_profit=request.take_profit if attach else None,
    )


def _work_order(
    run: Run, order: OrderRequest, report: OrderReport, spec: SymbolSpec
) -> Generator[Effect, Any, None]:
    """Follow the order to its end; under the `complete` policy send what a partial fill
    left as child orders — each only once the previous one is closed at the broker, so
    the execution can never be filled above its intended units."""
    execution, config = run.execution, run.config
    while True:
        assert execution.last_attempt_at is not None
        if order.order_type is OrderType.LIMIT and order.expires_at is not None:
            deadline, why = order.expires_at, f"good till {utc(order.expires_at)}"
        else:
            deadline = execution.last_attempt_at + config.order_timeout_seconds
            why = f"not filled within {config.order_timeout_seconds:g}s"
        closed = yield from monitor_until_closed(run, report, deadline, why)
        if closed is None:
            return
        child = yield from _remainder(run, order, closed, spec)
        if child is None:
            yield from close_order(run, closed)
            return
        yield run.record(
            RemainderRequested(
                execution.execution_id,
                run.now,
                execution.child_orders + 1,
                child.client_order_id,
                child.units,
                f"order {closed.order_id} closed {closed.state.value} with "
                f"{execution.executed_units} of {execution.intended_units} units",
            )
        )
        order = child
        sent = yield from submit_with_retry(run, order)
        if sent is None:
            return
        report = sent


def _remainder(
    run: Run, order: OrderRequest, closed: OrderReport, spec: SymbolSpec
) -> Generator[Effect, Any, OrderRequest | None]:
    """The child order for what a partial fill left, when the policy asks for one and its
    limits (orders, deadline) allow; priced on a fresh quote, as the first was."""
    execution, config = run.execution, run.config
    request = execution.request
    assert request is not None and execution.submitted_at is not None
    if (
        request.partial_fills is not PartialFillPolicy.COMPLETE
        or execution.executed_units == 0
        or execution.remaining_units <= 0
        or closed.state is BrokerOrderState.EXPIRED
        or execution.child_orders >= config.max_remainder_orders
        or run.now >= execution.submitted_at + config.remainder_deadline_seconds
    ):
        return None
    try:
        lots = units_to_lots(execution.remaining_units, spec)
    except VolumeError:
        return None  # a remainder the broker cannot size exactly is left, never rounded
    price = order.price
    if order.order_type is OrderType.MARKET:
        try:
            snapshot: MarketSnapshot | None = yield from run.ask(FetchQuote(order.symbol))
        except BrokerError:
            return None
        if snapshot is None:
            return None
        price = reference_price(order.direction, snapshot.bid, snapshot.ask)
    return replace(
        order,
        client_order_id=child_client_order_id(request.client_order_id, execution.child_orders + 1),
        units=execution.remaining_units,
        lots=lots,
        price=price,
    )


def recovery_flow(
    execution: Execution, config: EngineConfig, started_at: float, costing: Costing | None = None
) -> Flow:
    """Settle an execution that a stop (crash, restart) or a lost reply left unfinished.

    The broker is asked about the order by its client order id; what it has is adopted and
    followed to the end. Nothing is ever sent: an order the broker never got is abandoned,
    because a decision that was not executed then must not be executed late. One that
    ended filled just before the stop, its stops not yet set, gets them now.
    """
    run = run_for(execution, config, started_at, costing)
    request = execution.request
    assert request is not None and (not execution.is_terminal or execution.owes_protection)
    eid, deadline = execution.execution_id, started_at + config.order_timeout_seconds
    if execution.owes_protection:
        yield from _after_the_fill(run, request)
        return execution
    if execution.status is S.PENDING:
        yield run.record(
            ExecutionAbandoned(
                eid, run.now, R.INTERRUPTED, "stopped while validating; nothing was sent"
            )
        )
        return execution
    if request.intent is TradeIntent.MODIFY_STOPS:
        yield from recover_modify(run, request, levels_of(request))
        return execution
    if execution.status is S.SUBMITTED and execution.broker_order_id is not None:
        report = OrderReport(
            execution.broker_order_id,
            execution.client_order_id,
            BrokerOrderState.WORKING,
            execution.remaining_units,
        )
    else:
        sent_at = execution.last_attempt_at if execution.last_attempt_at is not None else run.now
        reconciliation = yield from reconcile(
            run, execution.client_order_id, sent_at + config.absence_proof_seconds, deadline
        )
        if reconciliation.outcome is Reconciled.UNRESOLVED:
            return execution
        if reconciliation.report is None:
            yield run.record(
                ExecutionAbandoned(
                    eid, run.now, R.INTERRUPTED, "stopped before the order reached the broker"
                )
            )
            if execution.executed_units > 0:  # a child order's: what earlier orders filled
                yield from _after_the_fill(run, request)  # stands, and is owed its stops
            return execution
        report = reconciliation.report
    yield from monitor_until_done(run, report, deadline, "not settled by recovery's deadline")
    if execution.executed_units > 0:
        yield from _after_the_fill(run, request)
    return execution


def _after_the_fill(run: Run, request: ExecutionRequest) -> Generator[Effect, Any, None]:
    """What recovery still owes an execution whose order filled before the stop: its
    slippage, if not yet measured, and the stops upstream asked for, if not yet set (the
    position stood bare meanwhile: the gap since the fill goes on the record)."""
    execution = run.execution
    assert request.direction is not None and request.symbol is not None
    try:
        spec = yield from run.ask(FetchSymbol(request.symbol))
    except BrokerError:
        spec = None  # what is owed waits for a broker that answers: the next recovery
    if spec is None:
        return
    bid, ask = execution.arrival_bid, execution.arrival_ask
    if execution.slippage_pips is None and bid is not None and ask is not None:
        price = reference_price(request.direction, bid, ask)
        yield from measure_slippage(run, request.direction, price, spec.pip)
    if execution.stops_owed:
        yield from protect(run, request, levels_of(request), None, spec)


def _market_context(run: Run, request: ExecutionRequest) -> Generator[Effect, Any, MarketContext]:
    """Fetch what the market checks judge; a broker call that fails raises its error."""
    assert request.symbol is not None and request.direction is not None
    symbol, direction, units = request.symbol, request.direction, request.intended_units
    spec: SymbolSpec | None = yield from run.ask(FetchSymbol(symbol))
    snapshot: MarketSnapshot | None = yield from run.ask(FetchQuote(symbol))

    lots: float | None = None
    volume_problem: str | None = None
    if spec is not None:
        try:
            lots = units_to_lots(units, spec)
        except VolumeError as exc:
            volume_problem = str(exc)

    account: AccountState | None = None
    margin: float | None = None
    position: Position | PositionFailure | None = None
    limit = request.limit_price if request.order_type is OrderType.LIMIT else None
    if lots is not None and snapshot is not None:
        account = yield from run.ask(FetchAccount())
        if request.intent is TradeIntent.OPEN:
            price = limit or reference_price(direction, snapshot.bid, snapshot.ask)
            margin = yield from run.ask(FetchMargin(symbol, direction, lots, price))
        else:
            positions: tuple[Position, ...] = yield from run.ask(FetchPositions(symbol))
            position = resolve_position(
                request.intent,
                symbol,
                direction,
                units,
                positions,
                account.hedging,
                request.position_id,
            )
    return MarketContext(
        symbol,
        direction,
        units,
        run.now,
        spec,
        snapshot,
        lots,
        volume_problem,
        account,
        margin,
        intent=request.intent,
        position=position,
        order_type=request.order_type,
        limit_price=limit,
        expires_at=request.expires_at.timestamp() if request.expires_at else None,
        levels=levels_of(request),
    )


def _unreachable(error: BrokerError) -> CheckFailure:
    """A broker that refused a pre-trade question names its own reason; one that could
    not be reached is a network failure."""
    if isinstance(error, BrokerRejected):
        return CheckFailure("broker_answer", error.reason, f"broker refused: {error.detail}")
    return CheckFailure("broker_reachable", R.NETWORK_ERROR, f"broker could not be asked: {error}")
