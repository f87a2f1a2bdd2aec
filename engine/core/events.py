"""What happened to an execution, in the past tense: the audit trail's vocabulary.

Each event is one stage transition, stamped with the driver's clock (POSIX seconds). The
current state of an execution is the fold of its events (see `lifecycle.py`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import Any

from engine.core.ports import BrokerOrderState, ExitReason
from engine.core.vocabulary import ExecutionRejectionReason, SlippageQuality
from engine.schemas import ExecutionRequest


@dataclass(frozen=True, slots=True)
class ExecutionEvent:
    execution_id: str
    at: float


@dataclass(frozen=True, slots=True)
class ExecutionRequested(ExecutionEvent):
    request: ExecutionRequest


@dataclass(frozen=True, slots=True)
class ValidationFailed(ExecutionEvent):
    check: str
    reason: ExecutionRejectionReason
    detail: str


@dataclass(frozen=True, slots=True)
class ValidationCompleted(ExecutionEvent):
    """All checks passed; the order that will be sent, with the quote it was priced on."""

    checks: tuple[str, ...]
    lots: float
    arrival_bid: float
    arrival_ask: float
    deviation_points: int | None


@dataclass(frozen=True, slots=True)
class CostEstimated(ExecutionEvent):
    """What a fitted cost model expected the order's slippage to be, from what was known
    before it was sent: quantiles in pips against the quoted side, + adverse (None, with
    `detail` saying why, when the estimate was unavailable). Evidence only: nothing reads it
    to decide anything."""

    p10_pips: float | None
    p50_pips: float | None
    p90_pips: float | None
    model_id: str
    features: dict[str, str | float | int | None]
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class SubmissionAttempted(ExecutionEvent):
    """Written before the order leaves (write-ahead): no order without this record."""

    attempt: int


@dataclass(frozen=True, slots=True)
class SubmissionFailed(ExecutionEvent):
    """The request never reached the broker: resending is safe."""

    attempt: int
    detail: str


@dataclass(frozen=True, slots=True)
class SubmissionUnanswered(ExecutionEvent):
    """The request may have reached the broker and no reply came (lost, timed out): its
    outcome is unknown, so the broker is asked before anything is resent."""

    attempt: int
    detail: str


@dataclass(frozen=True, slots=True)
class ReconciliationAttempted(ExecutionEvent):
    detail: str


@dataclass(frozen=True, slots=True)
class OrderProvenAbsent(ExecutionEvent):
    """Reconciliation proved the lost request never became an order: resending is safe."""

    detail: str


@dataclass(frozen=True, slots=True)
class SubmissionAbandoned(ExecutionEvent):
    """Every attempt failed and nothing reached the broker."""

    reason: ExecutionRejectionReason
    detail: str


@dataclass(frozen=True, slots=True)
class ExecutionAbandoned(ExecutionEvent):
    """Recovery found no order at the broker for an execution a stop interrupted: it ends
    here, unsent — a stale decision is never sent late."""

    reason: ExecutionRejectionReason
    detail: str


@dataclass(frozen=True, slots=True)
class ReconciliationDeferred(ExecutionEvent):
    """The outcome is still unknown at the deadline; recovery must settle it later."""

    detail: str


@dataclass(frozen=True, slots=True)
class OrderAcknowledged(ExecutionEvent):
    order_id: str
    via_reconciliation: bool = False


@dataclass(frozen=True, slots=True)
class OrderRejected(ExecutionEvent):
    reason: ExecutionRejectionReason
    detail: str
    broker_code: int | None = None


@dataclass(frozen=True, slots=True)
class OrderFilled(ExecutionEvent):
    fill_id: str
    units: int
    price: float
    fill_time: float
    position_id: str = ""  # the position the deal opened, added to or closed


@dataclass(frozen=True, slots=True)
class OrderClosed(ExecutionEvent):
    """The broker will send no more fills for this order."""

    broker_state: BrokerOrderState


@dataclass(frozen=True, slots=True)
class CancelRequested(ExecutionEvent):
    detail: str


@dataclass(frozen=True, slots=True)
class OrderExpired(ExecutionEvent):
    detail: str


@dataclass(frozen=True, slots=True)
class RemainderRequested(ExecutionEvent):
    """The order closed with units left, and the partial-fill policy is `complete`: the
    remainder goes out as a new child order, under its own client order id (written before
    it is sent, as every order is)."""

    child: int  # 1 for the first child order
    client_order_id: str
    units: int
    detail: str


@dataclass(frozen=True, slots=True)
class ProtectionSet(ExecutionEvent):
    """A position of this execution carries the stop-loss and take-profit upstream asked
    for: attached to the order, or set on the position after the fill, `gap_seconds` later
    (the time it stood unprotected)."""

    position_id: str
    stop_loss: float | None
    take_profit: float | None
    attached: bool
    gap_seconds: float


@dataclass(frozen=True, slots=True)
class ProtectionFailed(ExecutionEvent):
    """A position of this execution is NOT protected as upstream asked: the broker refused
    the levels or could not be asked. Recorded loudly; the engine decides nothing more."""

    position_id: str
    reason: ExecutionRejectionReason
    detail: str


@dataclass(frozen=True, slots=True)
class PositionExited(ExecutionEvent):
    """A deal closed (part of) a position this execution opened: by its stop-loss or
    take-profit, a stop-out, or an order. Found at the broker by the opening order's tag."""

    deal_id: str
    position_id: str
    exit_reason: ExitReason
    units: int
    price: float
    level: float | None  # the stop or target that triggered it
    exit_time: float


