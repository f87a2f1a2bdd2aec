"""What the terminal knows of orders, deals and positions beyond the venue's ledger.

The terminal tags every order it sent (magic, stored comment, when it learns of it) and
keeps a book of open positions and of every deal, brought up to date as fills become
visible (`catch_up`) rather than replayed from every order on every call: a run's history
calls then cost what the new fills cost, not what the whole history does. Tags of orders
that can no longer change, and deals, are spilled out of memory (`SpilledRecords`).
"""

from __future__ import annotations

import heapq
import re
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from engine.core.ports import BrokerFill, BrokerOrderState, ExitReason
from sim.account import MarginMode
from sim.mt5.config import TerminalConfig
from sim.mt5.constants import K
from sim.mt5.records import TradeDeal
from sim.spilled import SpilledRecords
from sim.venue import LedgerOrder, Venue


@dataclass(slots=True)
class Tag:
    """What the terminal knows of an order beyond the venue's ledger."""

    magic: int
    comment: str  # as the server stored it
    type_filling: int
    price: float  # as requested
    known_at: float  # when the terminal learns of it: later if the replies were dropped
    done_at: float | None = None  # when it was removed
    closes: int = 0  # the identifier of the position it closes (MqlTradeRequest.position)
    type_time: int = K.ORDER_TIME_GTC  # a pending order's lifetime (MqlTradeRequest)
    expiration: int = 0  # ... and its end, server seconds, with ORDER_TIME_SPECIFIED
    reason: int = K.ORDER_REASON_EXPERT  # ENUM_ORDER_REASON: SL or TP for the server's own


@dataclass(slots=True)
class Position:
    """An open position, as the terminal books it from the deals it has seen.

    MQL5 reference, Position Properties: POSITION_IDENTIFIER is the ticket of the order
    that opened the position and "does not change throughout its life cycle"; a netting
    reversal keeps it, but "POSITION_TICKET is replaced with the ticket of the order that
    led to the reversal", and the ticket also changes "when charging swaps with position
    re-opening". MqlTradeRequest.position names the ticket.
    """

    identifier: int
    ticket: int
    symbol: str
    units: int  # signed
    cost: float  # signed units x open price
    time: float
    updated: float
    magic: int
    comment: str


class TimeIndex:
    """Where in a history (keys in increasing order) a time window begins, so a query reads
    the window and not the whole history. Times may step back a little between keys (a
    resting order's fill is stamped when it was due), so the index keeps the running
    maximum: every key before the one it names is earlier than the time asked for."""

    def __init__(self) -> None:
        self._latest = array("d")  # the latest time among the keys so far, per key
        self._keys = array("q")

    def add(self, time: float, key: int) -> None:
        self._latest.append(max(time, self._latest[-1]) if self._latest else time)
        self._keys.append(key)

    def first_key_from(self, time: float) -> int | None:
        """The first key that may be at or after `time`; None if none can be."""
        at = bisect_left(self._latest, time)
        return self._keys[at] if at < len(self._keys) else None

    def clear(self) -> None:
        self._latest, self._keys = array("d"), array("q")


