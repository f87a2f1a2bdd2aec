"""MetaTrader 5's answer codes, and what each one means for an order that may be out.

Two vocabularies meet here. A trade server answers `order_send` with a TRADE_RETCODE in
the result; the terminal refuses a call outright by returning None and setting
`last_error()`. Both are classified by what is safe to do next (mt5-reference.md, "How a
careful adapter classifies an outcome"): the live broker raises the engine's errors from
this table, and the simulator's venue answers with the same codes, so the two can be tested
against each other.
"""

from __future__ import annotations

from enum import StrEnum

from engine.schemas import ExecutionRejectionReason

R = ExecutionRejectionReason


class Outcome(StrEnum):
    DONE = "done"  # executed, or accepted and working
    PARTIAL = "partial"  # executed in part; IOC dropped the rest
    RESEND_SAFE = "resend_safe"  # answered and nothing executed; a fresh request may work
    NOT_SENT = "not_sent"  # the terminal never passed the request on
    UNKNOWN = "unknown"  # it may have executed: reconcile before any resend
    FINAL = "final"  # refused; the same request would be refused again


# TRADE_RETCODE values (there is no 10005 and no 10037).
REQUOTE = 10004
REJECT = 10006
CANCEL = 10007
PLACED = 10008
DONE = 10009
DONE_PARTIAL = 10010
ERROR = 10011
TIMEOUT = 10012
INVALID = 10013
INVALID_VOLUME = 10014
INVALID_PRICE = 10015
INVALID_STOPS = 10016
TRADE_DISABLED = 10017
MARKET_CLOSED = 10018
NO_MONEY = 10019
PRICE_CHANGED = 10020
PRICE_OFF = 10021
INVALID_EXPIRATION = 10022
ORDER_CHANGED = 10023
TOO_MANY_REQUESTS = 10024
NO_CHANGES = 10025
SERVER_DISABLES_AT = 10026
CLIENT_DISABLES_AT = 10027
LOCKED = 10028
FROZEN = 10029
INVALID_FILL = 10030
CONNECTION = 10031
ONLY_REAL = 10032
LIMIT_ORDERS = 10033
LIMIT_VOLUME = 10034
INVALID_ORDER = 10035
POSITION_CLOSED = 10036
INVALID_CLOSE_VOLUME = 10038
CLOSE_ORDER_EXIST = 10039
LIMIT_POSITIONS = 10040
REJECT_CANCEL = 10041
LONG_ONLY = 10042
SHORT_ONLY = 10043
CLOSE_ONLY = 10044
FIFO_CLOSE = 10045
HEDGE_PROHIBITED = 10046

DESCRIPTION: dict[int, str] = {
    REQUOTE: "requote",
    REJECT: "request rejected",
    CANCEL: "request cancelled by the trader",
    PLACED: "order placed",
    DONE: "request completed",
    DONE_PARTIAL: "only part of the request was completed",
    ERROR: "request processing error",
    TIMEOUT: "request cancelled by timeout",
    INVALID: "invalid request",
    INVALID_VOLUME: "invalid volume",
    INVALID_PRICE: "invalid price",
    INVALID_STOPS: "invalid stops",
    TRADE_DISABLED: "trade disabled",
    MARKET_CLOSED: "market closed",
    NO_MONEY: "not enough money",
    PRICE_CHANGED: "prices changed",
    PRICE_OFF: "no quotes to process the request",
    INVALID_EXPIRATION: "invalid order expiration date",
    ORDER_CHANGED: "order state changed",
    TOO_MANY_REQUESTS: "too many requests",
    NO_CHANGES: "no changes in the request",
    SERVER_DISABLES_AT: "autotrading disabled by the server",
    CLIENT_DISABLES_AT: (
        "AutoTrading is disabled in the terminal (its Algo Trading button): "
        "no order is accepted until it is switched on"
    ),
    LOCKED: "request locked for processing",
    FROZEN: "order or position frozen",
    INVALID_FILL: "invalid order filling type",
    CONNECTION: "no connection with the trade server",
    ONLY_REAL: "operation allowed only for live accounts",
    LIMIT_ORDERS: "pending orders limit reached",
    LIMIT_VOLUME: "volume limit for the symbol reached",
    INVALID_ORDER: "incorrect or prohibited order",
    POSITION_CLOSED: "position already closed",
    INVALID_CLOSE_VOLUME: "close volume exceeds the position",
    CLOSE_ORDER_EXIST: "a close order already exists for the position",
    LIMIT_POSITIONS: "open positions limit reached",
    REJECT_CANCEL: "pending order activation rejected; order cancelled",
    LONG_ONLY: "long positions only",
    SHORT_ONLY: "short positions only",
    CLOSE_ONLY: "close positions only",
    FIFO_CLOSE: "positions must be closed first in, first out",
    HEDGE_PROHIBITED: "opposite positions are prohibited",
}

