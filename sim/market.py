"""The synthetic price process, and the interface every price source offers the venue.

The mid of each symbol moves on a tick grid, one innovation per open tick drawn in tick
order (normal, or Student-t for fat tails), scaled by the volatility in force: the symbol's
level, times the hour of day's profile and a clustering factor per minute (`sim.shape`),
times a two-state regime (calm and volatile, switching at random) and scheduled news (a
jump at the release, then a volatile window); rare jumps come on top. Spreads come from
`sim.spreads` and `sim.shape`. The market is frozen while closed: the last quote goes
stale, as at a broker, and the price reopens with a gap drawn from a distribution, not a
weekend's worth of diffusion.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Annotated, Protocol

import numpy as np
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from engine.core.instruments import SymbolSpec, TradeMode, pip_size
from engine.core.ports import FillPolicy
from engine.schemas import SYMBOL_PATTERN, MarketSnapshot
from sim.regimes import RegimeConfig as RegimeConfig
from sim.regimes import Regimes
from sim.sessions import FxWeek
from sim.shape import MarketShape, MinutePath
from sim.spreads import SpreadConfig


class PriceSource(Protocol):
    """What the venue needs from a market, synthetic or replayed."""

    @property
    def symbols(self) -> tuple[str, ...]: ...

    def symbol_config(self, symbol: str) -> SymbolConfig | None: ...

    def is_open(self, t: float) -> bool: ...

    def quote(self, symbol: str, t: float) -> MarketSnapshot | None: ...

    def mid(self, symbol: str, t: float) -> float: ...

    def quotes_between(self, symbol: str, t0: float, t1: float) -> Iterator[MarketSnapshot]:
        """Every quote struck in (t0, t1], oldest first: the path a resting order or a
        stop-loss meets between two looks (a closed market strikes none)."""
        ...

    def volatility(self, t: float) -> float:
        """The volatility multiplier in force at t: 1 when calm."""
        ...

    def no_quote_reason(self, symbol: str, t: float) -> str:
        """Why `quote(symbol, t)` is None, in words, for the refusal that follows."""
        ...

    def liquidity(self, symbol: str, t: float) -> float:
        """The share (0..1] of the venue's usual depth on the book at t."""
        ...


# A price tick every millisecond at the finest: finer is below any FX feed's resolution, and
# tick numbers (POSIX time over the tick) would outgrow a float's exact integers.
TickSeconds = Annotated[float, Field(ge=0.001)]


class SymbolConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    symbol: str
    start_mid: Annotated[float, Field(gt=0.0)]
    digits: Annotated[int, Field(ge=0, le=8)] = 5
    spread_pips: Annotated[float, Field(ge=0.0)] = 0.8
    volatility_pips: Annotated[float, Field(ge=0.0)] = 0.2  # per square-root second
    contract_size: Annotated[int, Field(gt=0)] = 100_000
    volume_min: Annotated[float, Field(gt=0.0)] = 0.01
    volume_max: Annotated[float, Field(gt=0.0)] = 100.0
    volume_step: Annotated[float, Field(gt=0.0)] = 0.01
    trade_mode: TradeMode = TradeMode.FULL
    # Filling policies the broker accepts for the symbol (MT5's filling_mode bitmask).
    fill_policies: tuple[FillPolicy, ...] = (FillPolicy.IOC, FillPolicy.FOK)
    # MT5 SYMBOL_TRADE_STOPS_LEVEL and SYMBOL_TRADE_FREEZE_LEVEL, in points (MQL4 book,
    # "Requirements and Limitations in Making Trades", book.mql4.com/appendix/limits):
    # stops and limit prices nearer the market than the stops level are refused; within
    # the freeze level of the market a position's stops can no longer be changed.
    # SYMBOL_ORDER_MODE's SL/TP flags: whether an order may carry its stops.
    stops_level_points: Annotated[int, Field(ge=0)] = 0
    freeze_level_points: Annotated[int, Field(ge=0)] = 0
    stops_on_order: bool = True

    @field_validator("symbol")
    @classmethod
    def _six_letters(cls, value: str) -> str:
        if not SYMBOL_PATTERN.match(value):
            raise ValueError("symbol must be six capital letters, e.g. EURUSD")
        return value

    @property
    def point(self) -> float:
        return 10.0**-self.digits

    def spec(self) -> SymbolSpec:
        return SymbolSpec(
            symbol=self.symbol,
            digits=self.digits,
            point=self.point,
            contract_size=self.contract_size,
            volume_min=self.volume_min,
            volume_max=self.volume_max,
            volume_step=self.volume_step,
            trade_mode=self.trade_mode,
            stops_level_points=self.stops_level_points,
            freeze_level_points=self.freeze_level_points,
            stops_on_order=self.stops_on_order,
        )


