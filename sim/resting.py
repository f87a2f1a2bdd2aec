"""What the trade server watches on the quote path: resting limit orders, and the
stop-loss and take-profit of open positions.

Nothing here runs on a clock of its own. Every public call into the venue first brings the
watch up to the call's time (`Triggers.advance`): it walks the quotes struck since it last
ran, for the watched symbols only, in time order, and on each quote expires, triggers and
fills as a server would have at that quote. With nothing watched that costs one test.

MT5 behaviour modelled (the MQL4 book's "Requirements and Limitations in Making Trades",
book.mql4.com/appendix/limits, whose table MT5's SYMBOL_TRADE_STOPS_LEVEL and
SYMBOL_TRADE_FREEZE_LEVEL follow; the MQL5 reference's Trade Server Return Codes and
ENUM_ORDER_REASON / ENUM_DEAL_REASON):
- a long position's stop-loss and take-profit trigger on the Bid, a short's on the Ask
  (the price it would close at), and close it at the market: a gap fills beyond the level;
  the server books the close as an order of its own (ORDER_REASON_SL / _TP) whose comment
  is "[sl 1.08500]" or "[tp 1.09000]";
- a Buy Limit activates when the Ask reaches its price, a Sell Limit when the Bid does,
  and fills at that price or better; a pending order with ORDER_TIME_SPECIFIED is removed
  at its expiry (ORDER_STATE_EXPIRED);
- limit prices and stops must be at least SYMBOL_TRADE_STOPS_LEVEL points from the
  market (10015 INVALID_PRICE, 10016 INVALID_STOPS).
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from engine.core.instruments import SymbolSpec
from engine.core.ports import BrokerOrderState, OrderRequest
from engine.core.vocabulary import ExitReason, OrderType
from engine.schemas import Direction, MarketSnapshot
from sim import rejections as codes
from sim.ledger import LedgerOrder
from sim.positions import VenuePosition, stops_problem
from sim.rejections import refuse

if TYPE_CHECKING:
    from sim.venue import Venue


class QueueConfig(BaseModel):
    """Where a resting limit order stands in the queue at its price.

    "through": it fills only once the market trades at least one point through the limit
    (everyone ahead of it at the price was filled: the conservative reading of a backtest);
    "touch": at the limit exactly it fills with `touch_fill_probability` per quote, through
    it always."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    limit_queue: Literal["through", "touch"] = "through"
    touch_fill_probability: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5


def check_limit(order: OrderRequest, quote: MarketSnapshot, spec: SymbolSpec, t: float) -> None:
    """A limit order's price and expiry, or the MT5 refusal: a Buy Limit must lie below the
    Ask, a Sell Limit above the Bid (else it is marketable), by at least the stops level
    (10015 INVALID_PRICE); an expiry not after now is 10022 INVALID_EXPIRATION."""
    limit = order.limit_price
    if limit is None:
        raise refuse(codes.INVALID_PRICE, "a limit order needs a limit price")
    if order.expires_at is not None and order.expires_at <= t:
        raise refuse(codes.INVALID_EXPIRATION, f"expiry {order.expires_at} is not after {t}")
    buy = order.direction is Direction.BUY
    touch = quote.ask if buy else quote.bid
    room = (touch - limit) if buy else (limit - touch)
    minimum = max(spec.stops_level_points, 1) * spec.point  # marketable at 0 points
    if room < minimum - spec.point / 2:
        side = "below the ask" if buy else "above the bid"
        raise refuse(
            codes.INVALID_PRICE,
            f"limit {limit} must be {side} {touch} by at least "
            f"{max(spec.stops_level_points, 1)} points",
        )


def check_order_stops(
    order: OrderRequest, quote: MarketSnapshot, spec: SymbolSpec, closes: int
) -> None:
    """Stops carried by an order, or 10016: where the symbol takes none on an order
    (SYMBOL_ORDER_MODE without SL/TP), on an order that closes a position, or on the wrong
    side of / nearer than the stops level to the price they are judged at: a long's against
    the Bid, a short's against the Ask, a limit order's against its limit price."""
    if not spec.stops_on_order:
        raise refuse(codes.INVALID_STOPS, f"{spec.symbol} takes no stops on an order")
    if closes:
        raise refuse(codes.INVALID_STOPS, "an order closing a position carries no stops")
    buy = order.direction is Direction.BUY
    if order.order_type is OrderType.LIMIT and order.limit_price is not None:
        reference = order.limit_price
    else:
        reference = quote.bid if buy else quote.ask
    problem = stops_problem(order.direction, order.stop_loss, order.take_profit, reference, spec)
    if problem is not None:
        raise refuse(codes.INVALID_STOPS, problem)


def _level_text(level: float, digits: int) -> str:
    return f"{level:.{digits}f}"


