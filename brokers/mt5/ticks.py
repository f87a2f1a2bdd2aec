"""The quote tape after the fact: the terminal's tick history (`copy_ticks_range`), one sample
a second, into the audit store's quote tape (`engine.store.quotes`).

A live engine samples its quotes as it trades (`engine.tape`); a period it did not sample (the
engine was down, or the tape was off) can be fetched from the terminal afterwards. MT5 keeps
every tick; the tape keeps the last tick of each second, the quote that stood at its end.

Times: `copy_ticks_range` takes its window and stamps its ticks in the trade server's time
(mt5-reference.md, real-server behaviour 8). Both are converted by the server clock
(`server_clock.py`): with the server's rule where it is configured (`MT5Config.
server_time_zone`), each tick with the offset in force at its own moment; without one, with
the offset learnt from fresh ticks, the one in force now, so that a period across a
daylight-saving change reads an hour off on the far side of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from brokers import mt5_codes as codes
from brokers.mt5.server_clock import ServerClock
from brokers.mt5.terminal import Terminal, raise_if_unreachable
from engine.clock import Clock
from engine.core.ports import RequestNotSent
from engine.schemas import MarketSnapshot
from engine.store.base import ExecutionDatabase
from engine.store.quotes import QuoteSample, check_period

if TYPE_CHECKING:
    from brokers.mt5.broker import MT5Broker

# How often the server's offset is looked for in fresh ticks while learning it.
_LEARNING_READS_SECONDS = 0.25


class TickTape:
    """What the broker reads of the terminal's tick history."""

    def __init__(
        self,
        terminal: Terminal,
        server_clock: ServerClock,
        clock: Clock,
        quote: Callable[[str], MarketSnapshot | None],
    ) -> None:
        self._terminal = terminal
        self._server_clock = server_clock
        self._clock = clock
        self._quote = quote

    def learn_server_offset(self, symbols: Sequence[str], patience_seconds: float) -> bool:
        """Read the symbols' quotes until a fresh tick shows the server clock's offset, for at
        most `patience_seconds`; whether it is learnt (a closed market shows none)."""
        deadline = self._clock.now() + patience_seconds
        while True:
            for symbol in symbols:
                self._quote(symbol)
            if self._server_clock.learned or self._clock.now() >= deadline:
                return self._server_clock.learned
            self._clock.sleep(_LEARNING_READS_SECONDS)

    def samples(self, symbol: str, start: float, end: float) -> list[QuoteSample]:
        """The last tick of each second of [start, end) (POSIX seconds, UTC), as samples."""
        server = self._server_clock
        # Whole server seconds, both ends included, as the window's ends are: every tick of
        # the period is in it, and the ones around it are cut away below.
        window = (
            datetime.fromtimestamp(math.floor(server.server(start)), UTC),
            datetime.fromtimestamp(math.ceil(server.server(end)), UTC),
        )
        name = self._terminal.broker_symbol(symbol)
        flags = self._terminal.k.copy_ticks_info
        ticks, error = self._terminal.call("copy_ticks_range", name, *window, flags)
        if error is not None:
            raise_if_unreachable(error, "copy_ticks_range")
            if error.code != codes.RES_S_OK:  # a None that says success: no ticks
                raise RequestNotSent(f"copy_ticks_range of {name} failed: {error}")
            return []
        return last_of_each_second(symbol, ticks, server.utc, start, end)


def last_of_each_second(
    symbol: str, ticks: Any, to_utc: Callable[[Any], Any], start: float, end: float
) -> list[QuoteSample]:
    """The ticks' last of each second of [start, end): the quote standing at its end. `ticks`
    is the module's array (read by field name: through a bridge it may be another type)."""
    if ticks is None or len(ticks) == 0:
        return []
    msc = np.asarray(ticks["time_msc"], dtype=np.int64)
    order = np.argsort(msc, kind="stable")  # oldest first, as the terminal answers
    times = to_utc(msc[order] / 1000.0)
    bid = np.asarray(ticks["bid"], dtype=np.float64)[order]
    ask = np.asarray(ticks["ask"], dtype=np.float64)[order]
    # A tick carries the previous tick's other side; before the first of each, a side is 0.
    kept = (bid > 0) & (ask > 0) & (times >= start) & (times < end)
    times, bid, ask = times[kept], bid[kept], ask[kept]
    seconds = np.floor(times)
    last = np.flatnonzero(np.append(seconds[1:] != seconds[:-1], True))
    return [QuoteSample(symbol, float(times[i]), float(bid[i]), float(ask[i])) for i in last]


def fetch_quote_tape(
    broker: MT5Broker,
    database: ExecutionDatabase,
    symbols: Sequence[str],
    start: float,
    end: float,
    *,
    chunk_seconds: int = 3_600,
) -> dict[str, int]:
    """Fetch [start, end) of each symbol's tick history into the store's quote tape, one
    sample a second, an hour at a time (bounded memory however long the period); the samples
    written per symbol. A period longer than the store keeps is refused (ValueError, as
    `check_period` says)."""
    check_period(start, end, database.quote_retention_seconds)
    written: dict[str, int] = {}
    for symbol in symbols:
        written[symbol] = 0
        # Chunks end on whole seconds, so that no second is split between two of them.
        low = start
        while low < end:
            high = min(math.floor(low) + chunk_seconds, end)
            samples = broker.quote_samples(symbol, low, high)
            database.record_quotes(samples)
            written[symbol] += len(samples)
            low = high
    return written
