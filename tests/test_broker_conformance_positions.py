"""The broker port's positions, stops, exits and limit orders: one contract, two brokers.

The same cases as `test_broker_conformance`, at the port: each builds the same venue behind
the simulator's broker or MT5Broker over the MT5 emulator and asserts what the engine
relies on when it closes, protects, watches and rests orders.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from engine.core.ports import (
    BrokerOrderState,
    BrokerRejected,
    ExitReason,
    OrderType,
    Position,
)
from engine.schemas import Direction, ExecutionRejectionReason
from sim.account import AccountConfig, MarginMode
from sim.market import MarketConfig, NewsEvent, SymbolConfig
from tests.test_broker_conformance import BROKERS, STILL, T0, TAG, Setup, build, order

R = ExecutionRejectionReason
HEDGING = AccountConfig(margin_mode=MarginMode.HEDGING)


@pytest.fixture(params=BROKERS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


def tag(n: int) -> str:
    """The n-th order's tag. Real tags are hashes, different from their first characters
    on (MT5Broker reads a stored comment back by its first characters)."""
    return TAG[:2] + f"{n:02d}" + TAG[4:]


def held(setup: Setup) -> list[tuple[Direction, int]]:
    return [(p.direction, p.units) for p in setup.broker.positions()]


def only(setup: Setup) -> Position:
    [position] = setup.broker.positions("EURUSD")
    return position


# -- closing ----------------------------------------------------------------------------------


def test_an_order_naming_the_netting_position_closes_it(kind):
    setup = build(kind)
    setup.broker.place_order(order(setup, tag=tag(1)))
    position = only(setup)
    assert (position.units, position.client_order_id) == (100_000, tag(1))

    closing = order(setup, direction=Direction.SELL, tag=tag(2))
    report = setup.broker.place_order(
        replace(closing, position_id=position.position_id, reduce_only=True)
    )

    assert report.filled_units == 100_000
    assert setup.broker.positions() == ()


def test_on_a_hedging_account_an_order_naming_a_ticket_closes_that_position_only(kind):
    setup = build(kind, account=HEDGING)
    setup.broker.place_order(order(setup, tag=tag(1)))
    setup.broker.place_order(order(setup, units=200_000, tag=tag(2)))
    first, second = setup.broker.positions("EURUSD")
    assert (first.client_order_id, second.client_order_id) == (tag(1), tag(2))

    closing = order(setup, direction=Direction.SELL, units=50_000, tag=tag(3))
    setup.broker.place_order(replace(closing, position_id=second.position_id))

    assert held(setup) == [(Direction.BUY, 100_000), (Direction.BUY, 150_000)]


def test_closing_more_than_the_position_holds_is_refused_and_changes_nothing(kind):
    setup = build(kind)
    setup.broker.place_order(order(setup, tag=tag(1)))
    position = only(setup)

    closing = order(setup, direction=Direction.SELL, units=200_000, tag=tag(2))
    with pytest.raises(BrokerRejected) as refused:
        setup.broker.place_order(
            replace(closing, position_id=position.position_id, reduce_only=True)
        )

    assert refused.value.reason is R.EXCEEDS_POSITION
    assert held(setup) == [(Direction.BUY, 100_000)]


def test_closing_a_position_that_is_not_open_is_refused_as_no_position(kind):
    setup = build(kind, account=HEDGING)
    closing = order(setup, direction=Direction.SELL, tag=tag(1))
    with pytest.raises(BrokerRejected) as refused:
        setup.broker.place_order(replace(closing, position_id="987654"))
    assert refused.value.reason is R.NO_POSITION


# -- protection and exits ---------------------------------------------------------------------


def test_stops_set_on_a_position_are_what_its_positions_report(kind):
    setup = build(kind)
    setup.broker.place_order(order(setup, tag=tag(1)))
    position = only(setup)

    protected = setup.broker.set_protection(position.position_id, 1.0800, 1.0900)

    assert (protected.stop_loss, protected.take_profit) == (1.08, 1.09)
    assert (only(setup).stop_loss, only(setup).take_profit) == (1.08, 1.09)


def test_stops_nearer_than_the_stops_level_are_refused_as_invalid_stops(kind):
    symbol = SymbolConfig(
        symbol="EURUSD", start_mid=1.085, volatility_pips=0.0, stops_level_points=100
    )
    setup = build(kind, market=MarketConfig(symbols=(symbol,)))
    setup.broker.place_order(order(setup, tag=tag(1)))
    position = only(setup)

    with pytest.raises(BrokerRejected) as refused:
        setup.broker.set_protection(position.position_id, 1.0845, None)  # 5 pips: too near

    assert refused.value.reason is R.INVALID_STOPS
    assert only(setup).stop_loss is None


def test_stops_travel_with_an_order_and_a_jump_through_one_closes_the_position(kind):
    news = NewsEvent(at=datetime.fromtimestamp(T0 + 30, UTC), jump_pips=80.0, window_seconds=5)
    market = MarketConfig(symbols=STILL.symbols, news=(news,))
    setup = build(kind, market=market)
    entry = order(setup, tag=tag(1))
    setup.broker.place_order(replace(entry, stop_loss=1.0840, take_profit=1.0860))
    assert (only(setup).stop_loss, only(setup).take_profit) == (1.084, 1.086)

    setup.clock.sleep(60.0)

    assert setup.broker.positions() == ()
    [exited] = setup.broker.exits(since=T0)
    assert exited.client_order_id == tag(1) and exited.units == 100_000
    assert exited.reason in (ExitReason.STOP_LOSS, ExitReason.TAKE_PROFIT)
    if exited.reason is ExitReason.STOP_LOSS:  # a long's stop fills at the bid, at or below
        assert exited.level == 1.084 and exited.price <= 1.084
    else:
        assert exited.level == 1.086 and exited.price >= 1.086


# -- limit orders -----------------------------------------------------------------------------


def limit(setup: Setup, price: float, expires_in: float | None = None, n: int = 1):
    return replace(
        order(setup, tag=tag(n)),
        order_type=OrderType.LIMIT,
        limit_price=price,
        price=price,
        expires_at=None if expires_in is None else setup.clock.now() + expires_in,
    )


def test_a_limit_order_away_from_the_market_rests_until_cancelled(kind):
    setup = build(kind)
    report = setup.broker.place_order(limit(setup, 1.0800))
    assert report.state is BrokerOrderState.WORKING and report.fills == ()

    cancelled = setup.broker.cancel_order(report.order_id)

    assert cancelled.state is BrokerOrderState.CANCELLED
    assert setup.broker.positions() == ()


def test_a_limit_order_the_market_never_reaches_expires_at_its_time(kind):
    setup = build(kind)
    report = setup.broker.place_order(limit(setup, 1.0800, expires_in=30.0))

    setup.clock.sleep(31.0)

    assert setup.broker.order_status(report.order_id).state is BrokerOrderState.EXPIRED


def test_a_limit_order_through_the_market_is_refused_as_an_invalid_price(kind):
    setup = build(kind)
    with pytest.raises(BrokerRejected) as refused:
        setup.broker.place_order(limit(setup, 1.0900))
    assert refused.value.reason is R.INVALID_PRICE
    assert setup.venue.orders.get(1) is None
