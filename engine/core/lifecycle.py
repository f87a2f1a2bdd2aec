"""The order lifecycle: every state transition of an execution, in one table.

`Execution.apply(event)` is the only way an execution changes. An event the table does not
allow in the current state is a bug somewhere (ours or the broker's) and raises
`IllegalTransition`; it is never silently absorbed. The one deliberate exception is a fill
already seen (same broker deal ticket): reports repeat, fills must not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from engine.core.events import (
    CancelRequested,
    CostEstimated,
    ExecutionAbandoned,
    ExecutionEvent,
    ExecutionRequested,
    OrderAcknowledged,
    OrderClosed,
    OrderExpired,
    OrderFilled,
    OrderProvenAbsent,
    OrderRejected,
    PositionExited,
    ProtectionFailed,
    ProtectionSet,
    ReconciliationAttempted,
    ReconciliationDeferred,
    RemainderRequested,
    SlippageBoundBreached,
    SlippageMeasured,
    SubmissionAbandoned,
    SubmissionAttempted,
    SubmissionFailed,
    SubmissionUnanswered,
    ValidationCompleted,
    ValidationFailed,
)
from engine.core.vocabulary import ExecutionRejectionReason, ExecutionStatus, SlippageQuality, utc
from engine.schemas import (
    ExecutionLog,
    ExecutionRequest,
    ExitRecord,
    FillRecord,
    ProtectionRecord,
)

S = ExecutionStatus


class IllegalTransition(RuntimeError):
    """An event arrived that the lifecycle does not allow in the execution's state."""


class OverfillError(IllegalTransition):
    """The broker reported more units than were ordered: never accepted silently."""


def _after_fill(execution: Execution) -> ExecutionStatus:
    return S.FILLED if execution.executed_units == execution.intended_units else S.SUBMITTED


def _after_close(execution: Execution) -> ExecutionStatus:
    if execution.executed_units == execution.intended_units:
        return S.FILLED
    return S.PARTIALLY_FILLED if execution.executed_units > 0 else S.CANCELLED


def _after_refusal(execution: Execution, otherwise: ExecutionStatus) -> ExecutionStatus:
    # A child order refused or lost keeps what earlier orders filled.
    return S.PARTIALLY_FILLED if execution.executed_units > 0 else otherwise


def _rejected(execution: Execution) -> ExecutionStatus:
    return _after_refusal(execution, S.REJECTED)


def _failed(execution: Execution) -> ExecutionStatus:
    return _after_refusal(execution, S.FAILED)


Target = ExecutionStatus | Callable[["Execution"], ExecutionStatus]

