"""A terminal's history lags each (re)connection to the trade server.

The terminal keeps each account's history in a local base, saved when it closes or leaves
the account, and "at each connection to the trading server receives only the missing
history of deals and completed orders" (MetaQuotes, "Orders, Positions and Deals in
MetaTrader 5", mql5.com/en/articles/211; mt5-reference.md, behaviour 3). Until that
completes, what the server did while the terminal was away is missing from its history.

The model, on when `TerminalConfig.history_sync_seconds` is above 0 (at 0 the terminal knows
at once whatever the server did, even while disconnected, as the emulator always has):
- the terminal is connected on an account while it runs logged in to it and no fault is on
  the wire (any kind: `terminal_info().connected` is False during each);
- a break opens a gap in that account's history, from the break to the next connection,
  and the gap is filled `history_sync_seconds` after that connection. Before an account's
  first connection the gap is its whole past. A fault that breaks the link also loses the
  trade transactions in flight: the gap starts `history_sync_margin_seconds` before it (the
  fault schedule is known in advance, so such a record is never shown, then withdrawn). A
  terminal that closes or leaves the account saves what it has: no margin then;
- a deal executed, or an order completed, at the server within a gap is missing from
  `history_deals_get` and `history_orders_get` (every form: dates, ticket=, position=)
  until the gap is filled;
- working orders and positions are not history: the server sends them with each
  connection, so `orders_get` and `positions_get` stay current.

What a careful client can observe: the terminal has no "history synchronised" flag, and
the emulator invents none. A client sees its own `initialize()` and `login()`, and a break
only if it polls `terminal_info().connected` while the break lasts. Knowing the sync time
by configuration, it must take a "not found" in the history as no proof of absence until
`history_sync_seconds` after it last saw the terminal (re)connect; a break it did not see
it cannot know of, so `positions_get` (current) is the better witness of a fill.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from engine.core.ports import BrokerOrderState
from sim.mt5.book import Book
from sim.mt5.config import TerminalConfig
from sim.venue import Venue
from sim.wire import Wire

Gap = tuple[float, float]  # (from, to) in driver time


@dataclass(frozen=True, slots=True)
class _Link:
    """A stretch of time the terminal was connected on an account."""

    start: float
    end: float  # inf while it holds
    broken: bool  # ended by a fault, not by the terminal closing or leaving the account


class HistorySync:
    """When each account's history is complete, from the terminal's runs and the wire's faults."""

    def __init__(self, venue: Venue, wire: Wire, config: TerminalConfig) -> None:
        self._venue = venue
        self._config = config
        self._runs: dict[int, list[list[float]]] = {}  # login -> [start, end] logged in to it
        self._on: int | None = None  # the account the running terminal is logged in to
        faults = sorted(
            (w.start, w.end) for w in (wire.network.config.faults if wire.network else ())
        )
        self._outages: list[Gap] = []
        for start, end in faults:  # overlapping or touching windows are one outage
            if self._outages and start <= self._outages[-1][1]:
                self._outages[-1] = (self._outages[-1][0], max(end, self._outages[-1][1]))
            else:
                self._outages.append((start, end))

    def start(self, login: int, t: float) -> None:
        """The terminal, running, logs in to `login` at t."""
        self._runs.setdefault(login, []).append([t, math.inf])
        self._on = login

    def stop(self, t: float) -> None:
        """The terminal closes, or leaves its account, at t."""
        if self._on is not None:
            self._runs[self._on][-1][1] = t
            self._on = None

    def orders(self, records: Any, login: int, book: Book, now: float) -> Any:
        """A history_orders_get answer as the terminal has it at now."""
        return self._synced(records, login, now, lambda order: self._completed(order, book))

    def deals(self, records: Any, login: int, now: float) -> Any:
        """A history_deals_get answer as the terminal has it at now."""
        return self._synced(records, login, now, self._executed)

    def gaps(self, login: int, now: float) -> list[Gap]:
        """What is missing from the history of `login` at now: server events in these."""
        sync = self._config.history_sync_seconds
        if not sync:
            return []
        gaps = []
        since = -math.inf  # the last break, before which the history is complete
        for link in self._links(login):
            if now < link.start + sync:
                gaps.append((since, link.start))
            if link.start > now:  # later gaps hold nothing that has happened yet
                return gaps
            since = link.end - (self._config.history_sync_margin_seconds if link.broken else 0)
        if since < math.inf:  # not connected on `login` now
            gaps.append((since, math.inf))
        return gaps

    def _links(self, login: int) -> Iterator[_Link]:
        for start, end in self._runs.get(login, ()):
            cursor = start
            for down, up in self._outages:
                if up <= cursor:
                    continue
                if down >= end:
                    break
                if down > cursor:
                    yield _Link(cursor, down, broken=True)
                cursor = up
            if cursor <= end:  # even an instant: what happened up to it was received
                yield _Link(cursor, end, broken=False)

    def _synced(
        self, records: Any, login: int, now: float, happened: Callable[[Any], float]
    ) -> Any:
        if records is None:
            return None
        gaps = self.gaps(login, now)
        if not gaps:
            return records
        # Open at both ends: what happened at the instant of a break or of a connection
        # happened while the terminal was connected.
        return tuple(r for r in records if not any(a < happened(r) < b for a, b in gaps))

    def _executed(self, deal: Any) -> float:
        """When the server executed a deal (a fill of the venue's), in driver time."""
        fills = self._venue.orders[deal.order].fills
        return next(f.time for f in fills if int(f.fill_id) == deal.ticket)

    def _completed(self, order: Any, book: Book) -> float:
        """When the server completed an order: removed, expired, or its last fill, or refused
        whole."""
        tag = book.tag(order.ticket)
        if tag is not None and tag.done_at is not None:
            return tag.done_at
        ledger = self._venue.orders[order.ticket]
        if ledger.expires_at is not None and ledger.state is BrokerOrderState.EXPIRED:
            return ledger.expires_at  # the server removed it at its expiry
        return ledger.fills[-1].time if ledger.fills else ledger.time
