"""The simulated price process: a seeded random walk of the mid per symbol, with a spread.

The mid is Brownian on a tick grid: asked at a later tick, it moves by one normal draw
scaled to the time elapsed, so a quiet symbol costs nothing and a weekend costs one draw.
Prices freeze while the market is closed, so the last quote goes stale, as at a broker.
"""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.core.instruments import SymbolSpec, TradeMode, pip_size
from engine.schemas import SYMBOL_PATTERN, MarketSnapshot
from sim.sessions import FxWeek


class SymbolConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

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
        )


DEFAULT_SYMBOLS = (
    SymbolConfig(symbol="EURUSD", start_mid=1.08500),
    SymbolConfig(symbol="GBPUSD", start_mid=1.27000, spread_pips=1.0, volatility_pips=0.25),
    SymbolConfig(
        symbol="USDJPY", start_mid=145.000, digits=3, spread_pips=0.9, volatility_pips=0.25
    ),
)


class MarketConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    symbols: tuple[SymbolConfig, ...] = DEFAULT_SYMBOLS
    tick_seconds: Annotated[float, Field(gt=0.0)] = 0.25
    week: FxWeek = FxWeek()


class _Walk:
    """One symbol's mid: its own generator, the last tick index and price."""

    __slots__ = ("config", "half_spread", "mid", "pip", "rng", "snapshot", "tick")

    def __init__(self, config: SymbolConfig, rng: np.random.Generator) -> None:
        self.config = config
        self.rng = rng
        self.pip = pip_size(config.digits, config.point)
        self.half_spread = config.spread_pips * self.pip / 2.0
        self.mid = config.start_mid
        self.tick: int | None = None
        self.snapshot: MarketSnapshot | None = None  # the quote struck at `tick`


class SyntheticMarket:
    def __init__(self, config: MarketConfig, seed: int) -> None:
        self.config = config
        streams = np.random.SeedSequence(seed).spawn(len(config.symbols))
        self._walks = {
            sym.symbol: _Walk(sym, np.random.default_rng(stream))
            for sym, stream in zip(config.symbols, streams, strict=True)
        }

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._walks)

    def symbol_config(self, symbol: str) -> SymbolConfig | None:
        walk = self._walks.get(symbol)
        return walk.config if walk else None

    def is_open(self, t: float) -> bool:
        return self.config.week.is_open(t)

    def _walk_to(self, walk: _Walk, t: float) -> None:
        tick_seconds = self.config.tick_seconds
        tick = math.floor(self.config.week.last_open_instant(t) / tick_seconds)
        if walk.tick is not None and tick <= walk.tick:
            return
        if walk.tick is not None:
            elapsed = (tick - walk.tick) * tick_seconds
            sigma = walk.config.volatility_pips * walk.pip * math.sqrt(elapsed)
            walk.mid += sigma * walk.rng.standard_normal()
        walk.tick = tick
        walk.snapshot = None

    def quote(self, symbol: str, t: float) -> MarketSnapshot | None:
        """The quote prevailing at t; its time is the tick it was struck at."""
        walk = self._walks.get(symbol)
        if walk is None:
            return None
        self._walk_to(walk, t)
        if walk.snapshot is None:
            digits = walk.config.digits
            walk.snapshot = MarketSnapshot.model_construct(
                symbol=symbol,
                bid=round(walk.mid - walk.half_spread, digits),
                ask=round(walk.mid + walk.half_spread, digits),
                time=walk.tick * self.config.tick_seconds,
                bid_depth_units=None,
                ask_depth_units=None,
            )
        return walk.snapshot

    def mid(self, symbol: str, t: float) -> float:
        walk = self._walks.get(symbol)
        if walk is None:
            raise KeyError(f"unknown symbol {symbol}")
        self._walk_to(walk, t)
        return walk.mid
