"""Stage 6: slippage in the symbol's pips, signed so that positive is adverse."""

from __future__ import annotations

import math

from engine.core.config import SlippageBands
from engine.core.instruments import SymbolSpec
from engine.core.vocabulary import Direction, SlippageQuality


def slippage_pips(
    direction: Direction, reference_price: float, fill_price: float, pip: float
) -> float:
    """A buy filled above, or a sell filled below, the reference price slipped adversely (> 0)."""
    # Rounded to a millionth of a pip so binary noise never flips a zero into a sign.
    return round(int(direction) * (fill_price - reference_price) / pip, 6) + 0.0


def reference_price(direction: Direction, bid: float, ask: float) -> float:
    """The quoted side the order would have traded at on arrival."""
    return ask if direction is Direction.BUY else bid


def classify(pips: float, bands: SlippageBands) -> SlippageQuality:
    if pips < 0:
        return SlippageQuality.IMPROVED
    if pips <= bands.excellent:
        return SlippageQuality.EXCELLENT
    if pips <= bands.good:
        return SlippageQuality.GOOD
    if pips <= bands.acceptable:
        return SlippageQuality.ACCEPTABLE
    return SlippageQuality.POOR


def deviation_points(max_slippage_pips: float, spec: SymbolSpec) -> int:
    """MT5's `deviation` is whole points; rounding down keeps the bound at least as tight."""
    return max(0, math.floor(max_slippage_pips * spec.points_per_pip + 1e-9))
