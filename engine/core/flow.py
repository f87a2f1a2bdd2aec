"""The 9-stage flow of one execution, as a generator of effects (sans-I/O).

A driver creates the flow with `execution_flow(...)`, then repeatedly carries out the
yielded effect and resumes the flow with `send((now, result))` — or throws the BrokerError
a broker call ended in into it, stamped with the time (`error.at`). The flow never reads a
clock, sleeps, or touches a broker or database: all of that is the driver's job, which
is why the same code runs in SimPy's virtual time and on the wall clock.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from enum import Enum
from typing import Any

from engine.core.config import ENGINE_VERSION, EngineConfig
from engine.core.effects import (
    BrokerCall,
    CancelOrder,
    Effect,
    FetchAccount,
    FetchMargin,
    FetchQuote,
    FetchSymbol,
    FindOrder,
    PlaceOrder,
    QueryOrder,
    Record,
    Sleep,
)
from engine.core.events import (
    CancelRequested,
    ExecutionAbandoned,
    ExecutionEvent,
    ExecutionRequested,
    OrderAcknowledged,
    OrderClosed,
    OrderExpired,
    OrderFilled,
    OrderProvenAbsent,
    OrderRejected,
    ReconciliationAttempted,
    ReconciliationDeferred,
    SlippageBoundBreached,
    SlippageMeasured,
    SubmissionAbandoned,
    SubmissionAttempted,
    SubmissionFailed,
    SubmissionUnanswered,
    ValidationCompleted,
    ValidationFailed,
)
from engine.core.ids import client_order_id_for, execution_id_for
from engine.core.instruments import SymbolSpec, VolumeError, units_to_lots
from engine.core.lifecycle import Execution
from engine.core.ports import (
    AccountState,
    BrokerError,
    BrokerOrderState,
    BrokerRejected,
    OrderReport,
    OrderRequest,
    RequestNotSent,
)
from engine.core.slippage import classify, deviation_points, reference_price, slippage_pips
from engine.core.validation import (
    CHECK_NAMES,
    CheckFailure,
    MarketContext,
    decision_approved,
    run_market_checks,
    trading_halted,
)
from engine.core.vocabulary import Direction, ExecutionRejectionReason, ExecutionStatus, utc
from engine.schemas import ExecutionRequest, MarketSnapshot, RPMOutput

Flow = Generator[Effect, tuple[float, Any], Execution]

R = ExecutionRejectionReason
S = ExecutionStatus


class Reconciled(Enum):
    FOUND = "found"  # the broker has the order: adopt it
    ABSENT = "absent"  # the broker proved it has no such order
    UNRESOLVED = "unresolved"  # the broker could not be asked until the deadline


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What asking the broker for an order by its client order id established."""

    outcome: Reconciled
    report: OrderReport | None = None  # the order, when FOUND


def build_request(
    rpm: RPMOutput, idempotency_key: str, config: EngineConfig, now: float, engine_instance: str
) -> ExecutionRequest:
    """Stage 2: the request as it will be stored, with its deterministic ids."""
    trade = rpm.decision.approved_trade
    execution_id = execution_id_for(idempotency_key)
    max_slippage = trade.max_slippage_pips if trade else None
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
    )


class _Run:
    """The state one flow carries between yields: the execution and the last known time."""

    __slots__ = ("config", "execution", "now")

    def __init__(self, execution: Execution, config: EngineConfig, now: float) -> None:
        self.execution = execution
        self.config = config
        self.now = now

    def record(self, event: ExecutionEvent) -> Record:
        self.execution.apply(event)
        return Record(event)

    def ask(self, call: BrokerCall) -> Generator[Effect, Any, Any]:
        """Make a broker call: its answer, or its BrokerError raised here — the flow's
        clock moving on to when the driver saw either."""
        try:
            self.now, answer = yield call
        except BrokerError as error:
            self.now = error.at
            raise
        return answer


def execution_flow(
    rpm: RPMOutput,
    request: ExecutionRequest,
    config: EngineConfig,
    started_at: float,
    engine_halted: bool = False,
) -> Flow:
    """Stages 1-9 for one decision; returns the Execution in its final (or deferred) state."""
    run = _Run(Execution(request.execution_id), config, started_at)
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
        if request.max_slippage_pips is not None
        else None
    )
    run.now, _ = yield run.record(
        ValidationCompleted(
            eid, run.now, CHECK_NAMES, ctx.lots, ctx.snapshot.bid, ctx.snapshot.ask, deviation
        )
    )
    order = OrderRequest(
        client_order_id=request.client_order_id,
        symbol=request.symbol,
        direction=request.direction,
        units=request.intended_units,
        lots=ctx.lots,
        price=reference_price(request.direction, ctx.snapshot.bid, ctx.snapshot.ask),
        deviation_points=deviation,
    )
    report = yield from _submit_with_retry(run, order)
    if report is None:
        return run.execution
    assert run.execution.submitted_at is not None
    yield from _monitor_until_done(
        run, report, run.execution.submitted_at + config.order_timeout_seconds
    )
    yield from _measure_slippage(run, order.direction, order.price, ctx.spec.pip)
    return run.execution


