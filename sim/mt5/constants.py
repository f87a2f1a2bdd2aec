"""The MetaTrader5 module's constants, and a symbol's execution: its mode, the filling
types it allows and the bitmask they map to."""

from __future__ import annotations

from dataclasses import dataclass

from brokers import mt5_codes as codes
from engine.core.ports import FillPolicy
from sim.market import SymbolConfig
from sim.mt5.config import ExecutionMode


class MT5Constants:
    """The module's constants, with MT5's values (mt5-reference.md, "Constants")."""

    TRADE_RETCODE_REQUOTE = codes.REQUOTE
    TRADE_RETCODE_REJECT = codes.REJECT
    TRADE_RETCODE_CANCEL = codes.CANCEL
    TRADE_RETCODE_PLACED = codes.PLACED
    TRADE_RETCODE_DONE = codes.DONE
    TRADE_RETCODE_DONE_PARTIAL = codes.DONE_PARTIAL
    TRADE_RETCODE_ERROR = codes.ERROR
    TRADE_RETCODE_TIMEOUT = codes.TIMEOUT
    TRADE_RETCODE_INVALID = codes.INVALID
    TRADE_RETCODE_INVALID_VOLUME = codes.INVALID_VOLUME
    TRADE_RETCODE_INVALID_PRICE = codes.INVALID_PRICE
    TRADE_RETCODE_INVALID_STOPS = codes.INVALID_STOPS
    TRADE_RETCODE_TRADE_DISABLED = codes.TRADE_DISABLED
    TRADE_RETCODE_MARKET_CLOSED = codes.MARKET_CLOSED
    TRADE_RETCODE_NO_MONEY = codes.NO_MONEY
    TRADE_RETCODE_PRICE_CHANGED = codes.PRICE_CHANGED
    TRADE_RETCODE_PRICE_OFF = codes.PRICE_OFF
    TRADE_RETCODE_INVALID_EXPIRATION = codes.INVALID_EXPIRATION
    TRADE_RETCODE_ORDER_CHANGED = codes.ORDER_CHANGED
    TRADE_RETCODE_TOO_MANY_REQUESTS = codes.TOO_MANY_REQUESTS
    TRADE_RETCODE_NO_CHANGES = codes.NO_CHANGES
    TRADE_RETCODE_SERVER_DISABLES_AT = codes.SERVER_DISABLES_AT
    TRADE_RETCODE_CLIENT_DISABLES_AT = codes.CLIENT_DISABLES_AT
    TRADE_RETCODE_LOCKED = codes.LOCKED
    TRADE_RETCODE_FROZEN = codes.FROZEN
    TRADE_RETCODE_INVALID_FILL = codes.INVALID_FILL
    TRADE_RETCODE_CONNECTION = codes.CONNECTION
    TRADE_RETCODE_ONLY_REAL = codes.ONLY_REAL
    TRADE_RETCODE_LIMIT_ORDERS = codes.LIMIT_ORDERS
    TRADE_RETCODE_LIMIT_VOLUME = codes.LIMIT_VOLUME
    TRADE_RETCODE_INVALID_ORDER = codes.INVALID_ORDER
    TRADE_RETCODE_POSITION_CLOSED = codes.POSITION_CLOSED
    TRADE_RETCODE_INVALID_CLOSE_VOLUME = codes.INVALID_CLOSE_VOLUME
    TRADE_RETCODE_CLOSE_ORDER_EXIST = codes.CLOSE_ORDER_EXIST
    TRADE_RETCODE_LIMIT_POSITIONS = codes.LIMIT_POSITIONS
    TRADE_RETCODE_REJECT_CANCEL = codes.REJECT_CANCEL
    TRADE_RETCODE_LONG_ONLY = codes.LONG_ONLY
    TRADE_RETCODE_SHORT_ONLY = codes.SHORT_ONLY
    TRADE_RETCODE_CLOSE_ONLY = codes.CLOSE_ONLY
    TRADE_RETCODE_FIFO_CLOSE = codes.FIFO_CLOSE
    TRADE_RETCODE_HEDGE_PROHIBITED = codes.HEDGE_PROHIBITED

    RES_S_OK = codes.RES_S_OK
    RES_E_FAIL = codes.RES_E_FAIL
    RES_E_INVALID_PARAMS = codes.RES_E_INVALID_PARAMS
    RES_E_NO_MEMORY = codes.RES_E_NO_MEMORY
    RES_E_NOT_FOUND = codes.RES_E_NOT_FOUND
    RES_E_INVALID_VERSION = codes.RES_E_INVALID_VERSION
    RES_E_AUTH_FAILED = codes.RES_E_AUTH_FAILED
    RES_E_UNSUPPORTED = codes.RES_E_UNSUPPORTED
    RES_E_AUTO_TRADING_DISABLED = codes.RES_E_AUTO_TRADING_DISABLED
    RES_E_INTERNAL_FAIL = codes.RES_E_INTERNAL_FAIL
    RES_E_INTERNAL_FAIL_SEND = codes.RES_E_INTERNAL_FAIL_SEND
    RES_E_INTERNAL_FAIL_RECEIVE = codes.RES_E_INTERNAL_FAIL_RECEIVE
    RES_E_INTERNAL_FAIL_INIT = codes.RES_E_INTERNAL_FAIL_INIT
    RES_E_INTERNAL_FAIL_CONNECT = codes.RES_E_INTERNAL_FAIL_CONNECT
    RES_E_INTERNAL_FAIL_TIMEOUT = codes.RES_E_INTERNAL_FAIL_TIMEOUT

    ORDER_TYPE_BUY = 0
    ORDER_TYPE_SELL = 1
    ORDER_TYPE_BUY_LIMIT = 2
    ORDER_TYPE_SELL_LIMIT = 3
    ORDER_TYPE_BUY_STOP = 4
    ORDER_TYPE_SELL_STOP = 5
    ORDER_TYPE_BUY_STOP_LIMIT = 6
    ORDER_TYPE_SELL_STOP_LIMIT = 7
    ORDER_TYPE_CLOSE_BY = 8
    TRADE_ACTION_DEAL = 1
    TRADE_ACTION_PENDING = 5
    TRADE_ACTION_SLTP = 6
    TRADE_ACTION_MODIFY = 7
    TRADE_ACTION_REMOVE = 8
    TRADE_ACTION_CLOSE_BY = 10
    ORDER_FILLING_FOK = 0
    ORDER_FILLING_IOC = 1
    ORDER_FILLING_RETURN = 2
    ORDER_FILLING_BOC = 3
    ORDER_TIME_GTC = 0
    ORDER_TIME_DAY = 1
    ORDER_TIME_SPECIFIED = 2
    ORDER_TIME_SPECIFIED_DAY = 3
    ORDER_STATE_STARTED = 0
    ORDER_STATE_PLACED = 1
    ORDER_STATE_CANCELED = 2
    ORDER_STATE_PARTIAL = 3
    ORDER_STATE_FILLED = 4
    ORDER_STATE_REJECTED = 5
    ORDER_STATE_EXPIRED = 6
    ORDER_STATE_REQUEST_ADD = 7
    ORDER_STATE_REQUEST_MODIFY = 8
    ORDER_STATE_REQUEST_CANCEL = 9
    # ENUM_ORDER_REASON, ENUM_DEAL_REASON and ENUM_POSITION_REASON, in the order the MQL5
    # reference lists them (Order, Deal and Position Properties), numbered from 0: CLIENT,
    # MOBILE, WEB, EXPERT, then SL 4, TP 5, SO 6 for orders and deals — the values programs
    # read from the module (DEAL_REASON_SL 4, DEAL_REASON_TP 5, DEAL_REASON_SO 6).
    ORDER_REASON_CLIENT = 0
    ORDER_REASON_MOBILE = 1
    ORDER_REASON_WEB = 2
    ORDER_REASON_EXPERT = 3
    ORDER_REASON_SL = 4
    ORDER_REASON_TP = 5
    ORDER_REASON_SO = 6
    SYMBOL_TRADE_MODE_DISABLED = 0
    SYMBOL_TRADE_MODE_LONGONLY = 1
    SYMBOL_TRADE_MODE_SHORTONLY = 2
    SYMBOL_TRADE_MODE_CLOSEONLY = 3
    SYMBOL_TRADE_MODE_FULL = 4
    SYMBOL_TRADE_EXECUTION_REQUEST = 0
    SYMBOL_TRADE_EXECUTION_INSTANT = 1
    SYMBOL_TRADE_EXECUTION_MARKET = 2
    SYMBOL_TRADE_EXECUTION_EXCHANGE = 3
    ACCOUNT_TRADE_MODE_DEMO = 0
    ACCOUNT_MARGIN_MODE_RETAIL_NETTING = 0
    ACCOUNT_MARGIN_MODE_EXCHANGE = 1
    ACCOUNT_MARGIN_MODE_RETAIL_HEDGING = 2
    DEAL_TYPE_BUY = 0
    DEAL_TYPE_SELL = 1
    DEAL_ENTRY_IN = 0
    DEAL_ENTRY_OUT = 1
    DEAL_ENTRY_INOUT = 2
    DEAL_ENTRY_OUT_BY = 3
    DEAL_REASON_CLIENT = 0
    DEAL_REASON_MOBILE = 1
    DEAL_REASON_WEB = 2
    DEAL_REASON_EXPERT = 3
    DEAL_REASON_SL = 4
    DEAL_REASON_TP = 5
    DEAL_REASON_SO = 6
    DEAL_REASON_ROLLOVER = 7
    DEAL_REASON_VMARGIN = 8
    DEAL_REASON_SPLIT = 9
    POSITION_TYPE_BUY = 0
    POSITION_TYPE_SELL = 1
    POSITION_REASON_CLIENT = 0
    POSITION_REASON_MOBILE = 1
    POSITION_REASON_WEB = 2
    POSITION_REASON_EXPERT = 3
    # ENUM_COPY_TICKS (which ticks copy_ticks_range returns) and the TICK_FLAG bits of a
    # tick's `flags` (what changed in it), as the MQL5 reference numbers them.
    COPY_TICKS_ALL = -1
    COPY_TICKS_INFO = 1
    COPY_TICKS_TRADE = 2
    TICK_FLAG_BID = 2
    TICK_FLAG_ASK = 4
    TICK_FLAG_LAST = 8
    TICK_FLAG_VOLUME = 16
    TICK_FLAG_BUY = 32
    TICK_FLAG_SELL = 64


