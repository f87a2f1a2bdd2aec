"""The end of a run: what the broker still holds, closed on upstream's behalf when the
scenario asks (`flatten_at_end`), and how every position the run opened was closed.

The positions are read from the venue itself, the broker's own book, not from what the
engine believes; the closes go through the engine as any decision does, so they leave the
same evidence (an execution, its broker order, its exit on the opening execution).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from engine.core.ids import execution_id_of_tag
from engine.core.ports import Position
from engine.schemas import MarketSnapshot
from scenarios.orderflow import Arrival, close_decision
from sim.world import SimulatedWorld


def open_positions(world: SimulatedWorld) -> tuple[Position, ...]:
    """The broker's open positions now, oldest first, those our orders opened only."""
    positions = world.venue.positions(world.env.now)
    return tuple(p for p in positions if execution_id_of_tag(p.client_order_id) is not None)


def flatten(world: SimulatedWorld, run_tag: str) -> list[Any]:
    """A close decision for every position our orders opened, for exactly its units; the
    engine's handles to them. Sent at once, as a desk closing its book at the bell would."""
    handles = []
    for position in open_positions(world):
        rpm = close_decision(
            position.position_id, position.symbol, position.direction, position.units, run_tag
        )
        handles.append(world.engine.submit(rpm))
    return handles


def priced(world: SimulatedWorld, arrival: Arrival) -> Any:
    """The arrival's decision as sent now: a limit order priced off the touch."""
    if arrival.limit_distance_pips is None:
        return arrival.rpm
    trade = arrival.rpm.decision.approved_trade
    assert trade is not None
    spec = world.venue.spec(trade.symbol)
    quote: MarketSnapshot | None = world.market.quote(trade.symbol, world.env.now)
    if spec is None:  # a symbol the broker does not carry: sent as drawn, and refused
        return arrival.rpm
    return arrival.priced(quote, spec.pip, spec.digits)


def feed(world: SimulatedWorld, arrivals: Any, finished: list[int]) -> Generator[Any, Any, None]:
    """Play the flow: each decision submitted at its arrival, counted when it finishes."""

    def one_more(_: Any) -> None:
        finished[0] += 1

    for arrival in arrivals:
        if arrival.delay:
            yield world.env.timeout(arrival.delay)
        world.engine.submit(priced(world, arrival)).callbacks.append(one_more)
