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
    MODIFIED = "MODIFIED"  # a position's stops were changed, as a modify_stops decision asked

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
        ExecutionStatus.MODIFIED,
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
    NO_POSITION = "NO_POSITION"  # a reduce, close or stop change found no such position
    EXCEEDS_POSITION = "EXCEEDS_POSITION"  # more units than the position holds: never clipped
    POSITION_MISMATCH = "POSITION_MISMATCH"  # the position is not what upstream described
    INVALID_STOPS = "INVALID_STOPS"  # a stop on the wrong side, or nearer than the stops level
    INVALID_PRICE = "INVALID_PRICE"  # a limit price the market would fill at once, or too near
    INVALID_EXPIRATION = "INVALID_EXPIRATION"  # an expiry already past


class TradeIntent(StrEnum):
    """What a decision does to the account's positions."""

    OPEN = "open"  # open or add to a position (today's meaning of every decision)
    REDUCE = "reduce"  # close part of a position: never more than it holds, never through 0
    CLOSE = "close"  # close a whole position: its units exactly
    MODIFY_STOPS = "modify_stops"  # change an open position's stop-loss and take-profit


class ExitReason(StrEnum):
    """Why a position (or part of it) was closed at the broker (MT5 DEAL_REASON)."""

    STOP_LOSS = "stop_loss"  # its stop-loss triggered (DEAL_REASON_SL)
    TAKE_PROFIT = "take_profit"  # its take-profit triggered (DEAL_REASON_TP)
    STOP_OUT = "stop_out"  # the broker liquidated it for margin (DEAL_REASON_SO)
    ORDER = "order"  # an order of ours closed it (a close or reduce decision)


class OrderType(StrEnum):
    MARKET = "market"  # fill now at the broker's price (MT5 TRADE_ACTION_DEAL)
    LIMIT = "limit"  # rest on the book; fill at the limit or better (TRADE_ACTION_PENDING)


class PartialFillPolicy(StrEnum):
    ACCEPT = "accept"  # a partial fill ends the execution (PARTIALLY_FILLED)
    COMPLETE = "complete"  # the remainder is sent again as child orders, within limits


class SlippageQuality(StrEnum):
    IMPROVED = "IMPROVED"  # filled better than quoted
    EXCELLENT = "EXCELLENT"
    GOOD = "GOOD"
    ACCEPTABLE = "ACCEPTABLE"
    POOR = "POOR"


def utc(seconds: float) -> datetime:
    """Driver time (POSIX seconds) as an aware UTC datetime: a conversion, not a clock read."""
    return datetime.fromtimestamp(seconds, tz=UTC)