DEFAULT_SYMBOLS = (
    SymbolConfig(symbol="EURUSD", start_mid=1.08500),
    SymbolConfig(symbol="GBPUSD", start_mid=1.27000, spread_pips=1.0, volatility_pips=0.25),
    SymbolConfig(
        symbol="USDJPY", start_mid=145.000, digits=3, spread_pips=0.9, volatility_pips=0.25
    ),
)


class NewsEvent(BaseModel):
    """A scheduled release: a jump at `at`, then `window_seconds` of higher volatility."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    at: AwareDatetime  # naive: refused
    symbols: tuple[str, ...] = ()  # empty: every symbol
    jump_pips: Annotated[float, Field(ge=0.0)] = 10.0  # standard deviation of the jump
    volatility_multiplier: Annotated[float, Field(ge=1.0)] = 4.0
    window_seconds: Annotated[float, Field(gt=0.0)] = 300.0

    @property
    def start(self) -> float:
        return self.at.timestamp()

    def affects(self, symbol: str) -> bool:
        return not self.symbols or symbol in self.symbols


class MarketConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    symbols: tuple[SymbolConfig, ...] = DEFAULT_SYMBOLS
    tick_seconds: TickSeconds = 0.25
    week: FxWeek = FxWeek()
    regimes: RegimeConfig | None = RegimeConfig()
    news: tuple[NewsEvent, ...] = ()
    spreads: SpreadConfig = SpreadConfig()
    # Intraday profiles, clustering, tails, stochastic spreads, reopen gaps (None: a flat,
    # Gaussian market that still freezes while closed, without a reopen gap).
    shape: MarketShape | None = MarketShape()


class _Walk:
    """One symbol's mid: its own generator, the last tick index and price."""

    __slots__ = (
        "config",
        "gap_seed",
        "half_spread",
        "jumps",
        "mid",
        "news",
        "path",
        "pip",
        "rng",
        "snapshot",
        "spread_ratio",
        "tick",
    )

    def __init__(
        self,
        config: SymbolConfig,
        rng: np.random.Generator,
        news: list[NewsEvent],
        jumps: np.random.Generator,
        path: MinutePath | None,
        gap_seed: int,
    ) -> None:
        self.config = config
        self.rng = rng
        self.path = path
        self.gap_seed = gap_seed  # with a closure's start, seeds that closure's reopen gap
        self.spread_ratio = 1.0  # the last quote's spread over the symbol's base spread
        # Each news event's jump in pips, drawn now from a stream of their own: the tick
        # draws then stay one per tick, whenever the walk crosses a release.
        self.jumps = [event.jump_pips * float(jumps.standard_normal()) for event in news]
        self.pip = pip_size(config.digits, config.point)
        self.half_spread = config.spread_pips * self.pip / 2.0
        self.mid = config.start_mid
        self.news = news
        self.tick: int | None = None
        self.snapshot: MarketSnapshot | None = None  # the quote struck at `tick`