class Book:
    """The terminal's tags and its book, kept as fills become visible."""

    def __init__(self, venue: Venue, config: TerminalConfig) -> None:
        self.venue = venue
        self.config = config
        # What the terminal knows of each order: of those that may still change (working,
        # or not yet known) in memory, with the fills booked so far; of the rest, spilled.
        self.open: dict[int, tuple[Tag, int]] = {}  # ticket -> (tag, its fills booked)
        self.closed_tags: SpilledRecords[Tag] = SpilledRecords()
        # The book: open positions and every deal.
        self.positions: dict[Any, Position] = {}
        self.deals: SpilledRecords[TradeDeal] = SpilledRecords()  # by deal, grouped by order
        self._last_deal = 0
        # Server time of every order's setup and every deal: history windows start there.
        self.orders_by_time = TimeIndex()
        self.deals_by_time = TimeIndex()
        # Swap re-opens: identifier -> (its new ticket, the last deal booked before it), so
        # that a replay of the deals gives the position the ticket it has now.
        self._reopened: dict[int, tuple[int, int]] = {}
        # The last of the server's own orders (stops that triggered) the book has taken:
        # the venue is asked only for those after it.
        self._server_cursor = 0

    def add(self, ticket: int, tag: Tag) -> None:
        """An order the server has just taken: open, no fills booked yet."""
        self.open[ticket] = (tag, 0)
        self.orders_by_time.add(self.config.server_seconds(self.venue.orders[ticket].time), ticket)

    def settled(self, ticket: int, t: float) -> LedgerOrder:
        """The ledger order after any fill due by t (a resting order fills when looked at)."""
        self.venue.status(str(ticket), t)
        return self.venue.orders[ticket]

    def catch_up(self, t: float) -> None:
        """Look at every order the terminal knows by t that may still change, as a terminal
        refreshing its lists does (a resting order due by t fills now), and take the fills
        that became visible into the book."""
        self.take_server_orders(t)
        fresh = []
        for ticket in sorted(self.open):
            tag, booked = self.open[ticket]
            if tag.known_at > t:
                continue
            order = self.settled(ticket, t)
            fresh += [(int(f.fill_id), order, tag, f) for f in order.fills[booked:]]
            if order.state is BrokerOrderState.WORKING:
                self.open[ticket] = (tag, len(order.fills))
            else:
                del self.open[ticket]
                self.closed_tags.add(ticket, tag)
        fresh.sort(key=lambda found: found[0])
        if fresh and fresh[0][0] < self._last_deal:
            # An order learnt of late (its replies were dropped) holds deals older than
            # some already booked: netting depends on the order of deals, so replay all.
            self.rebook(t)
            return
        for deal_ticket, order, tag, fill in fresh:
            self.book_deal(deal_ticket, order, tag, fill)

    def take_server_orders(self, t: float) -> None:
        """The orders the server made by t on its own — a stop-loss or a take-profit that
        triggered, closing a position — as the terminal shows them: orders and deals with
        ORDER_REASON_SL / ORDER_REASON_TP (4, 5) and DEAL_REASON_SL / DEAL_REASON_TP (4, 5),
        the position's magic, the server's comment "[sl 1.08500]" (MQL5 reference, Order and
        Deal Properties: ENUM_ORDER_REASON "order placed as a result of Stop Loss
        activation", ENUM_DEAL_REASON "deal executed as a result of Stop Loss
        activation"; the comment is what practitioners parse). Only those closing a position
        one of this account's orders opened: another login's are not in its lists. The
        terminal learns of one no earlier than of the order that opened the position."""
        self.venue.advance(t)  # the stops and limits due by t, triggered before the look
        for order in self.venue.server_orders(self._server_cursor):
            self._server_cursor = order.ticket
            opener = self.tag(order.position_id)
            if opener is None:
                continue
            reason = _ORDER_REASON.get(order.reason, K.ORDER_REASON_EXPERT)
            self.add(
                order.ticket,
                Tag(
                    magic=opener.magic,
                    comment=order.client_order_id,
                    type_filling=K.ORDER_FILLING_FOK,  # unconfirmed: no source gives it
                    price=_level(order.client_order_id),
                    known_at=max(order.time, opener.known_at),
                    closes=order.position_id,
                    reason=reason,
                ),
            )

    def rebook(self, t: float) -> None:
        """Forget the positions and deals, and book every fill visible by t again, in deal
        order: what the book must equal at any time."""
        self.positions = {}
        self.deals.clear()
        self.deals_by_time.clear()
        for found in self.visible_fills(t):
            self.book_deal(*found)

    def visible_fills(self, t: float) -> list[tuple[int, LedgerOrder, Tag, BrokerFill]]:
        """Every fill of every order known by t, in deal ticket order."""
        return sorted(
            (
                (int(fill.fill_id), order, tag, fill)
                for order, tag in self._known_by(t)
                for fill in order.fills
            ),
            key=lambda found: found[0],
        )

    def visible(self, t: float, since: float | None = None) -> list[tuple[LedgerOrder, Tag]]:
        """Every order the terminal knows by t, each as it stands at t; with `since`, only
        from the first order that may have been set up then (server time) on."""
        self.catch_up(t)
        if since is None:
            return self._known_by(t)
        first = self.orders_by_time.first_key_from(since)
        return [] if first is None else self._known_by(t, first)

    def _known_by(self, t: float, first_ticket: int = 0) -> list[tuple[LedgerOrder, Tag]]:
        everything = heapq.merge(
            # placed: in ticket order
            ((ticket, tag) for ticket, (tag, _) in self.open.items() if ticket >= first_ticket),
            self.closed_tags.items(first_key=first_ticket),
            key=lambda pair: pair[0],
        )
        return [(self.venue.orders[ticket], tag) for ticket, tag in everything if tag.known_at <= t]

    def deals_since(self, since: float) -> Iterator[TradeDeal]:
        """Every deal from the first that may be at `since` (server time) on, in order."""
        first = self.deals_by_time.first_key_from(since)
        if first is None:
            return iter(())
        return (deal for _, deal in self.deals.items(first_key=first))

    def tag(self, ticket: int) -> Tag | None:
        opened = self.open.get(ticket)
        return opened[0] if opened is not None else self.closed_tags.get(ticket)

    def known(self, ticket: int, t: float) -> tuple[LedgerOrder, Tag] | None:
        """One order, if the terminal knows it by t (as it stands: catch up first)."""
        tag = self.tag(ticket)
        if tag is None or tag.known_at > t:
            return None
        return self.venue.orders[ticket], tag

    def book_deal(self, deal_ticket: int, order: LedgerOrder, tag: Tag, fill: BrokerFill) -> None:
        """One fill into the book: netting keeps one position per symbol, hedging one per
        opening order, which an order naming it closes."""
        spec = self.venue.spec(order.symbol)
        assert spec is not None
        hedging = self.venue.account.config.margin_mode is MarginMode.HEDGING
        signed = int(order.direction) * fill.units
        # A hedging deal's position is the one its order closes (a server's stop order
        # closes the position it was made for), or its own. The book keeps its own
        # identifiers rather than the venue's (BrokerFill.position_id): the venue holds one
        # account, and another login's netting position is a position of its own here.
        key = (tag.closes or order.ticket) if hedging else order.symbol
        position = self.positions.get(key)
        if position is None:
            assert not (hedging and tag.closes), "the venue closes only open positions"
            position = Position(
                order.ticket,
                order.ticket,
                order.symbol,
                0,
                0.0,
                fill.time,
                fill.time,
                tag.magic,
                tag.comment,
            )
            self.positions[key] = position
        entry = _apply_fill(position, signed, fill.price, fill.time, order.ticket)
        reopened = self._reopened.get(position.identifier)
        if reopened is not None and deal_ticket <= reopened[1]:
            position.ticket = reopened[0]  # re-opened after this deal
        if position.units == 0:
            del self.positions[key]
        deal = TradeDeal(
            ticket=deal_ticket,
            order=order.ticket,
            time=self.config.server_seconds(fill.time),
            time_msc=self.config.server_msc(fill.time),
            type=K.DEAL_TYPE_BUY if signed > 0 else K.DEAL_TYPE_SELL,
            entry=entry,
            magic=tag.magic,
            position_id=position.identifier,
            reason=_DEAL_REASON[tag.reason],
            volume=fill.units / spec.contract_size,
            price=fill.price,
            commission=0.0,
            swap=0.0,
            profit=0.0,
            fee=0.0,
            symbol=self.config.broker_symbol(order.symbol),
            comment=tag.comment,
            external_id="",
        )
        self.deals.add(deal_ticket, deal, group=order.ticket)
        self.deals_by_time.add(deal.time, deal_ticket)
        self._last_deal = max(self._last_deal, deal_ticket)

    def position(self, ticket: int) -> Position | None:
        """The open position whose POSITION_TICKET this is (a request's `position`)."""
        return next((p for p in self.positions.values() if p.ticket == ticket), None)

    def reopen_positions_for_swap(self, t: float) -> None:
        """The server re-opens, at the rollover t, every position the terminal knows, to
        charge swaps: each keeps its identifier and takes a new ticket from the server's
        order tickets. Only the ticket is modelled: not the swap, nor the deals a real
        server books for the re-open."""
        self.catch_up(t)
        for position in self.positions.values():
            position.ticket = self.venue.new_ticket()
            self._reopened[position.identifier] = (position.ticket, self._last_deal)


