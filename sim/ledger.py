"""The venue's ledger of orders and deals, in memory that does not grow with the run.

A working order may still fill or be cancelled, so it stays in memory as a LedgerOrder. A
closed one (DONE or CANCELLED) never changes again: the ledger keeps the most recently
closed in memory, for the status polls and reconciliations that follow a fill, and spills
older ones in batches to a private SQLite file, which SQLite deletes once the ledger is
gone. A million orders then hold no more memory than a few thousand, and every question
the venue answers (by ticket, by client order id, the whole ledger in ticket order) reads
both parts and gets the same orders, deals and types as if all were in memory.
"""

from __future__ import annotations

import heapq
import sqlite3
from collections import deque
from collections.abc import ItemsView, Iterable, Iterator, Mapping, ValuesView
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from engine.core.ports import BrokerFill, BrokerOrderState, OrderReport
from engine.core.vocabulary import ExitReason, OrderType
from engine.schemas import Direction
from sim.spilled import scratch_database


@dataclass(slots=True)
class LedgerOrder:
    ticket: int
    client_order_id: str
    symbol: str
    direction: Direction
    units: int
    time: float
    state: BrokerOrderState
    fills: list[BrokerFill] = field(default_factory=list)
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    expires_at: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    position_id: int = 0  # the identifier of the position it closes; 0: none
    # Set only on orders the server itself created: a stop-loss or take-profit that
    # triggered (MT5 ORDER_REASON_SL / ORDER_REASON_TP).
    reason: ExitReason | None = None

    def report(self) -> OrderReport:
        return OrderReport(
            order_id=str(self.ticket),
            client_order_id=self.client_order_id,
            state=self.state,
            requested_units=self.units,
            fills=tuple(self.fills),
        )


# One row per deal, or one deal-less row (deal 0) for an order that never filled. Columns
# with no declared type keep what they are given: an int time stays an int, a float a float,
# so a spilled order reads back exactly as it was (the ledger's bytes depend on it).
_SCHEMA = """
CREATE TABLE ledger (
    ticket INTEGER NOT NULL,
    deal INTEGER NOT NULL,
    client_order_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    direction INTEGER NOT NULL,
    units,
    time,
    state TEXT NOT NULL,
    order_type TEXT NOT NULL,
    limit_price,
    expires_at,
    stop_loss,
    take_profit,
    position_id INTEGER NOT NULL,
    reason TEXT,
    fill_id,
    fill_units,
    fill_price,
    fill_time,
    fill_position_id,
    PRIMARY KEY (ticket, deal)
) WITHOUT ROWID;
CREATE INDEX ledger_by_client ON ledger (client_order_id, ticket);
"""
_COLUMNS = (
    "ticket, client_order_id, symbol, direction, units, time, state, order_type,"
    " limit_price, expires_at, stop_loss, take_profit, position_id, reason,"
    " fill_id, fill_units, fill_price, fill_time, fill_position_id"
)
_HEAD = 14  # columns before the deal's
_Row = tuple[Any, ...]


def _rows(order: LedgerOrder) -> Iterator[_Row]:
    head = (
        order.ticket,
        order.client_order_id,
        order.symbol,
        int(order.direction),
        order.units,
        order.time,
        order.state.value,
        order.order_type.value,
        order.limit_price,
        order.expires_at,
        order.stop_loss,
        order.take_profit,
        order.position_id,
        order.reason.value if order.reason is not None else None,
    )
    if not order.fills:
        yield (order.ticket, 0, *head[1:], None, None, None, None, None)
    for deal, fill in enumerate(order.fills, start=1):
        yield (
            order.ticket,
            deal,
            *head[1:],
            fill.fill_id,
            fill.units,
            fill.price,
            fill.time,
            fill.position_id,
        )


def _orders(rows: Iterable[_Row]) -> Iterator[LedgerOrder]:
    """LedgerOrders from rows (as `_COLUMNS`) holding each ticket's deals together, in order."""
    for _, deals in groupby(rows, key=lambda row: row[0]):
        first, *rest = deals
        ticket, client_order_id, symbol, direction, units, time, state = first[:7]
        order_type, limit_price, expires_at, stop_loss, take_profit, position_id, reason = first[
            7:_HEAD
        ]
        fills = [BrokerFill(*row[_HEAD:]) for row in (first, *rest) if row[_HEAD] is not None]
        yield LedgerOrder(
            ticket,
            client_order_id,
            symbol,
            Direction(direction),
            units,
            time,
            BrokerOrderState(state),
            fills,
            OrderType(order_type),
            limit_price,
            expires_at,
            stop_loss,
            take_profit,
            position_id,
            ExitReason(reason) if reason is not None else None,
        )