K = MT5Constants  # the short name the emulator's modules use
FILLING_BIT = {K.ORDER_FILLING_FOK: 1, K.ORDER_FILLING_IOC: 2}  # into SymbolInfo.filling_mode
_FILLING = {FillPolicy.FOK: K.ORDER_FILLING_FOK, FillPolicy.IOC: K.ORDER_FILLING_IOC}
_EXEMODE = {
    "request": K.SYMBOL_TRADE_EXECUTION_REQUEST,
    "instant": K.SYMBOL_TRADE_EXECUTION_INSTANT,
    "market": K.SYMBOL_TRADE_EXECUTION_MARKET,
    "exchange": K.SYMBOL_TRADE_EXECUTION_EXCHANGE,
}
# The filling types a market order may carry in each mode. metatrader5.com help, "Fill
# Policy" (its table of fill policies by type of execution): Instant and Request execution
# take Fill or Kill only; Market execution FOK or IOC; "for market orders, the Return
# policy is used only in the Exchange Execution mode". A server enables a subset: the
# symbol's filling_mode bitmask shows it (Return has no bit).
_POSSIBLE = {
    "request": {K.ORDER_FILLING_FOK},
    "instant": {K.ORDER_FILLING_FOK},
    "market": {K.ORDER_FILLING_FOK, K.ORDER_FILLING_IOC},
    "exchange": {K.ORDER_FILLING_FOK, K.ORDER_FILLING_IOC, K.ORDER_FILLING_RETURN},
}