class Triggers:
    def __init__(self, venue: Venue, queue: QueueConfig, seed: int) -> None:
        self.venue = venue
        self.queue = queue
        # The touch draws: the venue's own stream, apart from the rejections' one.
        self._rng = np.random.default_rng(np.random.SeedSequence([seed, 0x746F756368]))
        self.resting: dict[int, LedgerOrder] = {}  # ticket -> a working limit order
        self.advanced_to = float("-inf")
        self.server_tickets: list[int] = []  # orders the server itself created

    def rest(self, order: LedgerOrder) -> None:
        self.resting[order.ticket] = order

    def drop(self, order: LedgerOrder) -> None:
        self.resting.pop(order.ticket, None)

    def advance(self, t: float) -> None:
        """Everything the server did on the quotes struck in (the last advance, t]."""
        if t <= self.advanced_to:
            return
        since, self.advanced_to = self.advanced_to, t
        book = self.venue.book
        if not book.protected and not self.resting:
            return  # the hot path: nothing watched, nothing to walk
        symbols = {p.symbol for p in book.protected.values()}
        symbols.update(o.symbol for o in self.resting.values())
        market = self.venue.market
        walks = [market.quotes_between(symbol, since, t) for symbol in sorted(symbols)]
        for quote in heapq.merge(*walks, key=lambda q: q.time):
            self._on_quote(quote)
            if not book.protected and not self.resting:
                break
        for order in list(self.resting.values()):
            if order.expires_at is not None and order.expires_at <= t:
                self._expire(order)

    def _on_quote(self, quote: MarketSnapshot) -> None:
        symbol, now = quote.symbol, quote.time
        for order in [o for o in self.resting.values() if o.symbol == symbol]:
            if order.expires_at is not None and order.expires_at <= now:
                self._expire(order)
        for position in [p for p in self.venue.book.protected.values() if p.symbol == symbol]:
            self._check_levels(position, quote)
        for order in [o for o in self.resting.values() if o.symbol == symbol]:
            self._check_limit(order, quote)

    def _expire(self, order: LedgerOrder) -> None:
        # Removed at its expiry, whenever the server next looks (the report has no time).
        self.drop(order)
        self.venue.finish(order, BrokerOrderState.EXPIRED)

    def _check_levels(self, position: VenuePosition, quote: MarketSnapshot) -> None:
        long = position.direction is Direction.BUY
        price = quote.bid if long else quote.ask
        sl, tp = position.stop_loss, position.take_profit
        if sl is not None and (price <= sl if long else price >= sl):
            reason, level = ExitReason.STOP_LOSS, sl
        elif tp is not None and (price >= tp if long else price <= tp):
            reason, level = ExitReason.TAKE_PROFIT, tp
        else:
            return
        self._close_by_server(position, reason, level, price, max(quote.time, position.levels_at))

    def _close_by_server(
        self,
        position: VenuePosition,
        reason: ExitReason,
        level: float,
        price: float,
        t: float,
    ) -> None:
        """The server closes the position at the quote's price: an order of its own, with
        one deal, commented as MT5 comments it ("[sl 1.08500]")."""
        venue = self.venue
        spec = venue.spec(position.symbol)
        assert spec is not None
        kind = "sl" if reason is ExitReason.STOP_LOSS else "tp"
        order = LedgerOrder(
            venue.new_ticket(),
            f"[{kind} {_level_text(level, spec.digits)}]",
            position.symbol,
            Direction.SELL if position.direction is Direction.BUY else Direction.BUY,
            position.units,
            t,
            BrokerOrderState.WORKING,
            stop_loss=position.stop_loss,
            take_profit=position.take_profit,
            position_id=position.identifier,
            reason=reason,
        )
        venue.orders.add(order)
        self.server_tickets.append(order.ticket)
        venue.closing[order.ticket] = position.identifier
        venue.fill(order, order.units, price, t)
        venue.finish(order, BrokerOrderState.DONE)

    def _check_limit(self, order: LedgerOrder, quote: MarketSnapshot) -> None:
        assert order.limit_price is not None
        spec = self.venue.spec(order.symbol)
        assert spec is not None
        buy = order.direction is Direction.BUY
        price = quote.ask if buy else quote.bid
        through = (order.limit_price - price) if buy else (price - order.limit_price)
        half = spec.point / 2
        if through < -half:
            return  # not reached
        if through < half:  # at the limit exactly
            if self.queue.limit_queue == "through":
                return
            if self._rng.random() >= self.queue.touch_fill_probability:
                return
        left = order.units - sum(f.units for f in order.fills)
        closes = self.venue.closing.get(order.ticket, 0)
        if closes:  # a close rests only while its position holds the units
            position = self.venue.book.get(closes)
            left = min(left, position.units if position is not None else 0)
            if left == 0:
                self.drop(order)
                self.venue.finish(order, BrokerOrderState.CANCELLED)
                return
        depth = self.venue.liquidity.depth(order.symbol, quote.time)
        units = left if depth is None else min(left, depth.top_units)
        self.venue.fill(order, units, price, max(quote.time, order.time))
        if sum(f.units for f in order.fills) >= order.units:
            self.drop(order)
            self.venue.finish(order, BrokerOrderState.DONE)
