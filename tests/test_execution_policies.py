"""Broker execution policies (`sim.policies`): the feed delay, last look, asymmetric slippage
and requotes, commission and swap, and the two library profiles measured on one order
flow."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from engine.core.ports import BrokerRejected, OrderRequest
from engine.schemas import Direction
from scenarios.runner import run_scenario
from scenarios.spec import ScenarioError, load_scenario
from sim import rejections as codes
from sim.account import AccountConfig, MarginMode, rollover_after
from sim.latency import LatencyConfig
from sim.market import MarketConfig, RegimeConfig, SymbolConfig, SyntheticMarket
from sim.network import NetworkConfig
from sim.policies import PROFILES, BrokerPolicy, ExecutionPolicy, LastLook, SwapRates
from sim.venue import Venue, VenueConfig
from sim.world import DEFAULT_START, SimulatedWorld
from tests.builders import decision

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"

# A lively EURUSD ticking every 50 ms: over ~80 ms of round trip the price moves often
# enough for slippage to show both ways.
LIVELY = MarketConfig(
    symbols=(SymbolConfig(symbol="EURUSD", start_mid=1.085, volatility_pips=0.6),),
    tick_seconds=0.05,
    regimes=RegimeConfig(mean_calm_minutes=30.0, mean_volatile_minutes=10.0),
)
STILL = MarketConfig(
    symbols=(SymbolConfig(symbol="EURUSD", start_mid=1.085, volatility_pips=0.0),),
)


@dataclass
class Measured:
    orders: int
    filled: int
    adverse: int
    improved: int
    zero: int
    rejected: int

    @property
    def adverse_share(self) -> float:
        return self.adverse / self.filled

    @property
    def improved_share(self) -> float:
        return self.improved / self.filled


def measure(policy: ExecutionPolicy, orders: int, seed: int = 7) -> Measured:
    """`orders` market orders, a second apart on average, alternately buy and sell, through
    a venue with `policy` and ~80 ms of round trip: fills against the side the engine saw."""
    world = SimulatedWorld.build(
        seed,
        market=LIVELY,
        network=NetworkConfig(latency=LatencyConfig.constant(40.0)),
        venue=VenueConfig(policy=policy),
    )
    processes = []
    gaps = np.random.default_rng(seed).exponential(1.0, orders)  # a Poisson flow, 1/s

    def flow():  # type: ignore[no-untyped-def]
        for i in range(orders):
            rpm = decision(direction=1 if i % 2 == 0 else -1, decision_id=f"d-{i}")
            processes.append(world.engine.submit(rpm))
            yield world.env.timeout(float(gaps[i]))

    world.env.process(flow())
    world.env.run()
    adverse = improved = zero = filled = 0
    for process in processes:
        execution = process.value
        price = execution.average_fill_price
        if price is None or not execution.executed_units:
            continue
        filled += 1
        direction = int(execution.request.direction)
        side = execution.arrival_ask if direction > 0 else execution.arrival_bid
        slip = round((price - side) * direction / 0.00001)  # points, + adverse
        adverse += slip > 0
        improved += slip < 0
        zero += slip == 0
    return Measured(orders, filled, adverse, improved, zero, orders - filled)


def test_a_retail_dealing_desk_slips_against_the_client_and_a_neutral_ecn_does_not() -> None:
    neutral = measure(PROFILES["neutral_ecn"], 150)
    retail = measure(PROFILES["retail_dealing_desk"], 150)
    assert neutral.filled == neutral.orders
    assert neutral.adverse > 10 and neutral.improved > 10
    # Symmetric: neither side more than twice the other.
    assert neutral.improved / 2 <= neutral.adverse <= 2 * neutral.improved
    assert retail.adverse_share > retail.improved_share
    assert retail.improved == 0  # improvement withheld, cap 0
    assert retail.rejected > 0  # last look turned down the client's lucky moves


def test_the_same_policy_and_seed_give_the_same_ledger() -> None:
    def ledger() -> bytes:
        world = SimulatedWorld.build(
            3, market=LIVELY, venue=VenueConfig(policy=PROFILES["retail_dealing_desk"])
        )
        processes = [
            world.engine.submit(decision(direction=1 - 2 * (i % 2), decision_id=f"d-{i}"))
            for i in range(20)
        ]
        world.env.run()
        assert all(p.value is not None for p in processes)
        return world.venue.ledger_bytes()

    assert ledger() == ledger()


def _venue(policy: ExecutionPolicy, market: MarketConfig = LIVELY, **account: object) -> Venue:
    prices = SyntheticMarket(market, 1, DEFAULT_START)
    return Venue(prices, AccountConfig(**account), VenueConfig(policy=policy), seed=1)  # type: ignore[arg-type]


def _order(
    price: float, direction: Direction = Direction.BUY, units: int = 100_000
) -> OrderRequest:
    return OrderRequest(
        client_order_id="c-1",
        symbol="EURUSD",
        direction=direction,
        units=units,
        lots=units / 100_000,
        price=price,
        deviation_points=None,
    )


def test_the_feed_shows_the_quote_the_server_had_feed_delay_ago() -> None:
    delayed = _venue(ExecutionPolicy(feed_delay_ms=500.0))
    plain = _venue(ExecutionPolicy())
    t = DEFAULT_START + 60.0
    late = delayed.feed_quote("EURUSD", t)
    assert late == plain.quote("EURUSD", t - 0.5)
    assert delayed.quote("EURUSD", t) == plain.quote("EURUSD", t)
    assert late != delayed.quote("EURUSD", t)


def test_a_neutral_venue_has_no_dealer_and_its_feed_is_its_quote() -> None:
    venue = _venue(ExecutionPolicy())
    assert venue.dealer is None and venue.account.costs is None
    t = DEFAULT_START + 10.0
    assert venue.feed_quote("EURUSD", t) == venue.quote("EURUSD", t)


def test_last_look_rejects_with_10006_when_the_price_moved_in_the_clients_favour() -> None:
    venue = _venue(ExecutionPolicy(last_look=LastLook(hold_ms=100.0)), STILL)
    t = DEFAULT_START + 1.0
    ask = venue.quote("EURUSD", t).ask  # type: ignore[union-attr]
    # The client asks to buy a point above the ask: the window ends with the market "below"
    # the request, a move in the client's favour... the other way round: asked below it.
    report = venue.place(_order(ask - 0.00002), t)
    assert venue.held_until(report.order_id) == pytest.approx(t + 0.1)
    assert venue.status(report.order_id, t + 0.05).state.value == "WORKING"
    refusal = venue.last_look_refusal(report.order_id, t + 0.2)
    assert refusal is not None and refusal.code == codes.REJECT
    assert venue.refusals[codes.REJECT] == 1
    # Rejected, the request left no order: the ledger is empty, the id unknown.
    assert venue.ledger_orders() == [] and venue.find("c-1", t + 0.3) is None
    with pytest.raises(BrokerRejected):
        venue.status(report.order_id, t + 0.3)


def test_last_look_fills_at_the_end_of_the_window_when_the_move_is_against_the_client() -> None:
    venue = _venue(ExecutionPolicy(last_look=LastLook(hold_ms=100.0)), STILL)
    t = DEFAULT_START + 1.0
    ask = venue.quote("EURUSD", t).ask  # type: ignore[union-attr]
    report = venue.place(_order(ask + 0.00002), t)
    after = venue.status(report.order_id, t + 1.0)
    assert venue.last_look_refusal(report.order_id, t + 1.0) is None
    assert after.state.value == "DONE"
    assert after.fills[0].time == pytest.approx(t + 0.1) and after.fills[0].price == ask


def test_asymmetric_slippage_withholds_an_improvement_and_passes_on_a_loss() -> None:
    venue = _venue(ExecutionPolicy(slippage="asymmetric"), STILL)
    t = DEFAULT_START + 1.0
    ask = venue.quote("EURUSD", t).ask  # type: ignore[union-attr]
    better = venue.place(_order(ask + 0.00003), t)  # the market is 3 points better
    assert better.fills[0].price == pytest.approx(ask + 0.00003)
    worse = venue.place(_order(ask - 0.00003), t)
    assert worse.fills[0].price == ask


def test_asymmetric_slippage_may_keep_an_improvement_up_to_its_cap() -> None:
    venue = _venue(ExecutionPolicy(slippage="asymmetric", improvement_cap_points=1.0), STILL)
    t = DEFAULT_START + 1.0
    bid = venue.quote("EURUSD", t).bid  # type: ignore[union-attr]
    sold = venue.place(_order(bid - 0.00003, Direction.SELL), t)
    assert sold.fills[0].price == pytest.approx(bid - 0.00002)


def test_asymmetric_requotes_come_only_when_the_price_moved_in_the_clients_favour() -> None:
    policy = ExecutionPolicy(requotes="asymmetric", requote_threshold_points=2.0)
    venue = _venue(policy, STILL)
    t = DEFAULT_START + 1.0
    ask = venue.quote("EURUSD", t).ask  # type: ignore[union-attr]
    with pytest.raises(BrokerRejected) as requote:
        venue.place(_order(ask + 0.00003), t)
    assert requote.value.code == codes.REQUOTE
    filled = venue.place(_order(ask - 0.00003), t)  # 3 points against: filled
    assert filled.fills[0].price == ask


def test_commission_is_paid_per_lot_on_each_side_and_kept_in_the_ledger() -> None:
    venue = _venue(ExecutionPolicy(commission_per_lot=3.5), STILL)
    t = DEFAULT_START + 1.0
    quote = venue.quote("EURUSD", t)
    assert quote is not None
    venue.place(_order(quote.ask, units=200_000), t)
    venue.place(_order(quote.bid, Direction.SELL, units=200_000), t)
    assert [c.amount for c in venue.charges()] == [-7.0, -7.0]
    state = venue.account_state(t)
    spread_cost = 200_000 * (quote.ask - quote.bid)
    assert state.balance == pytest.approx(1_000_000.0 - 14.0 - spread_cost)


def test_swap_is_booked_at_each_new_york_rollover_and_thrice_on_wednesday() -> None:
    policy = ExecutionPolicy(swap=SwapRates(long_points=-10.0, short_points=2.0))
    venue = _venue(policy, STILL)
    monday = DEFAULT_START  # Monday 2024-01-08 07:00 UTC
    ask = venue.quote("EURUSD", monday).ask  # type: ignore[union-attr]
    venue.place(_order(ask), monday)
    friday_night = datetime(2024, 1, 13, 12, 0, tzinfo=UTC).timestamp()
    venue.account_state(friday_night)
    swaps = [c for c in venue.charges() if c.kind == "swap"]
    # Monday to Friday at 22:00 UTC (17:00 New York in winter); Wednesday's counts thrice.
    assert [datetime.fromtimestamp(c.time, UTC).day for c in swaps] == [8, 9, 10, 11, 12]
    assert [round(c.amount, 6) for c in swaps] == [-10.0, -10.0, -30.0, -10.0, -10.0]


def test_a_hedging_account_pays_swap_on_longs_and_shorts_apart() -> None:
    policy = ExecutionPolicy(swap=SwapRates(long_points=-10.0, short_points=2.0))
    venue = _venue(policy, STILL, margin_mode=MarginMode.HEDGING)
    t = DEFAULT_START
    quote = venue.quote("EURUSD", t)
    assert quote is not None
    venue.place(_order(quote.ask), t)
    venue.place(_order(quote.bid, Direction.SELL), t)
    venue.account_state(t + 86_400.0)
    assert sorted(round(c.amount, 6) for c in venue.charges()) == [-10.0, 2.0]


def test_the_rollover_follows_new_york_daylight_saving() -> None:
    summer = datetime(2024, 7, 10, 12, 0, tzinfo=UTC).timestamp()
    assert datetime.fromtimestamp(rollover_after(summer), UTC).hour == 21
    winter = datetime(2024, 1, 10, 12, 0, tzinfo=UTC).timestamp()
    assert datetime.fromtimestamp(rollover_after(winter), UTC).hour == 22


def test_a_profile_is_chosen_by_name_and_overridden_field_by_field() -> None:
    section = BrokerPolicy.model_validate(
        {"profile": "retail_dealing_desk", "feed_delay_ms": 50, "last_look": {"hold_ms": 20}}
    )
    policy = section.policy()
    assert policy.feed_delay_ms == 50.0
    assert policy.last_look.hold_ms == 20.0
    assert (
        policy.last_look.threshold_points
        == PROFILES["retail_dealing_desk"].last_look.threshold_points
    )
    assert policy.slippage == "asymmetric"


def test_an_unknown_profile_or_field_is_refused() -> None:
    with pytest.raises(ValidationError):
        BrokerPolicy.model_validate({"profile": "bucket_shop"})
    with pytest.raises(ValidationError):
        BrokerPolicy.model_validate({"feed_delay": 10})


def test_the_library_profiles_load_from_their_scenario_files() -> None:
    retail = load_scenario(SCENARIOS / "retail_dealing_desk.toml")
    neutral = load_scenario(SCENARIOS / "neutral_ecn.toml")
    assert retail.broker == "sim" and neutral.broker == "sim"
    assert retail.venue_config().policy.last_look.hold_ms > 0
    assert neutral.venue_config().policy.trades_as_market
    assert neutral.venue_config().policy.commission_per_lot > 0


def test_a_bad_broker_table_is_refused_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\n[broker]\nprofile = "retail_dealing_desk"\nfeed_delay_ms = -1\n')
    with pytest.raises(ScenarioError) as error:
        load_scenario(path)
    message = str(error.value)
    assert "\n" not in message and "feed_delay_ms" in message


def test_a_run_writes_what_the_broker_charged_per_execution_per_charge_and_in_total(
    tmp_path: Path,
) -> None:
    # Sixty orders, one a minute from 21:30 UTC on a Tuesday in winter: the 22:00 rollover
    # (17:00 New York) falls inside the run, with the positions the flow opened still held.
    scenario = load_scenario(SCENARIOS / "neutral_ecn.toml").with_overrides(
        {
            "orders.orders": 60,
            "orders.rate_per_second": 1 / 60,
            "start": datetime(2024, 1, 9, 21, 30, tzinfo=UTC),
        }
    )
    summary = run_scenario(scenario, SCENARIOS, out_dir=tmp_path)
    assert summary.ok
    executions = pd.read_parquet(tmp_path / "executions.parquet")
    charges = pd.read_parquet(tmp_path / "charges.parquet")
    written = json.loads((tmp_path / "summary.json").read_text())
    commission = charges[charges.kind == "commission"]
    swap = charges[charges.kind == "swap"]
    assert summary.commission < 0.0 and summary.swap != 0.0
    assert written["commission"] == summary.commission and written["swap"] == summary.swap
    assert commission.amount.sum() == pytest.approx(summary.commission)
    assert swap.amount.sum() == pytest.approx(summary.swap)
    # Every commission belongs to an execution, and the executions' add up to the total.
    assert commission.execution_id.notna().all()
    assert executions.commission.sum() == pytest.approx(summary.commission)
    # 3.5 per lot per side, on the units each execution filled (no stops in this flow).
    filled = executions[executions.executed_units > 0]
    assert np.allclose(filled.commission, -3.5 * filled.executed_units / 100_000)
    assert (executions[executions.executed_units == 0].commission == 0.0).all()
    assert swap.execution_id.isna().all() and (swap.ticket == 0).all()
