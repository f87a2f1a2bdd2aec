"""The trade server's checks of an order against the account: may this symbol be traded
this way, and which position, if any, does the order close. Kept apart from the venue's
matching (`sim.venue`), which calls them before it fills."""

from __future__ import annotations

from engine.core.instruments import SymbolSpec, TradeMode
from engine.core.ports import OrderRequest
from engine.schemas import Direction, MarketSnapshot
from sim import rejections as codes
from sim.account import Account
from sim.positions import PositionBook, VenuePosition, frozen_level, stops_problem
from sim.rejections import refuse as _refuse


def check_tradable(spec: SymbolSpec, order: OrderRequest, account: Account) -> None:
    mode, buy = spec.trade_mode, order.direction is Direction.BUY
    if mode is TradeMode.DISABLED:
        raise _refuse(codes.TRADE_DISABLED, f"{spec.symbol} trading disabled")
    if mode is TradeMode.LONG_ONLY and not buy:
        raise _refuse(codes.LONG_ONLY, spec.symbol)
    if mode is TradeMode.SHORT_ONLY and buy:
        raise _refuse(codes.SHORT_ONLY, spec.symbol)
    if mode is TradeMode.CLOSE_ONLY:
        held = account.net_units(order.symbol)
        reduces = held != 0 and (held > 0) != buy and order.units <= abs(held)
        if not reduces:
            raise _refuse(codes.CLOSE_ONLY, spec.symbol)


def check_close(order: OrderRequest, book: PositionBook, closing: dict[int, int]) -> int:
    """The identifier of the position the order closes (0: none), if it may, as MT5
    answers: 10036 for a position that is not open, 10039 while another order is closing
    it, 10038 for more volume than it holds (MQL5 reference, trade server return codes).
    `closing`: the working orders that close a position, ticket -> its identifier."""
    if order.position_id is None and not order.reduce_only:
        return 0
    if order.position_id is not None:
        named = int(order.position_id) if order.position_id.isdigit() else 0
        position = book.get(named)
        if position is None or position.symbol != order.symbol:
            raise _refuse(codes.POSITION_CLOSED, f"no position {order.position_id}")
    elif book.hedging:
        # A hedging account holds many positions of a symbol: a close must name one.
        raise _refuse(codes.INVALID, "reduce_only on a hedging account names no position")
    else:
        position = book.of_symbol(order.symbol)
        if position is None:
            raise _refuse(codes.POSITION_CLOSED, f"no {order.symbol} position")
    if position.identifier in closing.values():
        raise _refuse(codes.CLOSE_ORDER_EXIST, f"position {position.identifier}")
    if position.direction is order.direction:
        # Unconfirmed which code a server gives: the stricter reading, a bad request.
        raise _refuse(codes.INVALID, "a close must trade against the position")
    if order.units > position.units:
        raise _refuse(codes.INVALID_CLOSE_VOLUME, f"{order.units} units, {position.units} held")
    return position.identifier


def check_protection(
    position: VenuePosition,
    stop_loss: float | None,
    take_profit: float | None,
    quote: MarketSnapshot,
    spec: SymbolSpec,
) -> None:
    """Whether a position's stops may become these, as TRADE_ACTION_SLTP is answered: 10025
    NO_CHANGES for the levels it has, 10029 FROZEN when a current level is within the freeze
    level of the market, 10016 for a new level on the wrong side or nearer than the stops
    level (the MQL4 book's "Requirements and Limitations in Making Trades")."""
    if (position.stop_loss, position.take_profit) == (stop_loss, take_profit):
        raise _refuse(codes.NO_CHANGES, f"position {position.identifier} has these levels")
    frozen = frozen_level(position, quote.bid, quote.ask, spec)
    if frozen is not None:
        raise _refuse(codes.FROZEN, frozen)
    reference = quote.bid if position.direction is Direction.BUY else quote.ask
    problem = stops_problem(position.direction, stop_loss, take_profit, reference, spec)
    if problem is not None:
        raise _refuse(codes.INVALID_STOPS, problem)