class SyntheticMarket:
    def __init__(self, config: MarketConfig, seed: int, start: float) -> None:
        """`start` anchors the regime switches: the same seed and start, the same regimes."""
        self.config = config
        # Streams 1..n walk the symbols, n+1..2n draw their news jumps, 2n+1..3n their
        # minute paths, 3n+1..4n seed their reopen gaps (spawned children depend on their
        # index only: adding streams leaves the others as they were).
        count = len(config.symbols)
        streams = np.random.SeedSequence(seed).spawn(4 * count + 1)
        self._regimes = Regimes(config.regimes, np.random.default_rng(streams[0]), start)
        news = sorted(config.news, key=lambda n: n.start)
        self._news = news
        shape = config.shape
        first_minute = math.floor(start / 60.0)
        self._shape = shape
        self._volatility_profile = np.array(shape.volatility_profile) if shape else None
        self._walks = {
            sym.symbol: _Walk(
                sym,
                np.random.default_rng(streams[1 + i]),
                [n for n in news if n.affects(sym.symbol)],
                np.random.default_rng(streams[1 + count + i]),
                MinutePath(shape, np.random.default_rng(streams[1 + 2 * count + i]), first_minute)
                if shape
                else None,
                int(streams[1 + 3 * count + i].generate_state(1)[0]),
            )
            for i, sym in enumerate(config.symbols)
        }
        # The session at the instant last asked about: every call the venue and the engine
        # make at one virtual instant asks it several times. (instant, open, tick)
        self._instant: tuple[float, bool, int] | None = None
        # Every walk starts at `start` with its start_mid: where the path begins must not
        # depend on when the market is first asked.
        for walk in self._walks.values():
            walk.tick = self._session(start)[2]

    def _session(self, t: float) -> tuple[float, bool, int]:
        instant = self._instant
        if instant is None or instant[0] != t:
            week = self.config.week
            tick = math.floor(week.last_open_instant(t) / self.config.tick_seconds)
            instant = self._instant = (t, week.is_open(t), tick)
        return instant

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._walks)

    def symbol_config(self, symbol: str) -> SymbolConfig | None:
        walk = self._walks.get(symbol)
        return walk.config if walk else None

    def is_open(self, t: float) -> bool:
        return self._session(t)[1]

    def _news_multiplier(self, news: list[NewsEvent], t: float) -> float:
        widest = 1.0
        for event in news:
            if event.start <= t < event.start + event.window_seconds:
                widest = max(widest, event.volatility_multiplier)
        return widest

    def volatility(self, t: float) -> float:
        return self._regimes.multiplier(t) * self._news_multiplier(self._news, t)

    def _multiplier(self, walk: _Walk, t: float) -> float:
        return self._regimes.multiplier(t) * self._news_multiplier(walk.news, t)

    def _tick_multipliers(self, walk: _Walk, first: int, last: int) -> list[tuple[int, float]]:
        """The volatility multiplier of ticks first..last as runs (first tick, multiplier):
        regimes and news windows are piecewise constant, so a run lasts from one edge to the
        next. A tick's multiplier is the one in force when its interval begins."""
        tick_seconds = self.config.tick_seconds
        t0, t1 = (first - 1) * tick_seconds, last * tick_seconds
        edges = set(self._regimes.switches_between(t0, t1))
        for event in walk.news:
            for edge in (event.start, event.start + event.window_seconds):
                if t0 < edge < t1:
                    edges.add(edge)
        runs = [(first, self._multiplier(walk, t0))]
        for edge in sorted(edges):
            # The first tick whose interval begins at or after the edge.
            start = max(first, math.ceil(edge / tick_seconds) + 1)
            if start > last:
                break
            if runs[-1][0] == start:
                runs[-1] = (start, self._multiplier(walk, edge))
            else:
                runs.append((start, self._multiplier(walk, edge)))
        return runs

    def _walk_to(self, walk: _Walk, t: float) -> None:
        self._walk_to_tick(walk, self._session(t)[2])

    def _walk_to_tick(self, walk: _Walk, tick: int) -> None:
        """Move the mid to `tick`: one innovation per open tick, drawn in tick order from the
        symbol's own stream, so the path is a function of time alone — the same whether the
        walk is asked every tick or once an hour, so brokers that read at other instants
        meet the same market. News jumps are drawn up front, one per event; the minute
        path's blocks in order; a reopen gap from a generator seeded by the closure's start.
        A closure costs no draws: the price is frozen, then gaps."""
        if walk.tick is not None and tick <= walk.tick:
            return
        if walk.tick is not None:
            ts = self.config.tick_seconds
            cursor = walk.tick
            # A closure lasts a day at least: two ticks less than a day apart have none.
            while (tick - cursor) * ts >= 86_000.0:
                week = self.config.week
                close = week.next_closure_start(cursor * ts)
                frozen = math.floor(close / ts)
                if frozen >= tick:
                    break
                self._diffuse(walk, cursor, frozen)
                reopen = week.next_open_instant(close)
                cursor = max(math.ceil(reopen / ts - 1e-9), frozen + 1)
                walk.mid += self._reopen_gap(walk, close) * walk.pip
                if cursor >= tick:
                    cursor = tick
                    break
            self._diffuse(walk, cursor, tick)
        walk.tick = tick
        walk.snapshot = None

    def _reopen_gap(self, walk: _Walk, close: float) -> float:
        shape = self._shape
        if shape is None or not shape.reopen_gap_pips:
            return 0.0
        rng = np.random.default_rng([walk.gap_seed, int(close)])
        return shape.reopen_gap_pips * float(rng.standard_normal())

    def _draws(self, walk: _Walk, count: int) -> np.ndarray:
        df = self._shape.tail_df if self._shape else None
        if df is None:
            return walk.rng.standard_normal(count)
        # Student-t scaled to unit variance: the level stays volatility_pips.
        return walk.rng.standard_t(df, count) * math.sqrt((df - 2.0) / df)

    def _diffuse(self, walk: _Walk, start: int, tick: int) -> None:
        """Ticks start+1..tick, all open (or the close's own tick)."""
        if tick <= start:
            return
        first, count = start + 1, tick - start
        ts = self.config.tick_seconds
        scale = walk.config.volatility_pips * math.sqrt(ts)
        runs = self._tick_multipliers(walk, first, tick)
        path, profile = walk.path, self._volatility_profile
        draws = self._draws(walk, count)
        if path is not None and profile is not None:
            # A tick's volatility is the one in force when its interval begins.
            if count == 1:
                begin = start * ts
                draws *= path.factors(begin)[0] * profile[int(begin % 86_400.0 // 3600.0)]
            else:
                begins = np.arange(start, tick, dtype=np.float64) * ts
                hours = (begins % 86_400.0 // 3600.0).astype(np.int64)
                draws *= path.volatility_at(begins) * profile[hours]
        if count == 1:
            step = scale * runs[0][1] * float(draws[0])
        else:
            ends = [*(s for s, _ in runs[1:]), tick + 1]
            step = sum(
                scale * m * float(draws[s - first : end - first].sum())
                for (s, m), end in zip(runs, ends, strict=True)
            )
        t0, t1 = start * ts, tick * ts
        for event, jump in zip(walk.news, walk.jumps, strict=True):
            if t0 < event.start <= t1:
                step += jump
        if path is not None:
            step += path.jumps_between(t0, t1)
        walk.mid += step * walk.pip

    def _spread_multiplier(self, walk: _Walk, t: float) -> float:
        week = self.config.week
        news_active = self._news_multiplier(walk.news, t) > 1.0
        events = self.config.spreads.multiplier(
            t,
            week.seconds_since_open(t),
            news_active,
            self._regimes.volatile(t),
            week.roll_hour_utc(t),
        )
        shape, path = self._shape, walk.path
        if shape is None or path is None:
            return events
        hour = int(t % 86_400.0 // 3600.0)
        return events * shape.spread_profile[hour] * path.factors(t)[1]

    def liquidity(self, symbol: str, t: float) -> float:
        """The share of the venue's usual depth on the book at t: depth thins as spreads
        widen, (base spread / spread) ** depth_elasticity, at most 1 (`DepthLadder.thinned`)."""
        quote = self.quote(symbol, t)
        walk = self._walks[symbol]
        shape = self._shape
        if quote is None or shape is None or walk.spread_ratio <= 1.0:
            return 1.0
        return float(walk.spread_ratio**-shape.depth_elasticity)

    def quote(self, symbol: str, t: float) -> MarketSnapshot | None:
        """The quote prevailing at t; its time is the tick it was struck at."""
        walk = self._walks.get(symbol)
        if walk is None:
            return None
        self._walk_to(walk, t)
        if walk.snapshot is None:
            struck = walk.tick * self.config.tick_seconds
            ratio = walk.spread_ratio = self._spread_multiplier(walk, struck)
            half = walk.half_spread * ratio
            digits = walk.config.digits
            walk.snapshot = MarketSnapshot.model_construct(
                symbol=symbol,
                bid=round(walk.mid - half, digits),
                ask=round(walk.mid + half, digits),
                time=struck,
                bid_depth_units=None,
                ask_depth_units=None,
            )
        return walk.snapshot

    def no_quote_reason(self, symbol: str, t: float) -> str:
        # A walk quotes from its start at every instant: only an unknown symbol has none.
        return f"no quote for {symbol}: not a symbol of this market"

    def mid(self, symbol: str, t: float) -> float:
        walk = self._walks.get(symbol)
        if walk is None:
            raise KeyError(f"unknown symbol {symbol}")
        self._walk_to(walk, t)
        return walk.mid

    def quotes_between(self, symbol: str, t0: float, t1: float) -> Iterator[MarketSnapshot]:
        """The walk stepped one tick at a time from t0 to t1, each tick's quote in turn: the
        same quotes as any other way of asking (the path is a function of time alone). A
        tick struck meanwhile by someone else (a conversion rate read mid-walk) is yielded
        when seen; ticks already passed before t0 are gone. A closure is crossed in one step,
        as `quote` crosses it."""
        walk = self._walks.get(symbol)
        if walk is None:
            return
        last = self._session(t0)[2]  # the tick prevailing at t0: already seen
        end = self._session(t1)[2]
        assert walk.tick is not None  # set at construction
        while True:
            if walk.tick > last:
                last = walk.tick
                quote = self.quote(symbol, walk.tick * self.config.tick_seconds)
                # `quote` at the tick's own instant may round to the tick before it.
                assert quote is not None
                yield quote
                continue
            following = self._next_open_tick(walk.tick, end)
            if following is None:
                return
            self._walk_to_tick(walk, following)

    def _next_open_tick(self, tick: int, end: int) -> int | None:
        """The first tick after `tick`, up to `end`, struck while the market is open."""
        tick_seconds, week = self.config.tick_seconds, self.config.week
        candidate = tick + 1
        if candidate > end:
            return None
        if week.is_open(candidate * tick_seconds):
            return candidate
        # Closed: gallop to an open tick (closures are one contiguous span, and open spans
        # last longer than any closure), then bisect back to the first one.
        closed, step = candidate, 1
        while True:
            probe = min(candidate + step, end)
            if week.is_open(probe * tick_seconds):
                break
            if probe == end:
                return None
            closed, step = probe, step * 2
        while probe - closed > 1:
            middle = (closed + probe) // 2
            if week.is_open(middle * tick_seconds):
                probe = middle
            else:
                closed = middle
        return probe
