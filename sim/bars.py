"""How one-minute bid and ask bars become quotes: at their close, or along an intra-bar path.

A bar summarises a minute of quotes that nobody saw as four numbers at one instant, so a
replay must not show them before the minute is over. Two declared ways:

- "close": one quote per bar, the bid and ask closes, stamped at the bar's end (open + 60 s).
  Nothing is known before it was; the price between closes is the previous close.
- "bridge": a path at tick frequency through the bar's open, high, low and close, for the bid
  and for the ask, as a Brownian bridge between those four anchors.

The bridge, per bar (times in seconds after the bar's open, T = 60):

1. The number of ticks is Poisson with mean `ticks_per_minute` × (the bar's mid range /
   the median mid range of the file), at least the four anchors, at most `max_ticks_per_minute`.
   Activity follows the range because the count of price changes and realised variance move
   together; the constant is declared, so a scenario says how busy its market was.
2. Tick times: the open at 0, the others uniform in (0, T) and sorted (a Poisson process
   conditioned on its count), in whole, distinct milliseconds. The close is the last tick
   of the minute.
3. Two distinct inner ticks carry the extremes, in the order the bar's direction suggests:
   a bar whose mid closed at or above its open made its low first, one that fell its high.
4. Between consecutive anchors (t_a, x_a) and (t_b, x_b) the price is the straight line plus
   σ·(W(t) − W(t_a) − (t − t_a)/(t_b − t_a)·(W(t_b) − W(t_a))), a standard Brownian bridge
   pinned to zero at both anchors (W a Wiener process; the construction B(t) = W(t) − (t/T)
   W(T) of e.g. https://en.wikipedia.org/wiki/Brownian_bridge, or Glasserman, Monte Carlo
   Methods in Financial Engineering, 2004, §3.1). σ is the Parkinson estimate from the mid's
   range, (H − L)/√(4 ln 2 · T) per √s.
5. The bid and the ask share W and the anchor times. Their difference is then the straight
   line between the anchor spreads, which are not crossed (the loader's policy saw to it),
   so no generated quote is crossed. Each side is clipped to its own [low, high], which keeps
   the bar's high and low its extremes (and, as both bounds of the ask lie at or above the
   bid's, keeps ask ≥ bid), then rounded to the symbol's digits.

Re-aggregating the path into minutes gives back each side's open, high, low and close.
The path is drawn a chunk of bars at a time, each chunk from its own generator seeded by the
caller's seed and the chunk's number (see `BridgePath`), so memory stays bounded however
long the file and the path does not depend on the order chunks are read in.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator
from typing import Annotated, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from sim.quote_store import Quote

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

BAR_SECONDS = 60.0
IntraBarPath = Literal["close", "bridge"]

# Column indices into (open, high, low, close) for the two orders of the extremes.
_HIGH_FIRST = np.array([0, 1, 2, 3])
_LOW_FIRST = np.array([0, 2, 1, 3])
_FOUR_LN2 = 4.0 * math.log(2.0)


class BridgeConfig(BaseModel):
    """The intra-bar path's tick rate; see the module's description."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    ticks_per_minute: Annotated[float, Field(gt=0.0, le=6000.0)] = 300.0
    max_ticks_per_minute: Annotated[int, Field(ge=4, le=6000)] = 1200


