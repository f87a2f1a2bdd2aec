"""Stop-loss and take-profit: on the positions an execution opened, and as a decision of
their own (modify_stops).

Upstream's stops travel with the order when they are prices and the venue allows it (MT5:
`sl`/`tp` on the deal request, where the symbol's order_mode has the SL and TP flags); as
pips from the fill they can only be set once the fill is known, right after it (MT5
TRADE_ACTION_SLTP) — and the time the position stood unprotected is recorded. A position the
broker would not protect is recorded as such (ProtectionFailed), loudly: the engine never
closes it on its own, since that would be a decision upstream did not take.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from engine.core.effects import (
    Effect,
    FetchExits,
    FetchPositions,
    FetchSymbol,
    SetProtection,
    Sleep,
)
from engine.core.events import (
    ExecutionAbandoned,
    OrderRejected,
    ProtectionFailed,
    ProtectionSet,
    SubmissionAbandoned,
    SubmissionAttempted,
    SubmissionFailed,
)
from engine.core.instruments import SymbolSpec
from engine.core.orders import Run
from engine.core.ports import BrokerError, BrokerRejected, OrderRequest, Position, PositionExit
from engine.core.positions import Levels
from engine.core.vocabulary import ExecutionRejectionReason
from engine.schemas import ExecutionRequest

R = ExecutionRejectionReason


def protect(
    run: Run,
    request: ExecutionRequest,
    levels: Levels,
    order: OrderRequest | None,
    spec: SymbolSpec,
) -> Generator[Effect, Any, None]:
    """Give every position the execution opened the stops upstream asked for, each one
    whose outcome is not yet on record. Without the order (recovery after a crash between
    the fill and the stops) they are set whether or not they travelled with it: setting
    levels a position already has is no change."""
    execution = run.execution
    average = execution.average_fill_price
    if average is None or request.direction is None:
        return  # nothing filled: no position to protect
    stop_loss, take_profit = levels.prices(request.direction, average, spec)
    attached = order is not None and (order.stop_loss is not None or order.take_profit is not None)
    if execution.position_ids:
        positions = execution.unprotected_positions_owed
    else:
        tagged = yield from _positions_tagged(run, request)
        if tagged is None:
            return  # the broker could not be asked: owed still, to the next recovery
        if not tagged:
            # The broker answered and holds no position of ours: closed meanwhile. An
            # outcome, on the record once, not a question asked at every restart.
            yield run.record(
                ProtectionFailed(
                    execution.execution_id,
                    run.now,
                    "",
                    R.NO_POSITION,
                    "no open position of this execution at the broker to set stops on",
                )
            )
            return
        positions = tagged
    for position_id in positions:
        if attached:
            yield run.record(
                ProtectionSet(
                    execution.execution_id, run.now, position_id, stop_loss, take_profit, True, 0.0
                )
            )
        else:
            yield from _set(run, position_id, stop_loss, take_profit)


def exits_since(since: float) -> Generator[Effect, Any, tuple[PositionExit, ...]]:
    """The broker's exits of positions our orders opened, since `since` (driver time)."""
    _, exits = yield FetchExits(since)
    return tuple(exits)


def _positions_tagged(
    run: Run, request: ExecutionRequest
) -> Generator[Effect, Any, list[str] | None]:
    """The positions opened by this execution's orders, for a broker whose fills do not
    name their position: found by the tag, as reconciliation finds orders; None when the
    broker cannot be asked."""
    try:
        positions: tuple[Position, ...] = yield from run.ask(FetchPositions(request.symbol))
    except BrokerError:
        return None
    tag = request.client_order_id
    return [p.position_id for p in positions if p.client_order_id.startswith(tag)]


