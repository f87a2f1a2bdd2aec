"""What the book the venue fills against looks like after the market and its own trades.

Two effects of a real order book that a quote alone does not show (issue 17):

- **Depth thins when spreads widen.** Liquidity providers quote less size when they quote
  wider (at the rollover, in a news window): the venue's ladder is scaled by the market's
  `liquidity(symbol, t)`, the share of its usual depth on the book.
- **Temporary price impact that decays.** A fill takes liquidity and moves the price the
  trade's way; the book then refills at an exponential rate. This is the resilience model of
  A. Obizhaeva and J. Wang, "Optimal trading strategy and supply/demand dynamics", *Journal
  of Financial Markets* 16 (2013) 1-32: the displacement left by trades decays as
  e^(-rho t). Here it is in pips per million units traded, with a half-life, per symbol, and
  it shifts both sides of the quote the venue shows and fills at.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from engine.schemas import MarketSnapshot
from sim.liquidity import DepthLadder
from sim.market import PriceSource


class PriceImpactConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # How far a million units moves the price the trade's way, the moment it fills.
    pips_per_million: Annotated[float, Field(ge=0.0, le=1_000.0)] = 0.5
    # How fast the book refills: half of what is left of the move is gone after this long.
    half_life_seconds: Annotated[float, Field(gt=0.0, le=86_400.0)] = 30.0


class Liquidity:
    """The venue's depth and its own trades' footprint on the price, per symbol."""

    def __init__(
        self, market: PriceSource, depth: DepthLadder | None, impact: PriceImpactConfig | None
    ) -> None:
        self._market = market
        self._depth = depth
        self._impact = impact
        self._moved: dict[str, tuple[float, float]] = {}  # symbol -> (pips, since)

    def depth(self, symbol: str, t: float) -> DepthLadder | None:
        if self._depth is None:
            return None
        return self._depth.thinned(self._market.liquidity(symbol, t))

    def moved_pips(self, symbol: str, t: float) -> float:
        """The price's displacement by the venue's own fills, left at t (+ up)."""
        moved = self._moved.get(symbol)
        if moved is None or self._impact is None:
            return 0.0
        pips, since = moved
        return pips * 0.5 ** ((t - since) / self._impact.half_life_seconds)

    def traded(self, symbol: str, signed_units: int, t: float) -> None:
        if self._impact is None:
            return
        push = signed_units / 1_000_000 * self._impact.pips_per_million
        self._moved[symbol] = (self.moved_pips(symbol, t) + push, t)

    def shown(
        self, quote: MarketSnapshot | None, t: float, pip: float, digits: int
    ) -> MarketSnapshot | None:
        """The quote moved by what is left at t of the venue's own impact, at the symbol's
        digits."""
        if quote is None or self._impact is None:
            return quote
        shift = self.moved_pips(quote.symbol, t) * pip
        if shift == 0.0:
            return quote
        return quote.model_copy(
            update={
                "bid": round(quote.bid + shift, digits),
                "ask": round(quote.ask + shift, digits),
            }
        )
