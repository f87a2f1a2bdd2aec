"""The trade server's side of a request the terminal passed on: a deal, a pending order, a
change of a position's stops, a removal. Each runs at the server's time t, on the far side
of the wire (`Trading._transmit`), and answers with an `OrderSendResult`.

The venue keeps the account, the positions, their stops and the resting orders, and refuses
with the codes MT5 gives (10015 INVALID_PRICE, 10016 INVALID_STOPS, 10022
INVALID_EXPIRATION, 10025 NO_CHANGES, 10029 FROZEN, 10036 POSITION_CLOSED, 10038, 10039);
this module turns a request into the venue's terms and records what the terminal learns
(its `Tag`) in the book.

Sources (the MQL5 reference): "Trade Operation Types" (ENUM_TRADE_REQUEST_ACTIONS: DEAL,
PENDING, SLTP, MODIFY, REMOVE, CLOSE_BY and the fields each needs), "Trade Request Structure"
(MqlTradeRequest: `position` names a position by its ticket; `expiration` is read only for
ORDER_TIME_SPECIFIED; `sl` and `tp` of 0 mean none), "Requirements and Limitations in Making
Trades" (stops and pending prices at least SYMBOL_TRADE_STOPS_LEVEL points from the market;
no change within SYMBOL_TRADE_FREEZE_LEVEL), "Trade Server Return Codes".
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from brokers import mt5_codes as codes
from engine.core.instruments import lots_to_units, units_to_lots
from engine.core.ports import (
    BrokerOrderState,
    BrokerRejected,
    FillPolicy,
    OrderReport,
    OrderRequest,
)
from engine.core.vocabulary import OrderType
from engine.schemas import Direction
from sim.market import SymbolConfig
from sim.mt5.book import Book, Tag
from sim.mt5.config import TerminalConfig
from sim.mt5.constants import Execution, K
from sim.venue import Venue
from sim.wire import Deferred

BUYS = (K.ORDER_TYPE_BUY, K.ORDER_TYPE_BUY_LIMIT)
LIMITS = (K.ORDER_TYPE_BUY_LIMIT, K.ORDER_TYPE_SELL_LIMIT)
Result = Callable[..., Any]  # Trading._result: (trade, code, t, **done) -> OrderSendResult


class TradeServer:
    """The trade server's handling of each action, over the venue."""

    def __init__(
        self,
        venue: Venue,
        config: TerminalConfig,
        book: Book,
        execution_of: Callable[[SymbolConfig], Execution],
        result: Result,
        resync_time: Callable[[float], float],
    ) -> None:
        self.venue = venue
        self.config = config
        self._book = book
        self._execution = execution_of
        self._result = result
        self._resync_time = resync_time

    # -- a deal and a pending order: the venue places them -----------------------------------

    def deal(self, trade: Any, t: float) -> Any:
        """A market order: the venue matches it or refuses it.

        A request naming a `position` closes that position, in whole or in part, instead of
        opening one (MQL5 book, "Closing a position: full and partial": required on a
        hedging account, where an opposite order without it opens a second position;
        allowed on a netting account). `sl` and `tp` travel with it: the position it opens
        or adds to takes them; the venue answers 10016 for levels on the wrong side, nearer
        than the stops level, or on a symbol that takes no stops on orders."""
        return self._place(trade, t, OrderType.MARKET)

    def pending(self, trade: Any, t: float) -> Any:
        """TRADE_ACTION_PENDING, a BUY_LIMIT or SELL_LIMIT at `price`: the venue rests it,
        and the server answers 10008 PLACED with its ticket (no deal yet). Good till
        cancelled, or till `expiration` (server seconds) with ORDER_TIME_SPECIFIED; the
        venue refuses an expiration already past (10022) and a limit that is marketable or
        nearer than the stops level (10015)."""
        return self._place(trade, t, OrderType.LIMIT)

    def _place(self, trade: Any, t: float, kind: OrderType) -> Any:
        config = self.venue.market.symbol_config(trade.symbol)
        assert config is not None  # the client check found the symbol
        # The venue's own orders made on the way to t (stops that triggered) take their
        # tickets before this one: the book learns of them first, in ticket order.
        self._book.take_server_orders(t)
        closes = None
        if trade.position:
            closes = self.identifier(trade, t)
            if closes is None:
                return self._result(trade, codes.POSITION_CLOSED, t)
        spec = config.spec()
        units = lots_to_units(trade.volume, spec)
        rule = self._execution(config)
        limit = kind is OrderType.LIMIT
        order = OrderRequest(
            client_order_id=trade.comment,
            symbol=trade.symbol,
            direction=Direction.BUY if trade.type in BUYS else Direction.SELL,
            units=units,
            lots=units_to_lots(units, spec),
            price=trade.price,
            # No bound: the venue then fills at its price without a requote. A limit's
            # bound is its price.
            deviation_points=trade.deviation if rule.price_binds and not limit else None,
            fill_policy=_fill_policy(trade.type_filling, config),
            order_type=kind,
            limit_price=trade.price if limit else None,
            expires_at=self._expiry(trade) if limit else None,
            position_id=str(closes) if closes is not None else None,
            stop_loss=trade.sl or None,
            take_profit=trade.tp or None,
        )
        try:
            report = self.venue.place(order, t)
        except BrokerRejected as refusal:
            return self._result(trade, refusal.code or codes.REJECT, t)
        due = self.venue.held_until(report.order_id)
        if due is not None:
            # A last look: order_send blocks until the dealer decides, and the terminal
            # learns of the order only then (a rejected one never was).
            answer = partial(self._after_last_look, trade, report.order_id, due, closes)
            return Deferred(due - t, answer)
        return self._answer(trade, report, t, closes, limit)

    def _after_last_look(self, trade: Any, order_id: str, due: float, closes: int | None) -> Any:
        """The answer when the last look ends: 10006 with no order or deal (MT5's market
        execution relays a dealer's refusal so), or the deal."""
        if self.venue.last_look_refusal(order_id, due) is not None:
            return self._result(trade, codes.REJECT, due)
        # Only market orders are held: a limit rests and is answered at once.
        return self._answer(trade, self.venue.status(order_id, due), due, closes, limit=False)

    def _answer(
        self, trade: Any, report: OrderReport, t: float, closes: int | None, limit: bool
    ) -> Any:
        """The result of an order the venue took, recorded in the terminal's book."""
        config = self.venue.market.symbol_config(trade.symbol)
        assert config is not None  # the venue took an order for it
        spec = config.spec()
        units = report.requested_units
        ticket = int(report.order_id)
        specified = limit and trade.type_time == K.ORDER_TIME_SPECIFIED
        tag = Tag(
            magic=trade.magic,
            comment=self._stored_comment(trade.comment),
            type_filling=trade.type_filling,
            price=trade.price,
            known_at=self._resync_time(t),
            closes=closes or 0,
            type_time=K.ORDER_TIME_SPECIFIED if specified else K.ORDER_TIME_GTC,
            expiration=trade.expiration if specified else 0,
        )
        self._book.add(ticket, tag)
        filled = report.filled_units
        if report.state is BrokerOrderState.WORKING:
            # A pending order rests; a market order the venue holds for a dealer's delay is
            # placed too, and its deal follows.
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
            volume=(filled if filled or not limit else units) / spec.contract_size,
            price=price,
        )

    def _expiry(self, trade: Any) -> float | None:
        """A pending order's expiry in driver time: `expiration` is read only with
        ORDER_TIME_SPECIFIED (MqlTradeRequest), in the trade server's seconds."""
        if trade.type_time != K.ORDER_TIME_SPECIFIED:
            return None
        return self.config.utc_seconds(trade.expiration)

    def identifier(self, trade: Any, t: float) -> int | None:
        """The identifier of the open position whose ticket the request names, on its
        symbol: the server's own positions are the terminal's book brought up to t (one it
        holds from an order whose replies were dropped is not found yet)."""
        self._book.catch_up(t)
        position = self._book.position(trade.position)
        if position is None or position.symbol != trade.symbol:
            return None
        return position.identifier

    # -- a position's stops, a removal -----------------------------------------------------------

    def sltp(self, trade: Any, t: float) -> Any:
        """TRADE_ACTION_SLTP: the position the request names (its ticket, on its symbol)
        takes the request's `sl` and `tp` as they are to be — 0 removes a level, as
        MqlTradeRequest reads 0 for none. The venue answers 10025 NO_CHANGES for the levels
        it already has, 10029 FROZEN for a level within the freeze level of the market,
        10016 for a new level on the wrong side or nearer than the stops level. A position
        not open (closed, or never ours) is 10036 POSITION_CLOSED. A real server answers
        with no order and no deal: the change is no order."""
        identifier = self.identifier(trade, t)
        if identifier is None:
            return self._result(trade, codes.POSITION_CLOSED, t)
        try:
            self.venue.set_protection(str(identifier), trade.sl or None, trade.tp or None, t)
        except BrokerRejected as refusal:
            return self._result(trade, refusal.code or codes.REJECT, t)
        return self._result(trade, codes.DONE, t)

    def remove(self, trade: Any, t: float) -> Any:
        """TRADE_ACTION_REMOVE of a pending order still working: the venue cancels it with
        whatever it filled. An order done, expired or not ours is 10035 INVALID_ORDER."""
        tag = self._book.tag(trade.order)
        if tag is None or self._book.settled(trade.order, t).state is not BrokerOrderState.WORKING:
            return self._result(trade, codes.INVALID_ORDER, t)
        self.venue.cancel(str(trade.order), t)
        tag.done_at = t
        return self._result(trade, codes.DONE, t, order=trade.order)

    def _stored_comment(self, comment: str) -> str:
        length = self.config.stored_comment_length
        kept = comment if length is None else comment[:length]
        return kept + self.config.stored_comment_suffix


def _fill_policy(type_filling: int, config: SymbolConfig) -> FillPolicy:
    """The venue's fill policy for a request's ORDER_FILLING: IOC, or Return (the venue
    matches a market order's Return as IOC: see `sim.mt5.constants.execution`; a limit
    order rests whatever its policy), else FOK. A Return the symbol takes only as FOK (the
    venue offers no IOC) travels as FOK."""
    if type_filling == K.ORDER_FILLING_FOK:
        return FillPolicy.FOK
    if type_filling == K.ORDER_FILLING_RETURN and FillPolicy.IOC not in config.fill_policies:
        return FillPolicy.FOK
    return FillPolicy.IOC