def _set(
    run: Run, position_id: str, stop_loss: float | None, take_profit: float | None
) -> Generator[Effect, Any, None]:
    """Set the stops on one position after its fill. Setting the same levels twice is
    harmless (MT5 answers 10025 NO_CHANGES), so an unanswered request is simply repeated."""
    execution, config = run.execution, run.config
    eid = execution.execution_id
    last: BrokerError | None = None
    for attempt in range(config.max_submission_attempts):
        if attempt:
            run.now, _ = yield Sleep(config.retry_backoff_seconds)
        try:
            yield from run.ask(SetProtection(position_id, stop_loss, take_profit))
        except BrokerRejected as refused:
            yield run.record(
                ProtectionFailed(eid, run.now, position_id, refused.reason, refused.detail)
            )
            return
        except BrokerError as error:
            last = error
            continue
        filled_at = execution.last_fill_at if execution.last_fill_at is not None else run.now
        gap = max(run.now - filled_at, 0.0)
        yield run.record(
            ProtectionSet(eid, run.now, position_id, stop_loss, take_profit, False, gap)
        )
        return
    yield run.record(
        ProtectionFailed(
            eid,
            run.now,
            position_id,
            R.NETWORK_ERROR,
            f"stops not confirmed after {config.max_submission_attempts} attempts: {last}",
        )
    )


def _target_levels(
    levels: Levels, position: Position, spec: SymbolSpec
) -> tuple[float | None, float | None]:
    """A modify_stops decision's levels: pips count from the position's open price; a level
    the decision does not give stays as it is."""
    stop_loss, take_profit = levels.prices(position.direction, position.open_price, spec)
    if stop_loss is None:
        stop_loss = position.stop_loss
    if take_profit is None:
        take_profit = position.take_profit
    return stop_loss, take_profit


def modify_stops(
    run: Run, request: ExecutionRequest, levels: Levels, position: Position, spec: SymbolSpec
) -> Generator[Effect, Any, None]:
    """A modify_stops decision: set the position's stops, with the submission's evidence
    (attempts, refusals) and the same retry rule as an order — repeated freely, since
    setting the same stops twice changes nothing."""
    execution, config = run.execution, run.config
    eid = execution.execution_id
    stop_loss, take_profit = _target_levels(levels, position, spec)
    last: BrokerError | None = None
    for attempt in range(1, config.max_submission_attempts + 1):
        run.now, _ = yield run.record(SubmissionAttempted(eid, run.now, attempt))
        try:
            yield from run.ask(SetProtection(position.position_id, stop_loss, take_profit))
        except BrokerRejected as refused:
            yield run.record(
                OrderRejected(eid, run.now, refused.reason, refused.detail, refused.code)
            )
            return
        except BrokerError as error:
            last = error
            yield run.record(SubmissionFailed(eid, run.now, attempt, str(error)))
            run.now, _ = yield Sleep(config.retry_backoff_seconds)
            continue
        yield run.record(
            ProtectionSet(eid, run.now, position.position_id, stop_loss, take_profit, False, 0.0)
        )
        return
    yield run.record(
        SubmissionAbandoned(
            eid,
            run.now,
            R.NETWORK_ERROR,
            f"stops not confirmed after {config.max_submission_attempts} attempts: {last}",
        )
    )


def recover_modify(
    run: Run, request: ExecutionRequest, levels: Levels
) -> Generator[Effect, Any, None]:
    """Settle a stop change a stop (crash) interrupted: the broker's position says whether
    it took the new levels. Nothing is sent again."""
    eid = run.execution.execution_id
    assert request.symbol is not None
    try:
        spec: SymbolSpec | None = yield from run.ask(FetchSymbol(request.symbol))
        positions: tuple[Position, ...] = yield from run.ask(FetchPositions(request.symbol))
    except BrokerError as error:
        detail = f"the position could not be read: {error}"
    else:
        wanted = request.position_id
        found = next((p for p in positions if wanted in (None, p.position_id)), None)
        detail = "the position is no longer open"
        if found is not None and spec is not None:
            if _target_levels(levels, found, spec) == (found.stop_loss, found.take_profit):
                yield run.record(
                    ProtectionSet(
                        eid,
                        run.now,
                        found.position_id,
                        found.stop_loss,
                        found.take_profit,
                        False,
                        0.0,
                    )
                )
                return
            detail = f"the position keeps sl={found.stop_loss}, tp={found.take_profit}"
    yield run.record(
        ExecutionAbandoned(
            eid, run.now, R.INTERRUPTED, f"stopped before the stops were confirmed; {detail}"
        )
    )