_POSSIBLE_PENDING = {
    "request": {K.ORDER_FILLING_FOK},
    "instant": {K.ORDER_FILLING_FOK},
    "market": {K.ORDER_FILLING_FOK, K.ORDER_FILLING_IOC, K.ORDER_FILLING_RETURN},
    "exchange": {K.ORDER_FILLING_FOK, K.ORDER_FILLING_IOC, K.ORDER_FILLING_RETURN},
}


@dataclass(frozen=True, slots=True)
class Execution:
    """How the trade server executes a symbol's market orders."""

    exemode: int  # SymbolInfo.trade_exemode
    fillings: frozenset[int]  # the ORDER_FILLING_* values a market order may carry
    pending_fillings: frozenset[int]  # ... and a limit order (TRADE_ACTION_PENDING)
    # Request and Instant execution trade at the client's price within its deviation, or
    # requote; Market and Exchange execution set the price themselves: the MQL5 book
    # ("Closing a position: full and partial") says price and deviation have effect only
    # for Request and Instant, and MqlTradeRequest's reference that a market order under
    # Market Execution does not require a price.
    price_binds: bool

    @property
    def filling_mode(self) -> int:
        """SymbolInfo.filling_mode: the bitmask of the filling types allowed."""
        return sum(FILLING_BIT.get(filling, 0) for filling in self.fillings)


def execution(config: SymbolConfig, mode: ExecutionMode | None) -> Execution:
    """A symbol's execution: its mode, and the filling types both the mode and the venue's
    fill policies allow. With no mode, the emulator's first reading, kept because runs and
    tests are built on it: instant execution's requotes with whatever the venue's policies
    allow (and Return for limit orders) — a pairing real servers do not show (they allow
    Instant execution FOK only)."""
    offered = {_FILLING[policy] for policy in config.fill_policies}
    # A limit order rests on the venue's book, and the rest of a partial fill keeps resting:
    # Return, which "for limit and stop limit [orders] is applied in the Market Execution and
    # Exchange Execution modes" (metatrader5.com help, "Fill Policy"); in Request and Instant
    # execution that table has Fill or Kill only.
    resting = offered | {K.ORDER_FILLING_RETURN}
    if mode is None:
        return Execution(
            K.SYMBOL_TRADE_EXECUTION_INSTANT,
            frozenset(offered),
            frozenset(resting),
            price_binds=True,
        )
    if K.ORDER_FILLING_IOC in offered:
        # The venue keeps no remainder of a market order working: it matches a Return order
        # as IOC, so the rest of a partial fill is cancelled instead of waiting in the book.
        offered.add(K.ORDER_FILLING_RETURN)
    return Execution(
        _EXEMODE[mode],
        frozenset(_POSSIBLE[mode] & offered),
        frozenset(_POSSIBLE_PENDING[mode] & resting),
        price_binds=mode in ("request", "instant"),
    )