def anchors(bid: FloatArray, ask: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(open, high, low, close) columns reordered into the path's order of anchors.

    The direction comes from the mid, so that bid and ask, which may disagree on a flat bar,
    follow one path."""
    rising = (bid[:, 3] + ask[:, 3]) >= (bid[:, 0] + ask[:, 0])
    index = np.where(rising[:, None], _LOW_FIRST, _HIGH_FIRST)
    return np.take_along_axis(bid, index, axis=1), np.take_along_axis(ask, index, axis=1)


# Bars per chunk of the path: a month of bars at hundreds of ticks a minute is tens of
# millions of ticks, gigabytes if drawn at once; a chunk is about a day and a half of bars.
CHUNK_BARS = 2048
# Chunks kept drawn: the one a run is in, the one before it (a venue walking the quotes since
# an order was placed may reach back across a boundary), and one spare for a look ahead.
CACHED_CHUNKS = 3


class BridgePath:
    """A bridge's ticks, drawn a chunk of bars at a time when first asked for, and only the
    last few chunks asked for kept; a `sim.quote_store.QuoteStore`.

    Each chunk draws from its own generator, seeded by `seed` and the chunk's number, and the
    tick rate's scale (the file's median range) is fixed for the whole file up front: a
    chunk's ticks are the same whichever chunks were drawn before it, or evicted and drawn
    again. `bid` and `ask` hold each bar's anchors in path order (see `anchors`), uncrossed.
    """

    def __init__(
        self,
        opens: FloatArray,
        bid: FloatArray,
        ask: FloatArray,
        digits: int,
        config: BridgeConfig,
        seed: int,
        chunk_bars: int = CHUNK_BARS,
        cached_chunks: int = CACHED_CHUNKS,
    ) -> None:
        if not len(opens):
            raise ValueError("a bridge needs at least one bar")
        self._opens, self._bid, self._ask = opens, bid, ask
        self._digits, self._config, self._seed = digits, config, seed
        self._chunk_bars, self._cached = chunk_bars, max(cached_chunks, 1)
        mid = (bid + ask) / 2.0
        ranges = mid.max(axis=1) - mid.min(axis=1)
        typical = float(np.median(ranges))
        self._activity = ranges / typical if typical > 0.0 else np.ones(len(opens))
        self._chunks: OrderedDict[int, tuple[FloatArray, FloatArray, FloatArray]] = OrderedDict()
        # The tick counts are each chunk's first draw, so counting costs no path.
        self.count = sum(int(self._ticks(number).sum()) for number in range(self.chunks))

    @property
    def chunks(self) -> int:
        return -(-len(self._opens) // self._chunk_bars)

    def _rng(self, number: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self._seed, 0x62726467, number]))

    def _slice(self, number: int) -> slice:
        return slice(number * self._chunk_bars, (number + 1) * self._chunk_bars)

    def _ticks(self, number: int) -> IntArray:
        """The chunk's ticks per bar, drawn as `_bridge` draws them first."""
        means = self._config.ticks_per_minute * self._activity[self._slice(number)]
        counts = self._rng(number).poisson(means)
        return np.clip(counts, 4, self._config.max_ticks_per_minute).astype(np.int64)

    def chunk(self, number: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        """The times, bids and asks of chunk `number`'s ticks, read-only."""
        drawn = self._chunks.get(number)
        if drawn is not None:
            self._chunks.move_to_end(number)
            return drawn
        part = self._slice(number)
        times, bids, asks, _ = _bridge(
            self._opens[part],
            self._bid[part],
            self._ask[part],
            self._activity[part],
            self._digits,
            self._config,
            self._rng(number),
        )
        for values in (times, bids, asks):
            values.setflags(write=False)
        self._chunks[number] = drawn = (times, bids, asks)
        while len(self._chunks) > self._cached:
            self._chunks.popitem(last=False)
        return drawn

    def _chunk_of(self, t: float) -> int:
        """The chunk holding the bar open at t (or last opened before it); -1 before any.
        A bar's first tick is at its open, so the latest tick at t is in that chunk."""
        bar = int(np.searchsorted(self._opens, t, side="right")) - 1
        return bar // self._chunk_bars if bar >= 0 else -1

    def latest(self, t: float) -> Quote | None:
        number = self._chunk_of(t)
        if number < 0:
            return None
        times, bids, asks = self.chunk(number)
        i = int(np.searchsorted(times, t, side="right")) - 1
        return Quote(float(times[i]), float(bids[i]), float(asks[i]))

    def between(self, t0: float, t1: float) -> Iterator[Quote]:
        if t1 <= t0:
            return
        for number in range(max(self._chunk_of(t0), 0), self._chunk_of(t1) + 1):
            times, bids, asks = self.chunk(number)
            start = int(np.searchsorted(times, t0, side="right"))
            end = int(np.searchsorted(times, t1, side="right"))
            for i in range(start, end):
                yield Quote(float(times[i]), float(bids[i]), float(asks[i]))

    @property
    def first(self) -> Quote:
        return Quote(float(self._opens[0]), float(self._bid[0, 0]), float(self._ask[0, 0]))

    @property
    def last(self) -> Quote:
        times, bids, asks = self.chunk(self.chunks - 1)
        return Quote(float(times[-1]), float(bids[-1]), float(asks[-1]))

    def typical_spreads(self) -> FloatArray:
        """The anchors' spreads: between them the path's spread is a straight line, so they
        describe its distribution without drawing the path."""
        return (self._ask - self._bid).ravel()

    def arrays(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        drawn = [self.chunk(number) for number in range(self.chunks)]
        times, bids, asks = (np.concatenate(column) for column in zip(*drawn, strict=True))
        return times, bids, asks

    def bars(self) -> IntArray:
        """The bar each tick belongs to, in the order of `arrays`."""
        counts = np.concatenate([self._ticks(number) for number in range(self.chunks)])
        return np.repeat(np.arange(len(self._opens), dtype=np.int64), counts)


def bridge(
    opens: FloatArray,
    bid: FloatArray,
    ask: FloatArray,
    digits: int,
    config: BridgeConfig,
    seed: int,
) -> tuple[FloatArray, FloatArray, FloatArray, IntArray]:
    """The whole path at once: tick times, bids, asks, and the bar each tick belongs to (an
    index into `opens`). For short stretches; a replay reads a `BridgePath` lazily."""
    path = BridgePath(opens, bid, ask, digits, config, seed)
    return (*path.arrays(), path.bars())


def _bridge(
    opens: FloatArray,
    bid: FloatArray,
    ask: FloatArray,
    activity: FloatArray,
    digits: int,
    config: BridgeConfig,
    rng: np.random.Generator,
) -> tuple[FloatArray, FloatArray, FloatArray, IntArray]:
    n_bars = len(opens)
    mid = (bid + ask) / 2.0
    ranges = mid.max(axis=1) - mid.min(axis=1)
    counts = rng.poisson(config.ticks_per_minute * activity)
    counts = np.clip(counts, 4, config.max_ticks_per_minute).astype(np.int64)
    sigma = ranges / math.sqrt(_FOUR_LN2 * BAR_SECONDS)

    total = int(counts.sum())
    bar_of = np.repeat(np.arange(n_bars, dtype=np.int64), counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.arange(total, dtype=np.int64) - starts[bar_of]
    # Offsets in whole milliseconds, as feeds stamp them: the open at 0, the others sorted
    # uniform integers in [0, T - count] plus their rank, which makes them strictly
    # increasing and below T (the stars-and-bars way of drawing distinct sorted instants).
    room = int(BAR_SECONDS * 1000) - counts
    draws = np.floor(rng.uniform(0.0, 1.0, total) * (room[bar_of] + 1)).astype(np.int64)
    draws[position == 0] = 0
    order = np.lexsort((draws, bar_of))
    offsets = (draws[order] + position) / 1000.0

    # The extremes' ticks: two distinct inner positions 1..count-2, in order.
    inner = counts - 2
    first = rng.integers(0, inner)
    second = rng.integers(0, inner - 1)
    second = np.where(second >= first, second + 1, second)
    low_pick, high_pick = np.minimum(first, second), np.maximum(first, second)
    anchor_pos = np.stack([np.zeros(n_bars, np.int64), 1 + low_pick, 1 + high_pick, counts - 1])
    anchor_index = (starts[None, :] + anchor_pos).T  # (bars, 4) tick indices

    # Which segment (0, 1, 2) of its bar each tick lies in, and the segment's two ends.
    segment = (
        (position >= anchor_pos[1][bar_of]).astype(np.int64)
        + (position >= anchor_pos[2][bar_of])
        + (position >= anchor_pos[3][bar_of])
    )
    segment = np.minimum(segment, 2)
    left = anchor_index[bar_of, segment]
    right = anchor_index[bar_of, segment + 1]
    t_left, t_right = offsets[left], offsets[right]
    span = np.maximum(t_right - t_left, 1e-12)
    weight = (offsets - t_left) / span

    # One Wiener path per bar on the tick times, shared by bid and ask.
    steps = np.diff(offsets, prepend=0.0)
    steps[position == 0] = 0.0
    increments = rng.standard_normal(total) * np.sqrt(np.maximum(steps, 0.0))
    wiener = np.cumsum(increments)
    wiener -= np.repeat(wiener[starts], counts)  # W = 0 at each bar's open
    noise = sigma[bar_of] * (wiener - wiener[left] - weight * (wiener[right] - wiener[left]))

    def side(values: FloatArray) -> FloatArray:
        a, b = values[bar_of, segment], values[bar_of, segment + 1]
        path = a + weight * (b - a) + noise
        path = np.clip(path, values.min(axis=1)[bar_of], values.max(axis=1)[bar_of])
        return np.round(path, digits)

    return opens[bar_of] + offsets, side(bid), side(ask), bar_of
