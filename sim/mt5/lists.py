"""The terminal's lists as a program reads them: working orders and positions
(`orders_get`, `positions_get`) and the history (`history_orders_get`, `history_deals_get`),
each brought up to date from the book first, with the module's filters and argument forms."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from brokers import mt5_codes as codes
from engine.core.ports import BrokerOrderState
from engine.core.vocabulary import OrderType
from engine.schemas import Direction
from sim.mt5.book import Book, Position, Tag
from sim.mt5.config import TerminalConfig
from sim.mt5.constants import K
from sim.mt5.records import TradeDeal, TradeOrder, TradePosition
from sim.mt5.session import Session, typed
from sim.spilled import SpilledRecords
from sim.venue import LedgerOrder, Venue


class Lists:
    """What the terminal shows of orders, deals and positions, read from its book."""

    def __init__(
        self,
        venue: Venue,
        clock: Callable[[], float],
        config: TerminalConfig,
        session: Session,
        book: Book,
    ) -> None:
        self.venue = venue
        self.clock = clock
        self.config = config
        self._session = session
        self._book = book

    def orders_get(
        self, symbol: str | None = None, group: str | None = None, ticket: int | None = None
    ) -> Any:
        if self._session.ipc_down() or not self._filters(symbol=symbol, group=group, ticket=ticket):
            return None
        now = self.clock()
        self._book.catch_up(now)
        # A working order the terminal knows is one that may still fill: still open here.
        working = (self._book.known(number, now) for number in sorted(self._book.open))
        named = self.config.broker_symbol
        return self._session.ok(
            tuple(
                self._trade_order(order, tag, {})
                for order, tag in filter(None, working)
                if order.state is BrokerOrderState.WORKING
                and _selected(named(order.symbol), order.ticket, symbol, group, ticket)
            )
        )

    def history_orders_get(
        self,
        date_from: Any = None,
        date_to: Any = None,
        /,
        *more: Any,
        group: str | None = None,
        ticket: int | None = None,
        position: int | None = None,
        **unknown: Any,
    ) -> Any:
        if self._session.ipc_down():
            return None
        if more or unknown:  # e.g. date_from= as a keyword: see _history_form
            self._session.fail(codes.RES_E_INVALID_PARAMS, "Invalid parameters")
            return None
        window = self._history_form(date_from, date_to, group, ticket, position)
        if window is None:
            return None
        now = self.clock()
        if ticket is not None:
            self._book.catch_up(now)
            one = self._book.known(ticket, now)
            candidates = [one] if one is not None else []
        elif position is not None:
            candidates = self._book.visible(now)
        else:
            candidates = self._book.visible(now, since=window[0])
        records = []
        dated = ticket is None and position is None
        for order, tag in candidates:
            if order.state is BrokerOrderState.WORKING:
                continue
            # A window is judged on the order's setup time before the record is built: a
            # query costs what its window holds.
            if dated and not (
                window[0] <= self.config.server_seconds(order.time) <= window[1]
                and (group is None or _in_group(self.config.broker_symbol(order.symbol), group))
            ):
                continue
            record = self._trade_order(order, tag, self._book.deals)
            if position is None or record.position_id == position:
                records.append(record)
        return self._session.ok(tuple(records))

    def history_deals_get(
        self,
        date_from: Any = None,
        date_to: Any = None,
        /,
        *more: Any,
        group: str | None = None,
        ticket: int | None = None,
        position: int | None = None,
        **unknown: Any,
    ) -> Any:
        if self._session.ipc_down():
            return None
        if more or unknown:  # e.g. date_from= as a keyword: see _history_form
            self._session.fail(codes.RES_E_INVALID_PARAMS, "Invalid parameters")
            return None
        window = self._history_form(date_from, date_to, group, ticket, position)
        if window is None:
            return None
        self._book.catch_up(self.clock())
        if ticket is not None:  # `ticket=` names the ORDER, as in MT5
            deals: Iterable[Any] = self._book.deals.of_group(ticket)
        elif position is not None:
            deals = (deal for _, deal in self._book.deals.items())
        else:
            deals = self._book.deals_since(window[0])
        records = []
        for deal in deals:
            if ticket is not None:
                chosen = True
            elif position is not None:
                chosen = deal.position_id == position
            else:
                chosen = window[0] <= deal.time <= window[1] and (
                    group is None or _in_group(deal.symbol, group)
                )
            if chosen:
                records.append(deal)
        return self._session.ok(tuple(records))

    def positions_get(
        self, symbol: str | None = None, group: str | None = None, ticket: int | None = None
    ) -> Any:
        if self._session.ipc_down() or not self._filters(symbol=symbol, group=group, ticket=ticket):
            return None
        now = self.clock()
        self._book.catch_up(now)
        return self._session.ok(
            tuple(
                self._trade_position(p, now)
                for p in list(self._book.positions.values())
                if _selected(self.config.broker_symbol(p.symbol), p.ticket, symbol, group, ticket)
            )
        )

    def _filters(self, **given: Any) -> bool:
        """At most one of symbol=, group=, ticket=, each of its type."""
        chosen = {name: value for name, value in given.items() if value is not None}
        for name, value in chosen.items():
            if not typed(value, int if name == "ticket" else str):
                self._session.invalid(name)
                return False
        if len(chosen) > 1:
            self._session.fail(codes.RES_E_INVALID_PARAMS, "Invalid arguments")
            return False
        return True

    def _history_form(
        self, date_from: Any, date_to: Any, group: Any, ticket: Any, position: Any
    ) -> tuple[int, int] | None:
        """The one form a history call may take: (date_from, date_to[, group=]), ticket= or
        position=. The dates are positional only: the C extension takes no other keyword
        than group, ticket and position, and answers one with (-2, 'Invalid parameters')
        (mcp-metatrader5-server, issue #86 and pull request #91). The window is in server
        seconds, both ends included (the MQL5 book, HistorySelect: server time, inclusive)."""
        if ticket is not None or position is not None:
            single = ticket if ticket is not None else position
            if date_from is not None or date_to is not None or group is not None:
                self._session.fail(codes.RES_E_INVALID_PARAMS, "Invalid arguments")
                return None
            if (ticket is not None and position is not None) or not typed(single, int):
                self._session.invalid("ticket" if ticket is not None else "position")
                return None
            return (0, 0)
        start, end = history_seconds(date_from), history_seconds(date_to)
        if start is None or end is None:
            self._session.invalid("date_from" if start is None else "date_to")
            return None
        if group is not None and not typed(group, str):
            self._session.invalid("group")
            return None
        return (start, end)

    def _trade_order(
        self, order: LedgerOrder, tag: Tag, deals: SpilledRecords[TradeDeal] | dict[int, Any]
    ) -> Any:
        spec = self.venue.spec(order.symbol)
        assert spec is not None
        filled = sum(fill.units for fill in order.fills)
        state = _state(order, filled)
        if order.state is BrokerOrderState.WORKING:
            done = None
        elif tag.done_at is not None:
            done = tag.done_at
        elif order.state is BrokerOrderState.EXPIRED and order.expires_at is not None:
            done = order.expires_at  # the server removed it at its expiry
        else:
            done = order.fills[-1].time if order.fills else order.time
        own_deals = [d for f in order.fills if (d := deals.get(int(f.fill_id))) is not None]
        average = sum(f.units * f.price for f in order.fills) / filled if filled else tag.price
        return TradeOrder(
            ticket=order.ticket,
            time_setup=self.config.server_seconds(order.time),
            time_setup_msc=self.config.server_msc(order.time),
            time_done=self.config.server_seconds(done) if done is not None else 0,
            time_done_msc=self.config.server_msc(done) if done is not None else 0,
            time_expiration=tag.expiration,
            type=_order_type(order),
            type_time=tag.type_time,
            type_filling=tag.type_filling,
            state=state,
            magic=tag.magic,
            position_id=own_deals[0].position_id if own_deals else order.position_id,
            position_by_id=0,
            reason=tag.reason,
            volume_initial=order.units / spec.contract_size,
            volume_current=(order.units - filled) / spec.contract_size,
            price_open=tag.price,
            sl=order.stop_loss or 0.0,
            tp=order.take_profit or 0.0,
            price_current=average,
            price_stoplimit=0.0,
            symbol=self.config.broker_symbol(order.symbol),
            comment=tag.comment,
            external_id="",
        )

    def _trade_position(self, position: Position, t: float) -> Any:
        spec = self.venue.spec(position.symbol)
        quote = self.venue.quote(position.symbol, t)
        assert spec is not None and quote is not None  # it was opened at a quote
        long = position.units > 0
        current = quote.bid if long else quote.ask
        opened = position.cost / position.units
        # The position's stops are the venue's: it moves them (TRADE_ACTION_SLTP) and
        # triggers them; 0 for none, as MT5 shows a level not set.
        held = self.venue.position(position.identifier)
        stop_loss = getattr(held, "stop_loss", None) or 0.0
        take_profit = getattr(held, "take_profit", None) or 0.0
        try:
            profit = self.venue.account.to_account_currency(
                (current - opened) * position.units, position.symbol[3:], t
            )
        except KeyError:  # no rate into the account currency: as a terminal without it
            profit = 0.0
        return TradePosition(
            ticket=position.ticket,
            time=self.config.server_seconds(position.time),
            time_msc=self.config.server_msc(position.time),
            time_update=self.config.server_seconds(position.updated),
            time_update_msc=self.config.server_msc(position.updated),
            type=K.POSITION_TYPE_BUY if long else K.POSITION_TYPE_SELL,
            magic=position.magic,
            identifier=position.identifier,
            reason=K.POSITION_REASON_EXPERT,
            volume=abs(position.units) / spec.contract_size,
            price_open=opened,
            sl=stop_loss,
            tp=take_profit,
            price_current=current,
            swap=0.0,
            profit=profit,
            symbol=self.config.broker_symbol(position.symbol),
            comment=position.comment,
            external_id="",
        )


def _state(order: LedgerOrder, filled: int) -> int:
    """ENUM_ORDER_STATE of an order: working, PLACED or, once it has filled in part, PARTIAL
    ("order partially executed"); in history FILLED, CANCELED (removed, with whatever it
    filled), EXPIRED (removed by the server at its expiry), or for a market order done with
    less than it asked for (IOC) PARTIAL — unconfirmed which a real server gives it in
    history (CANCELED would read the same to a client: no more fills come)."""
    if order.state is BrokerOrderState.WORKING:
        return K.ORDER_STATE_PARTIAL if filled else K.ORDER_STATE_PLACED
    if order.state is BrokerOrderState.EXPIRED:
        return K.ORDER_STATE_EXPIRED
    if order.state is BrokerOrderState.CANCELLED or filled == 0:
        return K.ORDER_STATE_CANCELED
    return K.ORDER_STATE_FILLED if filled == order.units else K.ORDER_STATE_PARTIAL


def _order_type(order: LedgerOrder) -> int:
    buy = order.direction is Direction.BUY
    if order.order_type is OrderType.LIMIT:
        return K.ORDER_TYPE_BUY_LIMIT if buy else K.ORDER_TYPE_SELL_LIMIT
    return K.ORDER_TYPE_BUY if buy else K.ORDER_TYPE_SELL


def history_seconds(value: Any) -> int | None:
    """A history bound: a datetime (naive ones taken as UTC) or POSIX seconds."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return int(aware.timestamp())
    if typed(value, int):
        return value
    return None


def _in_group(symbol: str, group: str) -> bool:
    """MT5's group filter: comma-separated masks with '*', '!' excluding."""
    included = False
    for mask in (part.strip() for part in group.split(",")):
        if mask.startswith("!"):
            if fnmatch.fnmatchcase(symbol, mask[1:]):
                return False
        elif mask and fnmatch.fnmatchcase(symbol, mask):
            included = True
    return included


def _selected(
    symbol: str, ticket: int, by_symbol: str | None, group: str | None, by_ticket: int | None
) -> bool:
    if by_symbol is not None:
        return symbol == by_symbol
    if group is not None:
        return _in_group(symbol, group)
    return by_ticket is None or ticket == by_ticket
