"""The venue's positions: netting one per symbol, hedging one per opening order.

A position is known by its identifier, the ticket of the order that opened it (MQL5
reference, Position Properties: POSITION_IDENTIFIER "is assigned to every newly opened
position and does not change during its entire lifetime"; a netting reversal keeps it).
It carries the stop-loss and take-profit the server watches on the quote path.

The account (`sim.account`) keeps the money side — exposure, margin, realised P&L — in
O(1) per symbol; this book keeps what an order or a stop change names: identifiers,
units, open prices and levels.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.core.instruments import SymbolSpec
from engine.core.ports import Position
from engine.schemas import Direction


@dataclass(slots=True)
class VenuePosition:
    identifier: int
    symbol: str
    direction: Direction
    units: int  # > 0
    open_price: float  # the average of the fills that opened or added to it
    opened_at: float
    stop_loss: float | None
    take_profit: float | None
    client_order_id: str  # the tag of the order that opened it
    levels_at: float  # when its levels were last set: no trigger before then

    @property
    def protected(self) -> bool:
        return self.stop_loss is not None or self.take_profit is not None

    def public(self) -> Position:
        return Position(
            position_id=str(self.identifier),
            symbol=self.symbol,
            direction=self.direction,
            units=self.units,
            open_price=self.open_price,
            opened_at=self.opened_at,
            stop_loss=self.stop_loss,
            take_profit=self.take_profit,
            client_order_id=self.client_order_id,
        )


@dataclass(frozen=True, slots=True)
class Booked:
    """What one fill did to the book."""

    position: VenuePosition  # the position it opened, added to or closed (in part)
    closed_units: int  # units of an existing position it closed
    closes_at: float | None  # hedging: the closed position's open price (for the account)
    holds: bool  # the fill's side now holds the position (opened, added, or reversed)


class PositionBook:
    def __init__(self, hedging: bool) -> None:
        self.hedging = hedging
        # By identifier, in opening order (a closed position leaves; a new one goes last).
        self._open: dict[int, VenuePosition] = {}
        self._by_symbol: dict[str, int] = {}  # netting: the symbol's position
        self.protected: dict[int, VenuePosition] = {}  # those with a level: watched

    def __len__(self) -> int:
        return len(self._open)

    def get(self, identifier: int) -> VenuePosition | None:
        return self._open.get(identifier)

    def of_symbol(self, symbol: str) -> VenuePosition | None:
        """Netting: the symbol's one position."""
        identifier = self._by_symbol.get(symbol)
        return self._open[identifier] if identifier is not None else None

    def all(self, symbol: str | None = None) -> list[VenuePosition]:
        return [p for p in self._open.values() if symbol is None or p.symbol == symbol]

    def set_levels(
        self, position: VenuePosition, stop_loss: float | None, take_profit: float | None, t: float
    ) -> None:
        position.stop_loss, position.take_profit, position.levels_at = stop_loss, take_profit, t
        if position.protected:
            self.protected[position.identifier] = position
        else:
            self.protected.pop(position.identifier, None)

    def book(
        self,
        ticket: int,
        client_order_id: str,
        symbol: str,
        direction: Direction,
        units: int,
        price: float,
        t: float,
        closes: int,
    ) -> Booked:
        """One fill of order `ticket`; `closes` is the identifier of the position it closes
        (0: none). A hedging fill that closes nothing opens (or, for a later fill of the same
        order, adds to) the position the order opened."""
        if self.hedging:
            key = closes or ticket
            position = self._open.get(key)
        else:
            position = self.of_symbol(symbol)
        if position is None:
            assert not closes, "the venue closes only open positions"
            position = VenuePosition(
                ticket, symbol, direction, units, price, t, None, None, client_order_id, t
            )
            self._open[ticket] = position
            if not self.hedging:
                self._by_symbol[symbol] = ticket
            return Booked(position, 0, None, True)
        if position.direction is direction:
            total = position.units + units
            position.open_price = (position.open_price * position.units + price * units) / total
            position.units = total
            return Booked(position, 0, None, True)
        closes_at = position.open_price if self.hedging else None
        closed = min(units, position.units)
        left = units - closed
        position.units -= closed
        if left:  # netting: through zero, the position reverses under its identifier
            position.direction, position.units = direction, left
            position.open_price, position.opened_at = price, t
            self.set_levels(position, None, None, t)  # the old levels are on the wrong side
        elif position.units == 0:
            self._remove(position)
        return Booked(position, closed, closes_at, bool(left))

    def _remove(self, position: VenuePosition) -> None:
        del self._open[position.identifier]
        self.protected.pop(position.identifier, None)
        if self._by_symbol.get(position.symbol) == position.identifier:
            del self._by_symbol[position.symbol]


def stops_problem(
    direction: Direction,
    stop_loss: float | None,
    take_profit: float | None,
    reference: float,
    spec: SymbolSpec,
) -> str | None:
    """Why a trade server refuses these levels for a position on `direction` judged at
    `reference` (10016 INVALID_STOPS), if it does. MQL4 book, "Requirements and
    Limitations in Making Trades" (book.mql4.com/appendix/limits): a buy's TP − Bid and
    Bid − SL, a sell's SL − Ask and Ask − TP, must each be at least the stops level; a
    level on the wrong side of the price is invalid whatever the stops level."""
    minimum = spec.stops_level_points * spec.point
    sign = int(direction)
    for name, level, below in (("stop_loss", stop_loss, True), ("take_profit", take_profit, False)):
        if level is None:
            continue
        distance = (reference - level) * sign * (1 if below else -1)
        if distance <= spec.point / 2:
            return f"{name} {level} is on the wrong side of {reference}"
        if distance < minimum - spec.point / 2:
            return (
                f"{name} {level} is {distance / spec.point:.0f} points from {reference}; "
                f"the stops level is {spec.stops_level_points}"
            )
    return None


def frozen_level(position: VenuePosition, bid: float, ask: float, spec: SymbolSpec) -> str | None:
    """Which of the position's current levels lies within the freeze level of the market,
    if any (10029 FROZEN). MQL4 book, "Requirements and Limitations in Making Trades"
    (book.mql4.com/appendix/limits; the same table holds for MT5's SYMBOL_TRADE_*): a
    position's stops cannot be modified when the distance from the price at which it would
    close (Bid for a buy, Ask for a sell) to the level is within SYMBOL_TRADE_FREEZE_LEVEL;
    a freeze level of zero freezes nothing."""
    if spec.freeze_level_points == 0:
        return None
    market = bid if position.direction is Direction.BUY else ask
    freeze = spec.freeze_level_points * spec.point
    for name, level in (("stop_loss", position.stop_loss), ("take_profit", position.take_profit)):
        if level is not None and abs(market - level) <= freeze + spec.point / 2:
            return f"{name} {level} is within {spec.freeze_level_points} points of {market}"
    return None