_RESEND_SAFE = (REQUOTE, PRICE_CHANGED, PRICE_OFF, ORDER_CHANGED, TOO_MANY_REQUESTS, LOCKED)
_UNKNOWN = (ERROR, TIMEOUT, CONNECTION)

# Every other known code is final (10015 INVALID_PRICE, 10016 INVALID_STOPS, 10022
# INVALID_EXPIRATION, 10026 SERVER_DISABLES_AT and 10029 FROZEN among them: the same request
# would meet the same refusal). NO_CHANGES is in no list of the reference; for a new order it
# can only mean a request the server will not act on — for a stop change (TRADE_ACTION_SLTP)
# it means the levels are already there, which the broker reads as success. INVALID_FILL is
# final for the filling mode sent: the broker chooses the mode from the symbol's bitmask so
# as not to meet it.
OUTCOME: dict[int, Outcome] = dict.fromkeys(DESCRIPTION, Outcome.FINAL)
OUTCOME.update({DONE: Outcome.DONE, PLACED: Outcome.DONE, DONE_PARTIAL: Outcome.PARTIAL})
OUTCOME.update(dict.fromkeys(_RESEND_SAFE, Outcome.RESEND_SAFE))
OUTCOME.update(dict.fromkeys(_UNKNOWN, Outcome.UNKNOWN))

# What each code means for an execution; codes without a cause of their own stay
# BROKER_REJECTED, with the code kept beside the reason.
REASON_BY_CODE: dict[int, ExecutionRejectionReason] = {
    REQUOTE: R.REQUOTE,
    PRICE_CHANGED: R.REQUOTE,
    PRICE_OFF: R.REQUOTE,
    MARKET_CLOSED: R.MARKET_CLOSED,
    TRADE_DISABLED: R.SYMBOL_NOT_TRADABLE,
    LONG_ONLY: R.SYMBOL_NOT_TRADABLE,
    SHORT_ONLY: R.SYMBOL_NOT_TRADABLE,
    CLOSE_ONLY: R.SYMBOL_NOT_TRADABLE,
    NO_MONEY: R.INSUFFICIENT_MARGIN,
    INVALID_VOLUME: R.INVALID_VOLUME,
    POSITION_CLOSED: R.NO_POSITION,
    INVALID_CLOSE_VOLUME: R.EXCEEDS_POSITION,
    INVALID_STOPS: R.INVALID_STOPS,
    INVALID_PRICE: R.INVALID_PRICE,
    INVALID_EXPIRATION: R.INVALID_EXPIRATION,
}


def outcome_of(retcode: int) -> Outcome:
    """A code this table does not know might mean anything, executed included: reconcile."""
    return OUTCOME.get(retcode, Outcome.UNKNOWN)


def reason_for(code: int) -> ExecutionRejectionReason:
    return REASON_BY_CODE.get(code, R.BROKER_REJECTED)


def describe(retcode: int) -> str:
    return DESCRIPTION.get(retcode, f"return code {retcode}")


# last_error() codes: what the terminal says when a call returns None.
RES_S_OK = 1
RES_E_FAIL = -1
RES_E_INVALID_PARAMS = -2
RES_E_NO_MEMORY = -3
RES_E_NOT_FOUND = -4
RES_E_INVALID_VERSION = -5
RES_E_AUTH_FAILED = -6
RES_E_UNSUPPORTED = -7
RES_E_AUTO_TRADING_DISABLED = -8
RES_E_INTERNAL_FAIL = -10000
RES_E_INTERNAL_FAIL_SEND = -10001
RES_E_INTERNAL_FAIL_RECEIVE = -10002
RES_E_INTERNAL_FAIL_INIT = -10003
RES_E_INTERNAL_FAIL_CONNECT = -10004
RES_E_INTERNAL_FAIL_TIMEOUT = -10005

# The pipe to the terminal broke after the request went in: it may be executing.
_IPC_AFTER_SENDING = (
    RES_E_INTERNAL_FAIL_SEND,
    RES_E_INTERNAL_FAIL_RECEIVE,
    RES_E_INTERNAL_FAIL_TIMEOUT,
)
# No pipe to the terminal at all: the request never left this process.
_IPC_BEFORE_SENDING = (RES_E_INTERNAL_FAIL_INIT, RES_E_INTERNAL_FAIL_CONNECT)


def refused_call_outcome(last_error_code: int) -> Outcome:
    """What a None from `order_send` means, by `last_error()`: anything else than a broken
    pipe is the terminal refusing the request itself (bad arguments: our fault, final)."""
    if last_error_code in _IPC_AFTER_SENDING:
        return Outcome.UNKNOWN
    if last_error_code in _IPC_BEFORE_SENDING:
        return Outcome.NOT_SENT
    return Outcome.FINAL


def is_ipc_failure(last_error_code: int) -> bool:
    """The terminal could not be asked at all (as opposed to answering 'no such thing')."""
    return last_error_code in _IPC_AFTER_SENDING or last_error_code in _IPC_BEFORE_SENDING