# (state before, event) -> state after. None is "no execution yet".
TRANSITIONS: dict[tuple[ExecutionStatus | None, type[ExecutionEvent]], Target] = {
    (None, ExecutionRequested): S.PENDING,
    (S.PENDING, ValidationFailed): S.REJECTED,
    (S.PENDING, ValidationCompleted): S.SUBMITTING,
    (S.SUBMITTING, CostEstimated): S.SUBMITTING,  # evidence only: the estimate changes nothing
    (S.SUBMITTING, SubmissionAttempted): S.SUBMITTING,
    (S.SUBMITTING, SubmissionFailed): S.SUBMITTING,  # request never left: may resend
    (S.SUBMITTING, SubmissionUnanswered): S.UNRESOLVED,  # reconcile before anything else
    (S.SUBMITTING, SubmissionAbandoned): _failed,
    (S.PENDING, ExecutionAbandoned): S.FAILED,  # recovery: stopped while validating
    (S.SUBMITTING, ExecutionAbandoned): _failed,  # recovery: the broker has no such order
    (S.SUBMITTING, OrderAcknowledged): S.SUBMITTED,
    (S.SUBMITTING, OrderRejected): _rejected,
    (S.SUBMITTING, ReconciliationAttempted): S.UNRESOLVED,  # recovery after a crash
    (S.UNRESOLVED, ReconciliationAttempted): S.UNRESOLVED,
    (S.UNRESOLVED, OrderProvenAbsent): S.SUBMITTING,
    (S.UNRESOLVED, OrderAcknowledged): S.SUBMITTED,
    (S.UNRESOLVED, ReconciliationDeferred): S.UNRESOLVED,
    (S.SUBMITTED, OrderFilled): _after_fill,
    (S.SUBMITTED, OrderClosed): _after_close,
    (S.SUBMITTED, CancelRequested): S.SUBMITTED,
    (S.SUBMITTED, OrderExpired): S.EXPIRED,
    (S.FILLED, OrderClosed): S.FILLED,
    (S.FILLED, SlippageMeasured): S.FILLED,
    (S.PARTIALLY_FILLED, SlippageMeasured): S.PARTIALLY_FILLED,
    (S.EXPIRED, SlippageMeasured): S.EXPIRED,
    (S.FILLED, SlippageBoundBreached): S.FILLED,
    (S.PARTIALLY_FILLED, SlippageBoundBreached): S.PARTIALLY_FILLED,
    (S.EXPIRED, SlippageBoundBreached): S.EXPIRED,
    # Partial fills under the `complete` policy: the remainder goes out as a child order.
    (S.SUBMITTED, RemainderRequested): S.SUBMITTING,
    # A modify_stops decision sends no order: the stops it set end it.
    (S.SUBMITTING, ProtectionSet): S.MODIFIED,
    # Facts about the positions an execution opened, learnt after it ended.
    **{
        (status, event): status
        for status in (S.FILLED, S.PARTIALLY_FILLED, S.EXPIRED)
        for event in (ProtectionSet, ProtectionFailed, PositionExited)
    },
}


