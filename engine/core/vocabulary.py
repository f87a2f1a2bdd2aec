"""The core's own vocabulary: sides, statuses, reasons, quality classes, and driver time.

The engine core speaks these words; the boundary models (`engine.schemas`) carry them to
upstream, the API and the audit trail.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntEnum, StrEnum


class Direction(IntEnum):
    BUY = 1
    SELL = -1


class ExecutionStatus(StrEnum):
    PENDING = "PENDING"  # recorded, being validated
    SUBMITTING = "SUBMITTING"  # validated; intent recorded; order on its way
    UNRESOLVED = "UNRESOLVED"  # sent, reply lost: must be reconciled before anything else
    SUBMITTED = "SUBMITTED"  # acknowledged by the broker, working (maybe partly filled)
    FILLED = "FILLED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"  # order done at the broker with fewer units
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"  # not filled within the timeout; the remainder was cancelled
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"  # nothing reached the broker after every attempt

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {
        ExecutionStatus.FILLED,
        ExecutionStatus.PARTIALLY_FILLED,
        ExecutionStatus.REJECTED,
        ExecutionStatus.EXPIRED,
        ExecutionStatus.CANCELLED,
        ExecutionStatus.FAILED,
    }
)


class ExecutionRejectionReason(StrEnum):
    DECISION_NOT_APPROVED = "DECISION_NOT_APPROVED"
    TRADING_HALTED = "TRADING_HALTED"
    MARKET_CLOSED = "MARKET_CLOSED"
    SYMBOL_NOT_TRADABLE = "SYMBOL_NOT_TRADABLE"
    NO_MARKET_DATA = "NO_MARKET_DATA"
    SPREAD_TOO_WIDE = "SPREAD_TOO_WIDE"
    INSUFFICIENT_MARGIN = "INSUFFICIENT_MARGIN"
    INSUFFICIENT_LIQUIDITY = "INSUFFICIENT_LIQUIDITY"
    INVALID_VOLUME = "INVALID_VOLUME"
    BROKER_REJECTED = "BROKER_REJECTED"
    REQUOTE = "REQUOTE"
    NETWORK_ERROR = "NETWORK_ERROR"
    OUTCOME_UNKNOWN = "OUTCOME_UNKNOWN"
    ORDER_TIMEOUT = "ORDER_TIMEOUT"
    CANCELLED_BY_BROKER = "CANCELLED_BY_BROKER"
    INTERRUPTED = "INTERRUPTED"  # the engine stopped before the order left; none was found
    STORE_UNAVAILABLE = "STORE_UNAVAILABLE"


class SlippageQuality(StrEnum):
    IMPROVED = "IMPROVED"  # filled better than quoted
    EXCELLENT = "EXCELLENT"
    GOOD = "GOOD"
    ACCEPTABLE = "ACCEPTABLE"
    POOR = "POOR"


def utc(seconds: float) -> datetime:
    """Driver time (POSIX seconds) as an aware UTC datetime: a conversion, not a clock read."""
    return datetime.fromtimestamp(seconds, tz=UTC)
