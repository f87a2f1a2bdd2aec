"""Working one order at the broker: submission with retry, reconciliation of a lost
reply, monitoring until the broker closes it, expiry and cancellation, and slippage.

Shared by the 9-stage flow (`engine.core.flow`), recovery and protection; sans-I/O like
them: every broker call and wait is an effect the driver carries out.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from enum import Enum
from typing import Any

from engine.core.config import EngineConfig
from engine.core.effects import (
    BrokerCall,
    CancelOrder,
    Effect,
    FindOrder,
    PlaceOrder,
    QueryOrder,
    Record,
    Sleep,
)
from engine.core.events import (
    CancelRequested,
    ExecutionEvent,
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
)
from engine.core.lifecycle import Execution
from engine.core.ports import (
    BrokerError,
    BrokerOrderState,
    BrokerRejected,
    OrderReport,
    OrderRequest,
    RequestNotSent,
)
from engine.core.slippage import classify, slippage_pips
from engine.core.vocabulary import Direction, ExecutionRejectionReason, utc

R = ExecutionRejectionReason


class Reconciled(Enum):
    FOUND = "found"  # the broker has the order: adopt it
    ABSENT = "absent"  # the broker proved it has no such order
    UNRESOLVED = "unresolved"  # the broker could not be asked until the deadline


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What asking the broker for an order by its client order id established."""

    outcome: Reconciled
    report: OrderReport | None = None  # the order, when FOUND


class Run:
    """The state one flow carries between yields: the execution and the last known time."""

    __slots__ = ("config", "execution", "now")

    def __init__(self, execution: Execution, config: EngineConfig, now: float) -> None:
        self.execution = execution
        self.config = config
        self.now = now

    def record(self, event: ExecutionEvent) -> Record:
        self.execution.apply(event)
        return Record(event, self.execution)

    def ask(self, call: BrokerCall) -> Generator[Effect, Any, Any]:
        """Make a broker call: its answer, or its BrokerError raised here — the flow's
        clock moving on to when the driver saw either."""
        try:
            self.now, answer = yield call
        except BrokerError as error:
            self.now = error.at
            raise
        return answer


def submit_with_retry(run: Run, order: OrderRequest) -> Generator[Effect, Any, OrderReport | None]:
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
    run: Run, client_order_id: str, proof_after: float, deadline: float
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
                FindOrder(
                    client_order_id,
                    run.execution.submitted_at,
                    tuple(run.execution.order_ids),
                )
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


def monitor_until_closed(
    run: Run, report: OrderReport, deadline: float, why: str
) -> Generator[Effect, Any, OrderReport | None]:
    """Stages 5 and 7: poll until the broker closes the order (its closing report), or at
    the deadline cancel it and record it expired (None); `why` says what the deadline is."""
    execution = run.execution
    yield from apply_fills(run, report)
    while report.state is BrokerOrderState.WORKING and not execution.is_terminal:
        if run.now >= deadline:
            yield from expire(run, report.order_id, why)
            return None
        run.now, _ = yield Sleep(
            min(run.config.poll_interval_seconds, max(deadline - run.now, 0.0))
        )
        try:
            report = yield from run.ask(QueryOrder(report.order_id))
        except BrokerError:
            continue  # asked again at the next poll
        yield from apply_fills(run, report)
    return report


def close_order(run: Run, report: OrderReport) -> Generator[Effect, Any, None]:
    """Record how the broker closed the order: removed at its own expiry (a limit order's
    good-till time) it expired; otherwise it closed, filled or not."""
    eid, execution = run.execution.execution_id, run.execution
    if report.state is BrokerOrderState.EXPIRED and not execution.is_terminal:
        yield run.record(OrderExpired(eid, run.now, "expired at the broker at its good-till time"))
    elif not execution.is_terminal or report.state is not BrokerOrderState.WORKING:
        yield run.record(OrderClosed(eid, run.now, report.state))


def monitor_until_done(
    run: Run, report: OrderReport, deadline: float, why: str
) -> Generator[Effect, Any, None]:
    """Follow the order to its end and record that end."""
    closed = yield from monitor_until_closed(run, report, deadline, why)
    if closed is not None:
        yield from close_order(run, closed)


def expire(run: Run, order_id: str, why: str) -> Generator[Effect, Any, None]:
    """Cancel what is left; an order is only called expired once the broker confirms."""
    eid, config, execution = run.execution.execution_id, run.config, run.execution
    yield run.record(CancelRequested(eid, run.now, why))
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
            yield from apply_fills(run, result)
            if execution.is_terminal:  # it filled while we were cancelling
                yield run.record(OrderClosed(eid, run.now, result.state))
            else:
                yield run.record(OrderExpired(eid, run.now, "timed out; remainder cancelled"))
            return
        run.now, _ = yield Sleep(config.retry_backoff_seconds)
    yield run.record(
        OrderExpired(eid, run.now, f"timed out; cancel NOT confirmed by the broker: {result}")
    )


def apply_fills(run: Run, report: OrderReport) -> Generator[Effect, Any, None]:
    execution = run.execution
    for fill in report.fills:
        if fill.fill_id not in execution.fill_ids:
            event = OrderFilled(
                execution.execution_id,
                run.now,
                fill.fill_id,
                fill.units,
                fill.price,
                fill.time,
                fill.position_id,
            )
            yield run.record(event)


def measure_slippage(
    run: Run, direction: Direction, reference: float, pip: float
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