def recovery_flow(execution: Execution, config: EngineConfig, started_at: float) -> Flow:
    """Settle an execution that a stop (crash, restart) or a lost reply left open.

    The broker is asked about the order by its client order id; what it has is adopted and
    followed to the end. Nothing is ever sent: an order the broker never got is abandoned,
    because a decision that was not executed then must not be executed late.
    """
    run = _Run(execution, config, started_at)
    request = execution.request
    assert request is not None and not execution.is_terminal
    eid, deadline = execution.execution_id, started_at + config.order_timeout_seconds
    if execution.status is S.PENDING:
        yield run.record(
            ExecutionAbandoned(
                eid, run.now, R.INTERRUPTED, "stopped while validating; nothing was sent"
            )
        )
        return execution
    if execution.status is S.SUBMITTED and execution.broker_order_id is not None:
        report = OrderReport(
            execution.broker_order_id,
            request.client_order_id,
            BrokerOrderState.WORKING,
            request.intended_units,
        )
    else:
        sent_at = execution.last_attempt_at if execution.last_attempt_at is not None else run.now
        reconciliation = yield from reconcile(
            run, request.client_order_id, sent_at + config.absence_proof_seconds, deadline
        )
        if reconciliation.outcome is Reconciled.UNRESOLVED:
            return execution
        if reconciliation.report is None:
            yield run.record(
                ExecutionAbandoned(
                    eid, run.now, R.INTERRUPTED, "stopped before the order reached the broker"
                )
            )
            return execution
        report = reconciliation.report
    yield from _monitor_until_done(run, report, deadline)
    if execution.arrival_bid is not None and execution.arrival_ask is not None:
        assert request.direction is not None and request.symbol is not None
        price = reference_price(request.direction, execution.arrival_bid, execution.arrival_ask)
        try:
            spec = yield from run.ask(FetchSymbol(request.symbol))
        except BrokerError:
            spec = None  # slippage waits for a broker that answers
        if spec is not None:
            yield from _measure_slippage(run, request.direction, price, spec.pip)
    return execution


def _market_context(
    run: _Run, request: ExecutionRequest
) -> Generator[Effect, Any, MarketContext]:
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
    if lots is not None and snapshot is not None:
        account = yield from run.ask(FetchAccount())
        price = reference_price(direction, snapshot.bid, snapshot.ask)
        margin = yield from run.ask(FetchMargin(symbol, direction, lots, price))
    return MarketContext(
        symbol, direction, units, run.now, spec, snapshot, lots, volume_problem, account, margin
    )


def _unreachable(error: BrokerError) -> CheckFailure:
    """A broker that refused a pre-trade question names its own reason; one that could
    not be reached is a network failure."""
    if isinstance(error, BrokerRejected):
        return CheckFailure("broker_answer", error.reason, f"broker refused: {error.detail}")
    return CheckFailure("broker_reachable", R.NETWORK_ERROR, f"broker could not be asked: {error}")


def _submit_with_retry(
    run: _Run, order: OrderRequest
) -> Generator[Effect, Any, OrderReport | None]:
    """Stage 4. Resend only what provably never became an order (Principle 3)."""
    eid, config = run.execution.execution_id, run.config
    deadline = run.now + config.order_timeout_seconds
    attempt = 0
    while True:
        attempt += 1
        run.now, _ = yield run.record(SubmissionAttempted(eid, run.now, attempt))
        sent_at = run.now
        try:
            report: OrderReport = yield from run.ask(PlaceOrder(order))
        except BrokerRejected as rejected:
            yield run.record(
                OrderRejected(eid, run.now, rejected.reason, rejected.detail, rejected.code)
            )
            return None
        except RequestNotSent as failure:
            yield run.record(SubmissionFailed(eid, run.now, attempt, str(failure)))
            last_error: BrokerError = failure
        except BrokerError as unanswered:  # outcome unknown: reconcile before anything else
            yield run.record(SubmissionUnanswered(eid, run.now, attempt, str(unanswered)))
            reconciliation = yield from reconcile(
                run, order.client_order_id, sent_at + config.absence_proof_seconds, deadline
            )
            if reconciliation.outcome is Reconciled.FOUND:
                return reconciliation.report
            if reconciliation.outcome is Reconciled.UNRESOLVED:
                return None
            last_error = unanswered
        else:
            yield run.record(OrderAcknowledged(eid, run.now, report.order_id))
            return report
        if attempt >= config.max_submission_attempts:
            yield run.record(
                SubmissionAbandoned(
                    eid,
                    run.now,
                    R.NETWORK_ERROR,
                    f"no attempt of {attempt} reached the broker; last error: {last_error}",
                )
            )
            return None
        run.now, _ = yield Sleep(config.retry_backoff_seconds)


