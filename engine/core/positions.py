"""Which position a reduce, close or stop change acts on, and where protection goes.

Pure functions of what the broker reported: the engine never guesses a position or a size.
A decision that names a position (its ticket) gets that one; otherwise on a netting account
the symbol's one position, and on a hedging account the oldest of the symbol's positions
that the decision fits (first in, first out — MT5's own rule on FIFO accounts). Units are
exact: more than the position holds is refused, never clipped, so a reduce never goes
through zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.core.instruments import SymbolSpec
from engine.core.ports import Position
from engine.core.vocabulary import Direction, ExecutionRejectionReason, TradeIntent

R = ExecutionRejectionReason


@dataclass(frozen=True, slots=True)
class PositionFailure:
    reason: ExecutionRejectionReason
    detail: str


def _side(direction: Direction) -> str:
    return "long" if direction is Direction.BUY else "short"


def _fits(intent: TradeIntent, direction: Direction, units: int, position: Position) -> bool:
    if intent is TradeIntent.MODIFY_STOPS:
        return position.direction is direction and position.units == units
    if position.direction is direction:
        return False
    return position.units == units if intent is TradeIntent.CLOSE else position.units >= units


def resolve_position(
    intent: TradeIntent,
    symbol: str,
    direction: Direction,
    units: int,
    positions: Sequence[Position],
    hedging: bool,
    position_id: str | None,
) -> Position | PositionFailure:
    """The position the decision acts on, or why there is none it may act on.

    For reduce and close, `direction` is the side of the order to send (opposite the
    position); for modify_stops it is the position's own side."""
    held = [p for p in positions if p.symbol == symbol]
    if position_id is not None:
        named = [p for p in held if p.position_id == position_id]
        if not named:
            return PositionFailure(R.NO_POSITION, f"no open {symbol} position {position_id}")
        chosen = named[0]
    elif not held:
        return PositionFailure(R.NO_POSITION, f"no open {symbol} position")
    elif not hedging:
        chosen = held[0]
    else:
        fitting = [p for p in held if _fits(intent, direction, units, p)]
        # None fits: judge the nearest miss, so the refusal names the true cause.
        same_side = intent is TradeIntent.MODIFY_STOPS
        sided = [p for p in held if (p.direction is direction) == same_side]
        chosen = fitting[0] if fitting else max(sided or held, key=lambda p: p.units)
    return _check(intent, direction, units, chosen)


def _check(
    intent: TradeIntent, direction: Direction, units: int, position: Position
) -> Position | PositionFailure:
    what = f"position {position.position_id} ({_side(position.direction)} {position.units} units)"
    if intent is TradeIntent.MODIFY_STOPS:
        if position.direction is not direction or position.units != units:
            return PositionFailure(
                R.POSITION_MISMATCH,
                f"stops for a {_side(direction)} position of {units} units, but {what}",
            )
        return position
    if position.direction is direction:
        return PositionFailure(
            R.POSITION_MISMATCH,
            f"a {intent.value} must trade against the position, but {what} is on the same side",
        )
    if units > position.units:
        return PositionFailure(
            R.EXCEEDS_POSITION, f"{intent.value} of {units} units exceeds {what}"
        )
    if intent is TradeIntent.CLOSE and units != position.units:
        return PositionFailure(
            R.POSITION_MISMATCH,
            f"close of {units} units, but {what}: closing part of it is a reduce",
        )
    return position


@dataclass(frozen=True, slots=True)
class Levels:
    """Stop-loss and take-profit of one decision: prices, or distances in pips."""

    stop_loss: float | None = None
    stop_loss_pips: float | None = None
    take_profit: float | None = None
    take_profit_pips: float | None = None

    @property
    def as_prices(self) -> bool:
        """Whether no level depends on the fill (then they can travel with the order)."""
        return self.stop_loss_pips is None and self.take_profit_pips is None

    def prices(
        self, direction: Direction, entry: float, spec: SymbolSpec
    ) -> tuple[float | None, float | None]:
        """(stop-loss, take-profit) as prices for a position on `direction` entered at
        `entry`, at the symbol's digits: a stop below a long's entry, a target above."""
        sign = int(direction)
        sl, tp = self.stop_loss, self.take_profit
        if self.stop_loss_pips is not None:
            sl = round(entry - sign * self.stop_loss_pips * spec.pip, spec.digits)
        if self.take_profit_pips is not None:
            tp = round(entry + sign * self.take_profit_pips * spec.pip, spec.digits)
        return sl, tp


NO_LEVELS = Levels()


def stops_problem(
    levels: Levels, direction: Direction, reference: float, spec: SymbolSpec
) -> str | None:
    """Why the broker would refuse these stops for a position on `direction` judged at
    `reference` (MT5 10016 INVALID_STOPS), if it would: a stop-loss must lie below a long's
    price and a take-profit above (the reverse for a short), each at least the symbol's
    stops level away. Distances in pips are checked as distances."""
    minimum = spec.stops_level_points * spec.point
    sign = int(direction)
    for name, price, pips, below in (
        ("stop_loss", levels.stop_loss, levels.stop_loss_pips, True),
        ("take_profit", levels.take_profit, levels.take_profit_pips, False),
    ):
        if pips is not None:
            distance = pips * spec.pip
        elif price is not None:
            distance = (reference - price) * sign * (1 if below else -1)
        else:
            continue
        if distance <= 0:
            side = "below" if (below == (sign > 0)) else "above"
            return f"{name} {price} is not {side} the {_side(direction)} price {reference}"
        if distance < minimum - spec.point / 2:
            return (
                f"{name} is {distance / spec.point:.0f} points from {reference}; the "
                f"broker's stops level is {spec.stops_level_points} points"
            )
    return None
