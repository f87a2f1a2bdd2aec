"""Where a replay's quotes are kept, and the two ways of reading them a market needs.

A market asks a symbol's quotes two things: the latest quote at or before an instant, and
every quote stamped in a span (the venue walks those to trigger stop-losses and limit
orders). `ArrayQuotes` holds recorded quotes (ticks, or bars at their close) in read-only
arrays, the data's own size. `sim.bars.BridgePath` answers the same two questions for a path
drawn between bars, a chunk at a time, because a month of it at tick frequency would not
fit in memory at once. Both are `QuoteStore`s.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


class Quote(NamedTuple):
    """One quote: its time, bid and ask, and the volume quoted at each side if known."""

    time: float
    bid: float
    ask: float
    bid_size: float | None = None
    ask_size: float | None = None


class QuoteStore(Protocol):
    @property
    def count(self) -> int:
        """How many quotes there are."""
        ...

    @property
    def first(self) -> Quote: ...

    @property
    def last(self) -> Quote: ...

    def latest(self, t: float) -> Quote | None:
        """The latest quote stamped at or before t; None before the first."""
        ...

    def between(self, t0: float, t1: float) -> Iterator[Quote]:
        """The quotes stamped in (t0, t1], oldest first."""
        ...

    def typical_spreads(self) -> FloatArray:
        """Spreads (ask − bid) whose distribution is the quotes' own, to describe the symbol."""
        ...

    def arrays(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Every quote's time, bid and ask at once: for tests and small files, as a long
        generated path takes gigabytes this way."""
        ...


def _size(sizes: FloatArray | None, i: int) -> float | None:
    # A missing or zero size is no depth information, not a market without depth.
    if sizes is None or not np.isfinite(sizes[i]) or sizes[i] <= 0.0:
        return None
    return float(sizes[i])


def frozen(values: FloatArray) -> FloatArray:
    values = np.ascontiguousarray(values, dtype=np.float64)
    values.setflags(write=False)
    return values


class ArrayQuotes:
    """Quotes in arrays, times strictly increasing (POSIX seconds); a look-up is one binary
    search, and no per-quote Python object exists until one is asked for."""

    def __init__(
        self,
        time: FloatArray,
        bid: FloatArray,
        ask: FloatArray,
        bid_size: FloatArray | None = None,
        ask_size: FloatArray | None = None,
    ) -> None:
        self.time, self.bid, self.ask = frozen(time), frozen(bid), frozen(ask)
        self.bid_size = frozen(bid_size) if bid_size is not None else None
        self.ask_size = frozen(ask_size) if ask_size is not None else None

    @property
    def count(self) -> int:
        return len(self.time)

    def _quote(self, i: int) -> Quote:
        return Quote(
            float(self.time[i]),
            float(self.bid[i]),
            float(self.ask[i]),
            _size(self.bid_size, i),
            _size(self.ask_size, i),
        )

    @property
    def first(self) -> Quote:
        return self._quote(0)

    @property
    def last(self) -> Quote:
        return self._quote(self.count - 1)

    def latest(self, t: float) -> Quote | None:
        i = int(np.searchsorted(self.time, t, side="right")) - 1
        return self._quote(i) if i >= 0 else None

    def between(self, t0: float, t1: float) -> Iterator[Quote]:
        start = int(np.searchsorted(self.time, t0, side="right"))
        end = int(np.searchsorted(self.time, t1, side="right"))
        for i in range(start, end):
            yield self._quote(i)

    def typical_spreads(self) -> FloatArray:
        return self.ask - self.bid

    def arrays(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        return self.time, self.bid, self.ask
