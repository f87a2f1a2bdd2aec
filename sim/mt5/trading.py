"""Trading through the terminal: `order_check` and `order_send`, what the terminal itself
refuses before a request leaves, and the results it answers with. The trade server's side
of each action is `sim.mt5.server`.

Actions modelled (MQL5 reference, "Trade Operation Types"): TRADE_ACTION_DEAL (opening, or
closing the `position` it names, with `sl`/`tp`), TRADE_ACTION_PENDING (BUY_LIMIT and
SELL_LIMIT, good till cancelled or till a specified time), TRADE_ACTION_SLTP and
TRADE_ACTION_REMOVE. Not modelled, and answered as a server that does not offer them:
stop and stop-limit orders and TRADE_ACTION_CLOSE_BY — 10035 INVALID_ORDER, the symbol's
`order_mode` (symbol_info) leaving out their bits, as a server that forbids them shows it;
TRADE_ACTION_MODIFY of a pending order — 10013 INVALID, since the venue cannot move a
resting order (a real server would modify it: a program that needs it removes the order
and places another).

The request crosses the network in one place, `Trading._transmit`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from brokers import mt5_codes as codes
from engine.core.instruments import SymbolSpec, VolumeError, lots_to_units, units_to_lots
from engine.core.ports import (
    OutcomeUnknown,
    RequestNotSent,
)
from sim.market import SymbolConfig
from sim.mt5.book import Book
from sim.mt5.config import TerminalConfig
from sim.mt5.constants import Execution, K, execution
from sim.mt5.records import REQUEST_FIELDS, ZERO, OrderCheckResult, OrderSendResult, TradeRequest
from sim.mt5.server import LIMITS, TradeServer
from sim.mt5.session import Session, typed
from sim.network import FaultKind
from sim.venue import Venue
from sim.wire import Wire

_COMMENT = re.compile(r"[A-Za-z0-9]*")


class Trading:
    """The terminal's trade functions over the venue, and the server's side of them."""

    def __init__(
        self,
        venue: Venue,
        wire: Wire,
        config: TerminalConfig,
        session: Session,
        book: Book,
        refusal: Callable[[Any], int | None],
    ) -> None:
        """`refusal(request)`: why the terminal or the account forbids a trade request, if
        they do (its return code), before anything is sent (MT5Emulator.refusal)."""
        self.venue = venue
        self.clock = wire.clock.now
        self.wire = wire
        self.config = config
        self.refusal = refusal
        self._session = session
        self._book = book
        self._request_id = 0
        self._server = TradeServer(
            venue, config, book, self._execution, self._result, self._resync_time
        )
        for symbol in config.execution_modes:
            symbol_config = venue.market.symbol_config(symbol)
            if symbol_config is None:
                raise ValueError(f"execution mode for {symbol}, which the venue does not list")
            if not self._execution(symbol_config).fillings:
                # A real server's filling bitmask always agrees with its execution mode.
                raise ValueError(
                    f"{symbol}: the venue's fill policies {symbol_config.fill_policies} leave "
                    f"{config.execution_modes[symbol]} execution no filling type"
                )

    def _execution(self, config: SymbolConfig) -> Execution:
        return execution(config, self.config.execution_modes.get(config.symbol))

    # -- trade requests: what the terminal refuses, order_check, order_send --------------------

    def _request(self, request: Any) -> Any:
        """The request with every field filled in, or None with (-2, ...) for anything a
        terminal refuses to pass on."""
        if not isinstance(request, dict):
            self._session.invalid("request")
            return None
        for name, value in request.items():
            kind = REQUEST_FIELDS.get(name)
            if kind is None or not typed(value, kind) or (kind is int and value < 0):
                self._session.invalid(name)
                return None
        comment = request.get("comment", "")
        if not _COMMENT.fullmatch(comment) or len(comment) > self.config.comment_max_length:
            self._session.invalid("comment")
            return None
        if "action" not in request:
            self._session.invalid("action")
            return None
        filled = {name: request.get(name, ZERO[kind]) for name, kind in REQUEST_FIELDS.items()}
        # From here on the venue's name: a name the terminal does not list becomes none,
        # which the checks answer as for any unknown symbol (10013).
        filled["symbol"] = self.config.venue_symbol(filled["symbol"]) or ""
        return TradeRequest(**filled)

    def _client_check(self, request: Any) -> int | None:
        """What the terminal itself refuses a deal or a pending order for, before it goes to
        the server."""
        if (refused := self.refusal(request)) is not None:
            return refused
        config = self.venue.market.symbol_config(request.symbol)
        if config is None:
            return codes.INVALID
        pending = request.action == K.TRADE_ACTION_PENDING
        allowed = LIMITS if pending else (K.ORDER_TYPE_BUY, K.ORDER_TYPE_SELL)
        if request.type not in allowed:
            # Stop and stop-limit orders: not in the symbol's order_mode (see the module).
            return codes.INVALID_ORDER
        rule = self._execution(config)
        if request.type_filling not in (rule.pending_fillings if pending else rule.fillings):
            return codes.INVALID_FILL
        try:
            units_to_lots(lots_to_units(request.volume, config.spec()), config.spec())
        except VolumeError:
            return codes.INVALID_VOLUME
        if pending:
            return self._pending_check(request)
        if rule.price_binds and request.price <= 0.0:  # the server sets it otherwise
            return codes.INVALID_PRICE
        return None

    def _pending_check(self, request: Any) -> int | None:
        """A pending order needs its price, and a lifetime the symbol's expiration_mode
        allows: GTC, or SPECIFIED with an `expiration` (MqlTradeRequest reads it only
        then). DAY and SPECIFIED_DAY are not offered (expiration_mode GTC | SPECIFIED):
        10022, as "invalid order expiration date". An expiration already past is the
        server's to refuse (the venue, 10022)."""
        if request.price <= 0.0:
            return codes.INVALID_PRICE
        if request.type_time == K.ORDER_TIME_GTC:
            return None
        if request.type_time == K.ORDER_TIME_SPECIFIED and request.expiration > 0:
            return None
        return codes.INVALID_EXPIRATION

    def order_check(self, request: dict[str, Any]) -> Any:
        if self._session.ipc_down():
            return None
        trade = self._request(request)
        if trade is None:
            return None
        now = self.clock()
        state = self.venue.account_state(now)
        # A deal and a pending order are checked as the server would take them, margin
        # included (order_check reports the margin an order needs, pending or not); other
        # actions change no exposure and pass (the server judges them on sending).
        places = trade.action in (K.TRADE_ACTION_DEAL, K.TRADE_ACTION_PENDING)
        code = self._client_check(trade) if places else None
        margin = 0.0
        if code is None and places:
            spec = self.venue.spec(trade.symbol)
            assert spec is not None  # the client check found the symbol
            # A deal that closes the position it names frees margin: it needs none (the
            # venue asks none of it either).
            margin = (
                0.0
                if trade.position
                else self.venue.margin_required(
                    trade.symbol, lots_to_units(trade.volume, spec), now
                )
            )
            code = self._server_check(spec, margin, state.free_margin, now)
        free = state.free_margin - margin
        used = state.margin_used + margin
        return self._session.ok(
            OrderCheckResult(
                retcode=code or 0,
                balance=state.balance,
                equity=state.equity,
                profit=state.equity - state.balance,
                margin=used,
                margin_free=free,
                margin_level=state.equity / used * 100 if used else 0.0,
                comment=codes.describe(code) if code else "Done",
                request=trade,
            )
        )

    def _server_check(self, spec: SymbolSpec, margin: float, free: float, now: float) -> int | None:
        """What the trade server would refuse the deal for (order_check's view of it)."""
        if int(spec.trade_mode) == K.SYMBOL_TRADE_MODE_DISABLED:
            return codes.TRADE_DISABLED
        if not self.venue.market.is_open(now):
            return codes.MARKET_CLOSED
        if margin > free:
            return codes.NO_MONEY
        return None

    def order_send(self, request: dict[str, Any]) -> Any:
        if self._session.ipc_down():
            return None
        trade = self._request(request)
        if trade is None:
            return None
        self._request_id += 1
        action = trade.action
        if action in (K.TRADE_ACTION_DEAL, K.TRADE_ACTION_PENDING):
            code = self._client_check(trade)
            if code is not None:
                return self._session.ok(self._result(trade, code))
            server = self._server
            return self._transmit(
                trade, server.deal if action == K.TRADE_ACTION_DEAL else server.pending
            )
        if action in (K.TRADE_ACTION_SLTP, K.TRADE_ACTION_REMOVE):
            if (refused := self.refusal(trade)) is not None:
                return self._session.ok(self._result(trade, refused))
            if (
                action == K.TRADE_ACTION_SLTP
                and self.venue.market.symbol_config(trade.symbol) is None
            ):
                return self._session.ok(self._result(trade, codes.INVALID))
            execute = self._server.sltp if action == K.TRADE_ACTION_SLTP else self._server.remove
            return self._transmit(trade, execute)
        if action == K.TRADE_ACTION_CLOSE_BY:
            return self._session.ok(self._result(trade, codes.INVALID_ORDER))
        return self._session.ok(self._result(trade, codes.INVALID))  # MODIFY, and the unknown

    # -- the result, and when the terminal learns of an order --------------------------------

    def _result(self, trade: Any, code: int, t: float | None = None, **done: Any) -> Any:
        quote = self.venue.quote(trade.symbol, t) if t is not None and trade.symbol else None
        comment = {
            codes.DONE: "Request executed",
            codes.DONE_PARTIAL: "Request executed partially",
            codes.PLACED: "Order placed",
        }.get(code, codes.describe(code))
        return OrderSendResult(
            retcode=code,
            deal=done.get("deal", 0),
            order=done.get("order", 0),
            volume=done.get("volume", 0.0),
            price=done.get("price", 0.0),
            bid=quote.bid if quote else 0.0,
            ask=quote.ask if quote else 0.0,
            comment=comment,
            request_id=self._request_id,
            retcode_external=0,
            request=trade,
        )

    def _resync_time(self, t: float) -> float:
        """When the terminal learns of an order the server executed at t: at once, unless the
        server's answers are being dropped — then when the partition ends."""
        if self.wire.network is not None:
            for window in self.wire.network.config.faults:
                if window.kind is FaultKind.DROP_REPLIES and window.start <= t < window.end:
                    return window.end
        return t

    # -- the wire: the one place a request crosses the network ----------------------------------

    def _transmit(self, trade: Any, execute: Callable[[Any, float], Any]) -> Any:
        """Carry a request to the trade server over the wire and wait for its answer."""
        try:
            result = self.wire.call(lambda: execute(trade, self.clock()), self._session.ipc_timeout)
        except RequestNotSent:  # the server is down: nothing leaves the terminal
            return self._session.ok(self._result(trade, codes.CONNECTION))
        except OutcomeUnknown:
            self._session.fail(codes.RES_E_INTERNAL_FAIL_TIMEOUT, "IPC timeout")
            return None
        return self._session.ok(result)