@dataclass(slots=True)
class Execution:
    """The aggregate: one RPM decision on its way to the market."""

    execution_id: str
    request: ExecutionRequest | None = None
    status: ExecutionStatus | None = None
    lots: float | None = None
    broker_order_id: str | None = None
    executed_units: int = 0
    notional: float = 0.0
    fills: list[FillRecord] = field(default_factory=list)
    fill_ids: set[str] = field(default_factory=set)
    attempts: int = 0
    outcome_reason: ExecutionRejectionReason | None = None
    outcome_detail: str | None = None
    broker_code: int | None = None
    arrival_bid: float | None = None
    arrival_ask: float | None = None
    deviation_points: int | None = None
    # A cost model's (p10, p50, p90) of slippage vs the quoted side, pips, + adverse.
    estimated_slippage_pips: tuple[float, float, float] | None = None
    slippage_pips: float | None = None
    slippage_quality: SlippageQuality | None = None
    created_at: float | None = None
    submitted_at: float | None = None
    last_attempt_at: float | None = None
    last_fill_at: float | None = None
    slippage_bound_breached: bool = False
    completed_at: float | None = None
    # Child orders for the remainder of a partial fill (the `complete` policy): the one
    # being worked carries its own client order id; every order id the execution had.
    child_orders: int = 0
    child_client_order_id: str | None = None
    order_ids: list[str] = field(default_factory=list)
    position_ids: list[str] = field(default_factory=list)  # opened or touched, in fill order
    # Protection: what each position carries, and how long it stood without it.
    protection: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    unprotected: dict[str, str] = field(default_factory=dict)  # position -> why
    protection_gap_seconds: float | None = None
    exits: list[ExitRecord] = field(default_factory=list)
    exit_deal_ids: set[str] = field(default_factory=set)
    # Events applied (repeats included) and status changes, and when the last one was: what
    # lets the audit store take a fold the engine already made instead of making it again.
    applied: int = 0
    status_changes: int = 0
    status_changed_at: float | None = None

    @property
    def intended_units(self) -> int:
        assert self.request is not None
        return self.request.intended_units

    @property
    def client_order_id(self) -> str:
        """The tag of the order being worked: the execution's, or its latest child's."""
        assert self.request is not None
        return self.child_client_order_id or self.request.client_order_id

    @property
    def remaining_units(self) -> int:
        return self.intended_units - self.executed_units

    @property
    def average_fill_price(self) -> float | None:
        return self.notional / self.executed_units if self.executed_units else None

    @property
    def is_terminal(self) -> bool:
        return self.status is not None and self.status.is_terminal

    @property
    def unprotected_positions_owed(self) -> list[str]:
        """The positions its fills named that have no outcome of setting their stops on
        record (set, or failed); owed where upstream asked for stops."""
        return [
            position
            for position in self.position_ids
            if position not in self.protection and position not in self.unprotected
        ]

    @property
    def stops_owed(self) -> bool:
        """Units filled, upstream asked for stops, and a position of it has no outcome of
        setting them on record — or, fills that named no position, no outcome at all."""
        # Most executions ask for no stops: that is answered first.
        if self.request is None or not self.request.protected or self.executed_units == 0:
            return False
        if self.position_ids:
            return bool(self.unprotected_positions_owed)
        return not self.protection and not self.unprotected

    @property
    def owes_protection(self) -> bool:
        """Ended, with stops still owed: what a stop between a fill and its stops leaves
        behind (one position done of several, on a hedging account, included). Such an
        execution is terminal, yet recovery still owes its positions their stops."""
        return self.is_terminal and self.stops_owed

    @property
    def fill_time_seconds(self) -> float | None:
        """From the first submission attempt to the last fill."""
        if self.last_fill_at is None or self.submitted_at is None:
            return None
        return self.last_fill_at - self.submitted_at

    def apply(self, event: ExecutionEvent) -> bool:
        """Apply one event; False when it is a repeat of a fill already applied."""
        if (isinstance(event, OrderFilled) and event.fill_id in self.fill_ids) or (
            isinstance(event, PositionExited) and event.deal_id in self.exit_deal_ids
        ):
            self.applied += 1
            return False
        target = TRANSITIONS.get((self.status, type(event)))
        if target is None:
            state = self.status.value if self.status else "no execution"
            raise IllegalTransition(
                f"{type(event).__name__} is not allowed in state {state} "
                f"(execution {self.execution_id})"
            )
        self._absorb(event)
        self.applied += 1
        new_status = target if isinstance(target, ExecutionStatus) else target(self)
        if new_status is not self.status:
            self.status_changes += 1
            self.status_changed_at = event.at
        self.status = new_status
        if new_status.is_terminal and self.completed_at is None:
            self.completed_at = event.at
        return True

    def _absorb(self, event: ExecutionEvent) -> None:
        match event:
            case ExecutionRequested(request=request):
                self.request = request
                self.created_at = event.at
            case ValidationFailed(reason=reason, detail=detail):
                self.outcome_reason, self.outcome_detail = reason, detail
            case ValidationCompleted():
                self.lots = event.lots
                self.arrival_bid, self.arrival_ask = event.arrival_bid, event.arrival_ask
                self.deviation_points = event.deviation_points
            case SubmissionAttempted(attempt=attempt):
                self.attempts = attempt
                self.last_attempt_at = event.at
                if self.submitted_at is None:
                    self.submitted_at = event.at
            case (
                SubmissionAbandoned(reason=reason, detail=detail)
                | ExecutionAbandoned(reason=reason, detail=detail)
            ):
                self.outcome_reason, self.outcome_detail = reason, detail
            case ReconciliationDeferred(detail=detail):
                self.outcome_reason = ExecutionRejectionReason.OUTCOME_UNKNOWN
                self.outcome_detail = detail
            case OrderAcknowledged(order_id=order_id):
                self.broker_order_id = order_id
                if order_id not in self.order_ids:
                    self.order_ids.append(order_id)
            case RemainderRequested(child=child, client_order_id=client_order_id):
                self.child_orders = child
                self.child_client_order_id = client_order_id
                self.broker_order_id = None
            case OrderRejected(reason=reason, detail=detail, broker_code=code):
                self.outcome_reason, self.outcome_detail = reason, detail
                self.broker_code = code
            case OrderFilled(fill_id=fill_id, units=units, price=price):
                if self.executed_units + units > self.intended_units:
                    raise OverfillError(
                        f"fill {fill_id} of {units} units would take execution "
                        f"{self.execution_id} to {self.executed_units + units} of "
                        f"{self.intended_units} intended units"
                    )
                self.fill_ids.add(fill_id)
                self.executed_units += units
                self.notional += units * price
                self.last_fill_at = event.fill_time
                if event.position_id and event.position_id not in self.position_ids:
                    self.position_ids.append(event.position_id)
                self.fills.append(
                    FillRecord(fill_id=fill_id, units=units, price=price, time=utc(event.fill_time))
                )
            case OrderClosed() if self.executed_units == 0:
                self.outcome_reason = ExecutionRejectionReason.CANCELLED_BY_BROKER
                self.outcome_detail = (
                    f"broker closed the order unfilled ({event.broker_state.value})"
                )
            case OrderExpired(detail=detail):
                self.outcome_reason = ExecutionRejectionReason.ORDER_TIMEOUT
                self.outcome_detail = detail
            case SlippageMeasured(slippage_pips=pips, quality=quality):
                self.slippage_pips, self.slippage_quality = pips, quality
            case SlippageBoundBreached():
                self.slippage_bound_breached = True
            case ProtectionSet(position_id=position, stop_loss=sl, take_profit=tp):
                self.protection[position] = (sl, tp)
                self.unprotected.pop(position, None)
                gap = event.gap_seconds
                if self.protection_gap_seconds is None or gap > self.protection_gap_seconds:
                    self.protection_gap_seconds = gap
            case ProtectionFailed(position_id=position, detail=detail):
                self.unprotected[position] = detail
            case PositionExited():
                self.exit_deal_ids.add(event.deal_id)
                self.exits.append(
                    ExitRecord(
                        deal_id=event.deal_id,
                        position_id=event.position_id,
                        reason=event.exit_reason,
                        units=event.units,
                        price=event.price,
                        level=event.level,
                        time=utc(event.exit_time),
                    )
                )
            # Last: only an engine with a cost model records it, and the hot path's events
            # should not pay for its check.
            case CostEstimated(p10_pips=p10, p50_pips=p50, p90_pips=p90):
                if p10 is not None and p50 is not None and p90 is not None:
                    self.estimated_slippage_pips = (p10, p50, p90)
            case _:
                pass

    def to_log(self) -> ExecutionLog:
        request = self.request
        assert request is not None and self.status is not None and self.created_at is not None
        return ExecutionLog(
            execution_id=self.execution_id,
            idempotency_key=request.idempotency_key,
            client_order_id=request.client_order_id,
            broker_order_id=self.broker_order_id,
            symbol=request.symbol,
            direction=request.direction,
            intended_units=request.intended_units,
            intended_lots=self.lots,
            executed_units=self.executed_units,
            status=self.status,
            outcome_reason=self.outcome_reason,
            outcome_detail=self.outcome_detail,
            broker_code=self.broker_code,
            arrival_bid=self.arrival_bid,
            arrival_ask=self.arrival_ask,
            average_fill_price=self.average_fill_price,
            slippage_pips=self.slippage_pips,
            slippage_quality=self.slippage_quality,
            submission_attempts=self.attempts,
            fills=tuple(self.fills),
            created_at=utc(self.created_at),
            submitted_at=utc(self.submitted_at) if self.submitted_at is not None else None,
            completed_at=utc(self.completed_at) if self.completed_at is not None else None,
            engine_version=request.engine_version,
            config_version=request.config_version,
            intent=request.intent,
            order_type=request.order_type,
            child_orders=self.child_orders,
            order_ids=tuple(self.order_ids),
            position_ids=tuple(self.position_ids),
            protection=tuple(
                ProtectionRecord(position_id=position, stop_loss=sl, take_profit=tp)
                for position, (sl, tp) in self.protection.items()
            ),
            unprotected_positions=tuple(self.unprotected),
            protection_gap_seconds=self.protection_gap_seconds,
            exits=tuple(self.exits),
        )

    @classmethod
    def replay(cls, execution_id: str, events: Iterable[ExecutionEvent]) -> Execution:
        execution = cls(execution_id)
        for event in events:
            execution.apply(event)
        return execution
