"""What a symbol is at the broker, and the exact arithmetic of pips, points, units and lots."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum


class TradeMode(IntEnum):
    """MT5's SYMBOL_TRADE_MODE values."""

    DISABLED = 0
    LONG_ONLY = 1
    SHORT_ONLY = 2
    CLOSE_ONLY = 3
    FULL = 4


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    symbol: str
    digits: int
    point: float
    contract_size: int
    volume_min: float
    volume_max: float
    volume_step: float
    trade_mode: TradeMode = TradeMode.FULL
    # MT5 SYMBOL_TRADE_STOPS_LEVEL: stops (and limit prices) nearer the market than this
    # many points are refused (10016); SYMBOL_TRADE_FREEZE_LEVEL: within this many points of
    # the market a position's stops and a resting order can no longer be changed (10029).
    stops_level_points: int = 0
    freeze_level_points: int = 0
    # MT5 SYMBOL_ORDER_MODE's SL and TP flags: whether an order may carry its protection;
    # where not, the engine sets it on the position right after the fill.
    stops_on_order: bool = True

    @property
    def pip(self) -> float:
        return pip_size(self.digits, self.point)

    @property
    def points_per_pip(self) -> int:
        return round(self.pip / self.point)


def is_jpy_quoted(symbol: str) -> bool:
    return symbol[3:6] == "JPY"


def pip_size(digits: int, point: float) -> float:
    """A pip is ten points on fractional (5- and 3-digit) quotes, else one point."""
    return point * 10 if digits in (3, 5) else point


class VolumeError(ValueError):
    """Units the broker cannot represent exactly: refused, never rounded."""


def _dec(value: float | int) -> Decimal:
    # Through str so that 0.01 is the decimal 0.01, not its binary neighbour.
    return Decimal(str(value))


def units_to_lots(units: int, spec: SymbolSpec) -> float:
    """Lots for exactly `units`, or VolumeError naming why that is impossible."""
    lots = Decimal(units) / _dec(spec.contract_size)
    step = _dec(spec.volume_step)
    steps = lots / step
    if steps != steps.to_integral_value():
        raise VolumeError(
            f"{units} units = {lots} lots is not a multiple of the volume step {step} "
            f"(contract size {spec.contract_size})"
        )
    if lots < _dec(spec.volume_min):
        raise VolumeError(f"{lots} lots is below the minimum volume {spec.volume_min}")
    if lots > _dec(spec.volume_max):
        raise VolumeError(f"{lots} lots is above the maximum volume {spec.volume_max}")
    return float(lots)


def lots_to_units(lots: float, spec: SymbolSpec) -> int:
    units = _dec(lots) * _dec(spec.contract_size)
    if units != units.to_integral_value():
        raise VolumeError(f"{lots} lots is not a whole number of units")
    return int(units)