@dataclass(frozen=True, slots=True)
class SlippageMeasured(ExecutionEvent):
    average_price: float
    reference_price: float
    slippage_pips: float
    quality: SlippageQuality


@dataclass(frozen=True, slots=True)
class SlippageBoundBreached(ExecutionEvent):
    """The fill was worse than upstream's max_slippage_pips allowed. A venue in instant or
    request execution enforces the bound (it requotes instead); one in market execution does
    not (MT5: the server sets the price, `deviation` is no bound) — so it is recorded."""

    slippage_pips: float
    max_slippage_pips: float


EVENT_TYPES: dict[str, type[ExecutionEvent]] = {
    cls.__name__: cls
    for cls in (
        ExecutionRequested,
        ValidationFailed,
        ValidationCompleted,
        CostEstimated,
        SubmissionAttempted,
        SubmissionFailed,
        SubmissionUnanswered,
        ReconciliationAttempted,
        OrderProvenAbsent,
        SubmissionAbandoned,
        ExecutionAbandoned,
        ReconciliationDeferred,
        OrderAcknowledged,
        OrderRejected,
        OrderFilled,
        OrderClosed,
        CancelRequested,
        OrderExpired,
        SlippageMeasured,
        SlippageBoundBreached,
        RemainderRequested,
        ProtectionSet,
        ProtectionFailed,
        PositionExited,
    )
}

# Trails written before these events were named in the past tense keep their old kinds.
_LEGACY_KINDS: dict[str, type[ExecutionEvent]] = {
    "SubmissionOutcomeUnknown": SubmissionUnanswered,
    "OrderNotFound": OrderProvenAbsent,
}

_ENUM_FIELDS: dict[str, type[Enum]] = {
    "reason": ExecutionRejectionReason,
    "quality": SlippageQuality,
    "broker_state": BrokerOrderState,
    "exit_reason": ExitReason,
}


def event_kind(event: ExecutionEvent) -> str:
    return type(event).__name__


# Each kind's own fields, in declaration order (execution_id and time are stored apart).
_OWN_FIELDS: dict[type[ExecutionEvent], tuple[str, ...]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls) if f.name not in ("execution_id", "at"))
    for cls in EVENT_TYPES.values()
}


def to_payload(event: ExecutionEvent) -> dict[str, Any]:
    """The event's own fields as JSON-ready values."""
    payload: dict[str, Any] = {}
    for name in _OWN_FIELDS[type(event)]:
        value = getattr(event, name)
        if isinstance(value, ExecutionRequest):
            value = value.model_dump(mode="json")
        elif isinstance(value, Enum):
            value = value.value
        payload[name] = value
    return payload


def from_payload(
    kind: str, execution_id: str, at: float, payload: dict[str, Any]
) -> ExecutionEvent:
    cls = EVENT_TYPES.get(kind) or _LEGACY_KINDS[kind]
    values = dict(payload)
    if cls is ExecutionRequested:
        values["request"] = ExecutionRequest.model_validate(values["request"])
    for name, enum_type in _ENUM_FIELDS.items():
        if name in values:
            values[name] = enum_type(values[name])
    for name, value in values.items():
        if isinstance(value, list):  # JSON has no tuples; the events hold them
            values[name] = tuple(value)
    return cls(execution_id=execution_id, at=at, **values)