class Ledger(Mapping[int, LedgerOrder]):
    """Ticket -> LedgerOrder, iterated in ticket order, as a dict of every order would be."""

    def __init__(self, keep_closed: int = 1024) -> None:
        self._keep_closed = keep_closed
        self._live: dict[int, LedgerOrder] = {}  # working, and recently closed
        self._live_by_client: dict[str, int] = {}  # the latest live ticket of a client id
        self._closed: deque[int] = deque()  # live tickets that are closed, oldest first
        self._db: sqlite3.Connection | None = None  # opened at the first spill
        self._spilled = 0
        self._spilled_max = 0  # the highest spilled ticket

    # -- recording ----------------------------------------------------------------------

    def add(self, order: LedgerOrder) -> None:
        self._live[order.ticket] = order
        self._live_by_client[order.client_order_id] = order.ticket

    def discard(self, order: LedgerOrder) -> None:
        """Forget a working order that never was: a request the dealer held and then
        rejected (its last look), which MT5 answers with no order (result.order 0)."""
        del self._live[order.ticket]
        client = order.client_order_id
        if self._live_by_client.get(client) == order.ticket:
            earlier = [t for t, o in self._live.items() if o.client_order_id == client]
            if earlier:
                self._live_by_client[client] = max(earlier)
            else:
                del self._live_by_client[client]

    def closed(self, order: LedgerOrder) -> None:
        """The order will not change again: it may leave memory."""
        self._closed.append(order.ticket)
        if len(self._closed) >= 2 * self._keep_closed:
            self._spill(self._keep_closed)

    def _spill(self, count: int) -> None:
        leaving = [self._live.pop(self._closed.popleft()) for _ in range(count)]
        db = self._db if self._db is not None else self._open()
        with db:
            db.executemany(
                f"INSERT INTO ledger VALUES ({', '.join('?' * 20)})",
                (row for order in leaving for row in _rows(order)),
            )
        for order in leaving:
            if self._live_by_client.get(order.client_order_id) == order.ticket:
                del self._live_by_client[order.client_order_id]
        self._spilled_max = max(self._spilled_max, *(order.ticket for order in leaving))
        self._spilled += len(leaving)

    def _open(self) -> sqlite3.Connection:
        self._db = scratch_database(_SCHEMA)
        return self._db

    # -- queries ------------------------------------------------------------------------

    def latest(self, client_order_id: str) -> LedgerOrder | None:
        """The order last placed with this client order id, if any."""
        ticket = self._live_by_client.get(client_order_id)
        if ticket is not None and ticket > self._spilled_max:
            return self._live[ticket]
        if self._db is not None:
            row = self._db.execute(
                "SELECT max(ticket) FROM ledger WHERE client_order_id = ?", (client_order_id,)
            ).fetchone()
            if row[0] is not None and (ticket is None or row[0] > ticket):
                return self[row[0]]
        return self._live[ticket] if ticket is not None else None

    def get(self, ticket: int, default: Any = None) -> Any:
        order = self._live.get(ticket)
        if order is not None or self._db is None:
            return order if order is not None else default
        found = list(self._select("WHERE ticket = ?", (ticket,)))
        return found[0] if found else default

    def _select(
        self, where: str, args: tuple[Any, ...], order: str = "ticket, deal"
    ) -> Iterator[LedgerOrder]:
        assert self._db is not None
        query = f"SELECT {_COLUMNS} FROM ledger {where} ORDER BY {order}"
        return _orders(self._db.execute(query, args).fetchall())

    def __getitem__(self, ticket: int) -> LedgerOrder:
        order = self.get(ticket)
        if order is None:
            raise KeyError(ticket)
        return order

    def __contains__(self, ticket: object) -> bool:
        return isinstance(ticket, int) and self.get(ticket) is not None

    def __len__(self) -> int:
        return len(self._live) + self._spilled

    def _in_order(self, chunk: int = 4096) -> Iterator[LedgerOrder]:
        """Every order by ticket: the spilled read a chunk of tickets at a time."""

        def spilled() -> Iterator[LedgerOrder]:
            start = 0
            while start < self._spilled_max:
                end = start + chunk
                yield from self._select("WHERE ticket > ? AND ticket <= ?", (start, end))
                start = end

        live = [self._live[ticket] for ticket in sorted(self._live)]
        return heapq.merge(spilled(), live, key=lambda order: order.ticket)

    def by_client(self, chunk: int = 4096) -> Iterator[list[LedgerOrder]]:
        """Every client order id's orders, by ticket, in client order id order: what a
        check of each execution against the broker's orders reads, a chunk at a time."""

        def spilled() -> Iterator[LedgerOrder]:
            if self._db is None:
                return
            after = ""
            while True:
                clients = self._db.execute(
                    "SELECT DISTINCT client_order_id FROM ledger WHERE client_order_id > ? "
                    "ORDER BY client_order_id LIMIT ?",
                    (after, chunk),
                ).fetchall()
                if not clients:
                    return
                yield from self._select(
                    "WHERE client_order_id BETWEEN ? AND ?",
                    (clients[0][0], clients[-1][0]),
                    order="client_order_id, ticket, deal",
                )
                after = clients[-1][0]

        def client_then_ticket(order: LedgerOrder) -> tuple[str, int]:
            return order.client_order_id, order.ticket

        live = sorted(self._live.values(), key=client_then_ticket)
        merged = heapq.merge(spilled(), live, key=client_then_ticket)
        for _, orders in groupby(merged, key=lambda order: order.client_order_id):
            yield list(orders)

    def __iter__(self) -> Iterator[int]:
        return (order.ticket for order in self._in_order())

    def rows(self) -> Iterator[tuple[int, str, str, int, int, str, int, float, float]]:
        """Every order and its deals as plain rows, in ticket order: what a byte-for-byte
        comparison of two ledgers reads, one row at a time."""
        for ticket, o in self.items():
            for fill in o.fills or [None]:
                yield (
                    ticket,
                    o.client_order_id,
                    o.symbol,
                    int(o.direction),
                    o.units,
                    o.state.value,
                    fill.units if fill else 0,
                    fill.price if fill else 0.0,
                    fill.time if fill else o.time,
                )

    def values(self) -> ValuesView[LedgerOrder]:
        return _Values(self)

    def items(self) -> ItemsView[int, LedgerOrder]:
        return _Items(self)


class _Values(ValuesView[LedgerOrder]):
    _mapping: Ledger

    def __iter__(self) -> Iterator[LedgerOrder]:
        return self._mapping._in_order()


class _Items(ItemsView[int, LedgerOrder]):
    _mapping: Ledger

    def __iter__(self) -> Iterator[tuple[int, LedgerOrder]]:
        return ((order.ticket, order) for order in self._mapping._in_order())
