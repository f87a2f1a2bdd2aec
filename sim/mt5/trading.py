"""Trading through the terminal: `order_check` and `order_send`, what the terminal itself
refuses, the trade server's side of a deal and of a removal, and the results it answers with.

A deal follows its symbol's execution mode (`sim.mt5.constants.execution`) and may close a
position it names (`position`); the venue keeps the account, and refuses a close with the
codes MT5 gives.

The request crosses the network in one place, `Trading._transmit`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from brokers import mt5_codes as codes
from engine.core.instruments import SymbolSpec, VolumeError, lots_to_units, units_to_lots
from engine.core.ports import (
    BrokerOrderState,
    BrokerRejected,
    FillPolicy,
    OrderRequest,
    OutcomeUnknown,
    RequestNotSent,
)
from engine.schemas import Direction
from sim.market import SymbolConfig
from sim.mt5.book import Book, Tag
from sim.mt5.config import TerminalConfig
from sim.mt5.constants import Execution, K, execution
from sim.mt5.records import REQUEST_FIELDS, ZERO, OrderCheckResult, OrderSendResult, TradeRequest
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
        """What the terminal itself refuses a deal for, before it goes to the server."""
        if (refused := self.refusal(request)) is not None:
            return refused
        config = self.venue.market.symbol_config(request.symbol)
        if config is None:
            return codes.INVALID
        if request.type not in (K.ORDER_TYPE_BUY, K.ORDER_TYPE_SELL):
            return codes.INVALID_ORDER
        rule = self._execution(config)
        if request.type_filling not in rule.fillings:
            return codes.INVALID_FILL
        try:
            units_to_lots(lots_to_units(request.volume, config.spec()), config.spec())
        except VolumeError:
            return codes.INVALID_VOLUME
        if rule.price_binds and request.price <= 0.0:  # the server sets it otherwise
            return codes.INVALID_PRICE
        return None

    def order_check(self, request: dict[str, Any]) -> Any:
        if self._session.ipc_down():
            return None
        trade = self._request(request)
        if trade is None:
            return None
        now = self.clock()
        state = self.venue.account_state(now)
        code = self._client_check(trade) if trade.action == K.TRADE_ACTION_DEAL else None
        margin = 0.0
        if code is None and trade.action == K.TRADE_ACTION_DEAL:
            spec = self.venue.spec(trade.symbol)
            assert spec is not None  # the client check found the symbol
            margin = self.venue.margin_required(
                trade.symbol, lots_to_units(trade.volume, spec), now
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
        if trade.action == K.TRADE_ACTION_DEAL:
            code = self._client_check(trade)
            if code is not None:
                return self._session.ok(self._result(trade, code))
            return self._transmit(trade, self._deal)
        if trade.action == K.TRADE_ACTION_REMOVE:
            if (refused := self.refusal(trade)) is not None:
                return self._session.ok(self._result(trade, refused))
            return self._transmit(trade, self._remove)
        if trade.action in (
            K.TRADE_ACTION_PENDING,
            K.TRADE_ACTION_SLTP,
            K.TRADE_ACTION_MODIFY,
            K.TRADE_ACTION_CLOSE_BY,
        ):
            raise NotImplementedError("the emulator models market orders and removals only")
        return self._session.ok(self._result(trade, codes.INVALID))

    # -- the trade server's side: a deal, a removal, the result ---------------------------------

    def _deal(self, trade: Any, t: float) -> Any:
        """The trade server's side of a market order: the venue matches it or refuses it.

        A request naming a `position` closes that position, in whole or in part, instead of
        opening one (MQL5 book, "Closing a position: full and partial": required on a
        hedging account, where an opposite order without it opens a second position;
        allowed on a netting account)."""
        config = self.venue.market.symbol_config(trade.symbol)
        assert config is not None  # the client check found the symbol
        closes = None
        if trade.position:
            closes = self._identifier(trade, t)
            if closes is None:
                return self._result(trade, codes.POSITION_CLOSED, t)
        spec = config.spec()
        units = lots_to_units(trade.volume, spec)
        price_binds = self._execution(config).price_binds
        order = OrderRequest(
            client_order_id=trade.comment,
            symbol=trade.symbol,
            direction=Direction.BUY if trade.type == K.ORDER_TYPE_BUY else Direction.SELL,
            units=units,
            lots=units_to_lots(units, spec),
            price=trade.price,
            # No bound: the venue then fills at its price without a requote.
            deviation_points=trade.deviation if price_binds else None,
            # IOC, or Return (matched as IOC: see `execution`).
            fill_policy=FillPolicy.FOK
            if trade.type_filling == K.ORDER_FILLING_FOK
            else FillPolicy.IOC,
            position_id=str(closes) if closes is not None else None,
        )
        try:
            report = self.venue.place(order, t)
        except BrokerRejected as refusal:
            return self._result(trade, refusal.code or codes.REJECT, t)
        ticket = int(report.order_id)
        tag = Tag(
            magic=trade.magic,
            comment=self._stored_comment(trade.comment),
            type_filling=trade.type_filling,
            price=trade.price,
            known_at=self._resync_time(t),
            closes=closes or 0,
        )
        self._book.add(ticket, tag)
        filled = report.filled_units
        if report.state is BrokerOrderState.WORKING:
            code = codes.PLACED
        else:
            code = codes.DONE if filled == units else codes.DONE_PARTIAL
        price = sum(f.units * f.price for f in report.fills) / filled if filled else 0.0
        return self._result(
            trade,
            code,
            t,
            order=ticket,
            deal=int(report.fills[-1].fill_id) if report.fills else 0,
            volume=filled / spec.contract_size,
            price=price,
        )

    def _identifier(self, trade: Any, t: float) -> int | None:
        """The identifier of the open position whose ticket the request names, on its
        symbol: the server's own positions are the terminal's book brought up to t (one it
        holds from an order whose replies were dropped is not found yet)."""
        self._book.catch_up(t)
        position = self._book.position(trade.position)
        if position is None or position.symbol != trade.symbol:
            return None
        return position.identifier

    def _remove(self, trade: Any, t: float) -> Any:
        tag = self._book.tag(trade.order)
        if tag is None or self._book.settled(trade.order, t).state is not BrokerOrderState.WORKING:
            return self._result(trade, codes.INVALID_ORDER, t)
        self.venue.cancel(str(trade.order), t)
        tag.done_at = t
        return self._result(trade, codes.DONE, t, order=trade.order)

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

    def _stored_comment(self, comment: str) -> str:
        length = self.config.stored_comment_length
        kept = comment if length is None else comment[:length]
        return kept + self.config.stored_comment_suffix

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
