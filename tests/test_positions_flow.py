"""Positions and orders through the 9-stage flow: reduce, close, stops, limit orders, the
remainder of a partial fill — on the simulator's broker and on MT5Broker over the emulated
terminal, each checked against the venue's own ledger and positions."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.core.config import EngineConfig
from engine.core.events import (
    PositionExited,
    ProtectionSet,
    RemainderRequested,
    SubmissionAttempted,
)
from engine.core.ids import execution_id_of_tag
from engine.core.ports import ExitReason, Position
from engine.core.positions import PositionFailure, resolve_position
from engine.schemas import (
    Direction,
    ExecutionRejectionReason,
    ExecutionStatus,
    TradeIntent,
    utc,
)
from sim.account import AccountConfig, MarginMode
from sim.liquidity import DepthLadder
from sim.market import MarketConfig, NewsEvent, SymbolConfig
from sim.quotes_csv import TickQuotesConfig
from sim.replay import ReplayMarket
from sim.venue import VenueConfig
from sim.world import DEFAULT_START, SimulatedWorld
from tests.builders import decision, run_one

R = ExecutionRejectionReason
S = ExecutionStatus
T0 = DEFAULT_START
STILL = MarketConfig(symbols=(SymbolConfig(symbol="EURUSD", start_mid=1.085, volatility_pips=0.0),))
BROKERS = ("sim", "mt5-emulated")


@pytest.fixture(params=BROKERS)
def broker_kind(request: pytest.FixtureRequest) -> str:
    return request.param


def world_of(
    broker_kind: str,
    hedging: bool = False,
    market: MarketConfig | ReplayMarket = STILL,
    venue: VenueConfig | None = None,
    config: EngineConfig | None = None,
) -> SimulatedWorld:
    mode = MarginMode.HEDGING if hedging else MarginMode.NETTING
    return SimulatedWorld.build(
        seed=5,
        market=market,
        account=AccountConfig(margin_mode=mode),
        venue=venue,
        config=config,
        broker_kind=broker_kind,  # type: ignore[arg-type]
    )


def open_positions(world: SimulatedWorld) -> list[Position]:
    return list(world.venue.positions(world.env.now))


def step(world: SimulatedWorld, key: str, **trade: Any) -> Any:
    """One decision, run to its end."""
    return run_one(world, decision(decision_id=key, **trade))


# -- close and reduce -----------------------------------------------------------------------


def test_a_close_on_a_netting_account_sends_the_opposite_order_and_flattens(broker_kind):
    world = world_of(broker_kind)
    step(world, "open", direction=1, units=200_000)
    closed = step(world, "close", direction=-1, units=200_000, intent="close")
    assert closed.status is S.FILLED and closed.executed_units == 200_000
    assert open_positions(world) == []


def test_a_close_by_ticket_on_a_hedging_account_closes_that_position_only(broker_kind):
    world = world_of(broker_kind, hedging=True)
    step(world, "first", direction=1, units=100_000)
    step(world, "second", direction=1, units=100_000)
    first, second = open_positions(world)
    closed = step(
        world,
        "close",
        direction=-1,
        units=100_000,
        intent="close",
        position_id=second.position_id,
    )
    assert closed.status is S.FILLED
    assert [p.position_id for p in open_positions(world)] == [first.position_id]


def test_without_a_ticket_a_hedging_close_takes_the_oldest_position_that_fits(broker_kind):
    world = world_of(broker_kind, hedging=True)
    step(world, "big", direction=1, units=300_000)
    step(world, "small", direction=1, units=100_000)
    big, _small = open_positions(world)
    step(world, "close", direction=-1, units=100_000, intent="close")
    assert [p.position_id for p in open_positions(world)] == [big.position_id]


def test_a_reduce_above_the_position_is_refused_before_anything_is_sent(broker_kind):
    world = world_of(broker_kind)
    step(world, "open", direction=1, units=100_000)
    orders_before = len(world.venue.orders)
    refused = step(world, "reduce", direction=-1, units=200_000, intent="reduce")
    assert refused.status is S.REJECTED and refused.outcome_reason is R.EXCEEDS_POSITION
    assert len(world.venue.orders) == orders_before
    [position] = open_positions(world)
    assert position.units == 100_000 and position.direction is Direction.BUY


def test_a_reduce_leaves_the_rest_of_a_netting_position_on_the_same_side(broker_kind):
    world = world_of(broker_kind)
    step(world, "open", direction=-1, units=300_000)
    reduced = step(world, "reduce", direction=1, units=100_000, intent="reduce")
    assert reduced.status is S.FILLED
    [position] = open_positions(world)
    assert position.direction is Direction.SELL and position.units == 200_000


@pytest.mark.parametrize(
    ("units", "direction", "reason"),
    [(50_000, -1, R.POSITION_MISMATCH), (100_000, 1, R.POSITION_MISMATCH)],
)
def test_a_close_that_does_not_describe_the_position_is_refused(units, direction, reason):
    world = world_of("sim")
    step(world, "open", direction=1, units=100_000)
    refused = step(world, "close", direction=direction, units=units, intent="close")
    assert refused.status is S.REJECTED and refused.outcome_reason is reason


def test_a_close_with_no_position_is_refused_as_no_position(broker_kind):
    world = world_of(broker_kind)
    refused = step(world, "close", direction=-1, units=100_000, intent="close")
    assert refused.status is S.REJECTED and refused.outcome_reason is R.NO_POSITION


# -- protection -----------------------------------------------------------------------------


def test_stops_given_as_prices_travel_with_the_order(broker_kind):
    world = world_of(broker_kind)
    done = step(world, "open", direction=1, units=100_000, stop_loss=1.0800, take_profit=1.0900)
    assert done.status is S.FILLED
    [position] = open_positions(world)
    assert (position.stop_loss, position.take_profit) == (1.08, 1.09)
    [protection] = [
        e for e in world.engine.database.events(done.execution_id) if isinstance(e, ProtectionSet)
    ]
    assert protection.attached and protection.gap_seconds == 0.0


def test_stops_in_pips_are_set_from_the_fill_right_after_it_and_the_gap_is_recorded(
    broker_kind,
):
    world = world_of(broker_kind)
    done = step(world, "open", direction=-1, units=100_000, stop_loss_pips=20, take_profit_pips=40)
    assert done.status is S.FILLED
    fill = done.average_fill_price
    [position] = open_positions(world)
    assert position.stop_loss == pytest.approx(round(fill + 0.0020, 5))
    assert position.take_profit == pytest.approx(round(fill - 0.0040, 5))
    log = done.to_log()
    assert [p.position_id for p in log.protection] == [position.position_id]
    assert log.protection_gap_seconds is not None and log.protection_gap_seconds > 0.0
    assert log.unprotected_positions == ()


def test_stops_nearer_than_the_stops_level_are_refused_before_sending(broker_kind):
    market = MarketConfig(
        symbols=(
            SymbolConfig(
                symbol="EURUSD", start_mid=1.085, volatility_pips=0.0, stops_level_points=50
            ),
        )
    )
    world = world_of(broker_kind, market=market)
    refused = step(world, "open", direction=1, units=100_000, stop_loss_pips=3)
    assert refused.status is S.REJECTED and refused.outcome_reason is R.INVALID_STOPS
    assert len(world.venue.orders) == 0


def test_a_stop_on_the_wrong_side_is_refused_before_sending():
    world = world_of("sim")
    refused = step(world, "open", direction=1, units=100_000, stop_loss=1.0900)
    assert refused.status is S.REJECTED and refused.outcome_reason is R.INVALID_STOPS


def test_modifying_stops_is_a_decision_of_its_own_that_ends_modified(broker_kind):
    world = world_of(broker_kind)
    step(world, "open", direction=1, units=100_000, stop_loss=1.0800)
    modified = step(
        world, "modify", direction=1, units=100_000, intent="modify_stops", take_profit=1.0950
    )
    assert modified.status is S.MODIFIED
    [position] = open_positions(world)
    assert (position.stop_loss, position.take_profit) == (1.08, 1.095)  # the stop kept


def test_a_stop_triggered_by_a_gap_is_recorded_as_an_exit_beyond_its_level(broker_kind):
    news = NewsEvent(at=utc(T0 + 30), jump_pips=60.0, window_seconds=10.0)
    market = MarketConfig(symbols=STILL.symbols, news=(news,))
    world = world_of(broker_kind, market=market)
    done = step(world, "open", direction=1, units=100_000, stop_loss_pips=10, take_profit_pips=10)
    world.env.run(until=T0 + 60)
    assert world.engine.record_exits(since=T0) == 1
    [exit_event] = [
        e for e in world.engine.database.events(done.execution_id) if isinstance(e, PositionExited)
    ]
    assert exit_event.exit_reason in (ExitReason.STOP_LOSS, ExitReason.TAKE_PROFIT)
    assert exit_event.level is not None
    if exit_event.exit_reason is ExitReason.STOP_LOSS:  # a long's stop fills at or below it
        assert exit_event.price < exit_event.level
    assert open_positions(world) == []
    assert world.engine.record_exits(since=T0) == 0  # an exit is recorded once


# -- limit orders ---------------------------------------------------------------------------


def test_a_marketable_limit_order_is_refused_as_an_invalid_price(broker_kind):
    world = world_of(broker_kind)
    refused = step(
        world, "limit", direction=1, units=100_000, order_type="limit", limit_price=1.0860
    )
    assert refused.status is S.REJECTED and refused.outcome_reason is R.INVALID_PRICE


def test_a_limit_order_that_the_market_never_reaches_expires_at_its_good_till_time(broker_kind):
    world = world_of(broker_kind)
    expiry = utc(T0) + timedelta(seconds=30)
    expired = step(
        world,
        "limit",
        direction=1,
        units=100_000,
        order_type="limit",
        limit_price=1.0800,
        expires_at=expiry.isoformat(),
    )
    assert expired.status is S.EXPIRED and expired.executed_units == 0
    assert expired.completed_at is not None and expired.completed_at >= T0 + 30
    assert open_positions(world) == []


def test_a_limit_order_fills_at_its_limit_or_better_when_the_market_comes_to_it(broker_kind):
    news = NewsEvent(at=utc(T0 + 5), jump_pips=40.0, window_seconds=5.0)
    market = MarketConfig(symbols=STILL.symbols, news=(news,))
    world = world_of(broker_kind, market=market)
    buy = step(
        world,
        "buy",
        direction=1,
        units=100_000,
        order_type="limit",
        limit_price=1.0845,
        expires_at=(utc(T0) + timedelta(seconds=60)).isoformat(),
    )
    sell = step(
        world,
        "sell",
        direction=-1,
        units=100_000,
        order_type="limit",
        limit_price=1.0855,
        expires_at=(utc(T0) + timedelta(seconds=60)).isoformat(),
    )
    # The jump goes one way: one of the two limits is reached, and fills no worse.
    filled = [e for e in (buy, sell) if e.executed_units]
    assert filled, "the news jump reached neither limit"
    for execution in filled:
        limit = execution.request.limit_price
        price = execution.average_fill_price
        assert price <= limit if execution.request.direction is Direction.BUY else price >= limit


def ticks(folder: Path, rows: list[tuple[float, str, str]]) -> ReplayMarket:
    """A market that replays exactly these EURUSD quotes (time, bid, ask)."""
    lines = ["timestamp,bid,ask"] + [f"{utc(t).isoformat()},{bid},{ask}" for t, bid, ask in rows]
    path = folder / "ticks.csv"
    path.write_text("\n".join(lines) + "\n")
    source = TickQuotesConfig(symbol="EURUSD", digits=5, path=path, bad_quotes="refuse")
    return ReplayMarket([source])


def test_a_limit_order_partially_filled_keeps_its_fills_and_expires_with_the_rest(
    broker_kind, tmp_path
):
    market = ticks(
        tmp_path,
        [
            (T0 - 1, "1.08500", "1.08510"),
            (T0 + 5, "1.08430", "1.08440"),  # through the limit: the top of the book fills
            (T0 + 6, "1.08500", "1.08510"),  # and the market goes away again
            (T0 + 120, "1.08500", "1.08510"),
        ],
    )
    venue = VenueConfig(depth=DepthLadder(top_units=100_000, levels=1))
    world = world_of(broker_kind, market=market, venue=venue)
    done = step(
        world,
        "limit",
        direction=1,
        units=300_000,
        order_type="limit",
        limit_price=1.0845,
        expires_at=(utc(T0) + timedelta(seconds=30)).isoformat(),
    )
    assert done.status is S.EXPIRED and done.executed_units == 100_000
    assert done.average_fill_price == pytest.approx(1.0844)  # the ask: better than the limit
    [position] = open_positions(world)
    assert position.units == 100_000


def test_a_stop_jumped_over_by_the_market_fills_at_the_first_quote_past_it(broker_kind, tmp_path):
    market = ticks(
        tmp_path,
        [
            (T0 - 1, "1.08500", "1.08510"),
            (T0 + 10, "1.08480", "1.08490"),
            (T0 + 20, "1.08300", "1.08310"),  # a gap through the stop at 1.08400
            (T0 + 30, "1.08600", "1.08610"),
        ],
    )
    world = world_of(broker_kind, market=market)
    done = step(world, "open", direction=1, units=100_000, stop_loss=1.0840)
    world.env.run(until=T0 + 40)
    assert world.engine.record_exits(since=T0) == 1
    [exited] = [
        e for e in world.engine.database.events(done.execution_id) if isinstance(e, PositionExited)
    ]
    assert exited.exit_reason is ExitReason.STOP_LOSS
    assert (exited.level, exited.price, exited.units) == (1.084, 1.083, 100_000)
    assert open_positions(world) == []


# -- the remainder of a partial fill ----------------------------------------------------------


def test_the_complete_policy_sends_the_remainder_as_child_orders_never_above_intended(
    broker_kind,
):
    venue = VenueConfig(depth=DepthLadder(top_units=100_000, levels=1))
    world = world_of(broker_kind, venue=venue)
    done = step(world, "big", direction=1, units=250_000, partial_fills="complete")
    assert done.status is S.FILLED and done.executed_units == 250_000
    children = [
        e
        for e in world.engine.database.events(done.execution_id)
        if isinstance(e, RemainderRequested)
    ]
    assert [c.units for c in children] == [150_000, 50_000]
    tags = {o.client_order_id for o in world.venue.orders.values()}
    assert tags == {done.request.client_order_id, *(c.client_order_id for c in children)}
    assert {execution_id_of_tag(tag) for tag in tags} == {done.execution_id}
    units = sum(f.units for o in world.venue.orders.values() for f in o.fills)
    assert units == 250_000


def test_the_accept_policy_leaves_a_partial_fill_as_it_is(broker_kind):
    venue = VenueConfig(depth=DepthLadder(top_units=100_000, levels=1))
    world = world_of(broker_kind, venue=venue)
    done = step(world, "big", direction=1, units=250_000)
    assert done.status is S.PARTIALLY_FILLED and done.executed_units == 100_000
    assert len(world.venue.orders) == 1


def test_child_orders_stop_at_the_configured_number(broker_kind):
    venue = VenueConfig(depth=DepthLadder(top_units=100_000, levels=1))
    config = EngineConfig(max_remainder_orders=1)
    world = world_of(broker_kind, venue=venue, config=config)
    done = step(world, "big", direction=1, units=350_000, partial_fills="complete")
    assert done.status is S.PARTIALLY_FILLED and done.executed_units == 200_000
    attempts = [
        e
        for e in world.engine.database.events(done.execution_id)
        if isinstance(e, SubmissionAttempted)
    ]
    assert len(attempts) == 2


# -- today's decisions mean what they meant --------------------------------------------------


def test_a_decision_without_the_new_fields_is_an_opening_market_order():
    world = world_of("sim")
    done = step(world, "plain", direction=1, units=100_000)
    request = done.request
    assert request.intent is TradeIntent.OPEN and request.order_type.value == "market"
    assert not request.protected and request.expires_at is None
    [order] = world.venue.orders.values()
    assert order.position_id == 0 and order.stop_loss is None


# -- choosing the position: a property --------------------------------------------------------

positions_strategy = st.lists(
    st.builds(
        lambda i, side, lots: Position(
            str(i + 1), "EURUSD", side, lots * 1000, 1.1, T0 + i, None, None, f"AX{i:020d}"
        ),
        st.integers(0, 50),
        st.sampled_from(list(Direction)),
        st.integers(1, 300),
    ),
    max_size=6,
    unique_by=lambda p: p.position_id,
)


@given(
    positions_strategy,
    st.sampled_from([TradeIntent.REDUCE, TradeIntent.CLOSE]),
    st.sampled_from(list(Direction)),
    st.integers(1, 300).map(lambda lots: lots * 1000),
    st.booleans(),
)
def test_a_reduce_or_close_never_gets_a_position_it_would_flip_or_overdraw(
    positions, intent, direction, units, hedging
):
    chosen = resolve_position(intent, "EURUSD", direction, units, positions, hedging, None)
    if isinstance(chosen, PositionFailure):
        return
    assert chosen.direction is not direction  # the order trades against it
    assert units <= chosen.units
    if intent is TradeIntent.CLOSE:
        assert units == chosen.units