# The server's orders by why it made them (LedgerOrder.reason), and each order reason's deal
# reason: ENUM_ORDER_REASON and ENUM_DEAL_REASON share their first values (constants.py).
_ORDER_REASON = {
    ExitReason.STOP_LOSS: K.ORDER_REASON_SL,
    ExitReason.TAKE_PROFIT: K.ORDER_REASON_TP,
    ExitReason.STOP_OUT: K.ORDER_REASON_SO,
}
_DEAL_REASON = {
    K.ORDER_REASON_CLIENT: K.DEAL_REASON_CLIENT,
    K.ORDER_REASON_MOBILE: K.DEAL_REASON_MOBILE,
    K.ORDER_REASON_WEB: K.DEAL_REASON_WEB,
    K.ORDER_REASON_EXPERT: K.DEAL_REASON_EXPERT,
    K.ORDER_REASON_SL: K.DEAL_REASON_SL,
    K.ORDER_REASON_TP: K.DEAL_REASON_TP,
    K.ORDER_REASON_SO: K.DEAL_REASON_SO,
}
_LEVEL = re.compile(r"\[(?:sl|tp|so)\s+([0-9.]+)\]")


def _level(comment: str) -> float:
    """The level in the server's comment "[sl 1.08500]": the order's price (0 if none)."""
    match = _LEVEL.search(comment)
    return float(match.group(1)) if match else 0.0


def _apply_fill(position: Position, signed: int, price: float, t: float, ticket: int) -> int:
    """Book a fill into a position; its DEAL_ENTRY: in, out, or in-out on a reversal."""
    held = position.units
    position.updated = t
    if held == 0 or (held > 0) == (signed > 0):
        position.units += signed
        position.cost += signed * price
        return K.DEAL_ENTRY_IN
    remaining = held + signed
    if remaining != 0 and (remaining > 0) != (held > 0):  # reversed, under the same identifier
        position.ticket, position.time = ticket, t
        position.units, position.cost = remaining, remaining * price
        return K.DEAL_ENTRY_INOUT
    position.cost = position.cost * remaining / held
    position.units = remaining
    return K.DEAL_ENTRY_OUT