def reconcile(
    run: _Run, client_order_id: str, proof_after: float, deadline: float
) -> Generator[Effect, Any, Reconciliation]:
    """Ask the broker for our order by its tag until it answers or the deadline passes.

    A "not found" before `proof_after` proves nothing — the server may still execute the
    request — so the engine asks again; past the deadline the outcome stays unknown."""
    eid, backoff = run.execution.execution_id, run.config.retry_backoff_seconds
    lookup = 0
    while True:
        lookup += 1
        run.now, _ = yield run.record(
            ReconciliationAttempted(eid, run.now, f"lookup {lookup} of {client_order_id}")
        )
        try:
            found: OrderReport | None = yield from run.ask(
                FindOrder(client_order_id, run.execution.submitted_at)
            )
        except BrokerError as unreachable:
            unresolved = f"broker unreachable until the deadline: {unreachable}"
        else:
            if found is not None:
                yield run.record(
                    OrderAcknowledged(eid, run.now, found.order_id, via_reconciliation=True)
                )
                return Reconciliation(Reconciled.FOUND, found)
            if run.now >= proof_after:
                yield run.record(
                    OrderProvenAbsent(eid, run.now, f"broker has no order tagged {client_order_id}")
                )
                return Reconciliation(Reconciled.ABSENT)
            unresolved = f"not found yet; the server may still execute it until {utc(proof_after)}"
            yield run.record(
                ReconciliationAttempted(eid, run.now, f"lookup {lookup}: {unresolved}")
            )
        if run.now + backoff > deadline:
            yield run.record(ReconciliationDeferred(eid, run.now, unresolved))
            return Reconciliation(Reconciled.UNRESOLVED)
        run.now, _ = yield Sleep(backoff)


def _monitor_until_done(
    run: _Run, report: OrderReport, deadline: float
) -> Generator[Effect, Any, None]:
    """Stages 5 and 7: poll until the broker closes the order, or expire it and cancel."""
    eid, config, execution = run.execution.execution_id, run.config, run.execution
    yield from _apply_fills(run, report)
    while report.state is BrokerOrderState.WORKING and not execution.is_terminal:
        if run.now >= deadline:
            yield from _expire(run, report.order_id)
            return
        run.now, _ = yield Sleep(min(config.poll_interval_seconds, max(deadline - run.now, 0.0)))
        try:
            report = yield from run.ask(QueryOrder(report.order_id))
        except BrokerError:
            continue  # asked again at the next poll
        yield from _apply_fills(run, report)
    if not execution.is_terminal or report.state is not BrokerOrderState.WORKING:
        yield run.record(OrderClosed(eid, run.now, report.state))


def _expire(run: _Run, order_id: str) -> Generator[Effect, Any, None]:
    """Cancel what is left; an order is only called expired once the broker confirms."""
    eid, config, execution = run.execution.execution_id, run.config, run.execution
    yield run.record(
        CancelRequested(eid, run.now, f"not filled within {config.order_timeout_seconds:g}s")
    )
    result: OrderReport | BrokerError | None = None
    for _ in range(config.max_submission_attempts):
        try:
            result = yield from run.ask(CancelOrder(order_id))
        except BrokerError:
            # A refused cancel often means the order completed meanwhile: look before retrying.
            try:
                result = yield from run.ask(QueryOrder(order_id))
            except BrokerError as error:
                result = error
        if isinstance(result, OrderReport) and result.state is not BrokerOrderState.WORKING:
            yield from _apply_fills(run, result)
            if execution.is_terminal:  # it filled while we were cancelling
                yield run.record(OrderClosed(eid, run.now, result.state))
            else:
                yield run.record(OrderExpired(eid, run.now, "timed out; remainder cancelled"))
            return
        run.now, _ = yield Sleep(config.retry_backoff_seconds)
    yield run.record(
        OrderExpired(eid, run.now, f"timed out; cancel NOT confirmed by the broker: {result}")
    )


def _apply_fills(run: _Run, report: OrderReport) -> Generator[Effect, Any, None]:
    execution = run.execution
    for fill in report.fills:
        if fill.fill_id not in execution.fill_ids:
            event = OrderFilled(
                execution.execution_id, run.now, fill.fill_id, fill.units, fill.price, fill.time
            )
            yield run.record(event)


def _measure_slippage(
    run: _Run, direction: Direction, reference: float, pip: float
) -> Generator[Effect, Any, None]:
    execution = run.execution
    average = execution.average_fill_price
    if average is None or execution.slippage_pips is not None:
        return
    pips = slippage_pips(direction, reference, average, pip)
    quality = classify(pips, run.config.slippage_bands)
    yield run.record(
        SlippageMeasured(execution.execution_id, run.now, average, reference, pips, quality)
    )
    bound = execution.request.max_slippage_pips if execution.request is not None else None
    if bound is not None and pips > bound:
        yield run.record(SlippageBoundBreached(execution.execution_id, run.now, pips, bound))
