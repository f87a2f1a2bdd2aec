"""Simulator realism: each model produces what its parameters say (fixed seeds, stated
tolerances), and together they make slippage behave as it does at a retail MT5 broker."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.events import SubmissionUnanswered
from engine.core.ports import FillPolicy, OrderRequest
from engine.schemas import Direction, ExecutionRejectionReason, ExecutionStatus
from scenarios.orderflow import OrderFlowConfig, order_flow
from sim.account import Account, AccountConfig, MarginMode
from sim.bars import BAR_SECONDS
from sim.latency import (
    ConstantLatency,
    EmpiricalLatency,
    LatencyConfig,
    LatencySampler,
    LognormalLatency,
)
from sim.liquidity import DepthLadder
from sim.market import MarketConfig, NewsEvent, RegimeConfig, SymbolConfig, SyntheticMarket
from sim.network import FaultKind, FaultWindow, NetworkConfig
from sim.quotes_csv import BarQuotesConfig
from sim.rejections import RejectionConfig, Rejections
from sim.replay import ReplayMarket
from sim.sessions import FxWeek
from sim.venue import Venue, VenueConfig
from sim.world import DEFAULT_START, SimulatedWorld
from tests.builders import decision, run_one

S = ExecutionStatus
R = ExecutionRejectionReason
MONDAY = DEFAULT_START  # 2024-01-08 07:00 UTC


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


# -- latency ------------------------------------------------------------------------------


def test_each_latency_leg_follows_its_own_model():
    config = LatencyConfig(
        client_to_broker=LognormalLatency(median_ms=10.0, sigma=0.4),
        broker_processing=ConstantLatency(ms=3.0),
        broker_to_client=EmpiricalLatency(samples_ms=(5.0, 10.0, 20.0, 40.0)),
        volatility_spike=0.0,
    )
    sampler = LatencySampler(config, seed=1)
    legs = np.array([sampler.legs() for _ in range(20_000)]) * 1000.0
    c2b, processing, b2c = legs.T
    # lognormal: the median is the parameter, the 90th percentile exp(mu + 1.2816 sigma)
    assert np.median(c2b) == pytest.approx(10.0, rel=0.03)
    assert np.percentile(c2b, 90) == pytest.approx(10.0 * math.exp(1.2816 * 0.4), rel=0.04)
    assert set(processing) == {3.0}
    shares = [np.mean(b2c == v) for v in (5.0, 10.0, 20.0, 40.0)]
    assert shares == pytest.approx([0.25] * 4, abs=0.015)


def test_a_fat_tail_puts_rare_stalls_far_beyond_the_body():
    body = LatencySampler(LatencyConfig(client_to_broker=LognormalLatency(median_ms=10.0)), 2)
    tail = LatencySampler(
        LatencyConfig(
            client_to_broker=LognormalLatency(median_ms=10.0, tail_probability=0.02, tail_shape=1.0)
        ),
        2,
    )
    plain = np.array([body.legs()[0] for _ in range(20_000)])
    fat = np.array([tail.legs()[0] for _ in range(20_000)])
    assert np.median(fat) == pytest.approx(np.median(plain), rel=0.05)
    assert np.percentile(fat, 99.9) > 5 * np.percentile(plain, 99.9)


def test_latency_spikes_with_volatility():
    config = LatencyConfig.constant(10.0, processing_ms=2.0).model_copy(
        update={"volatility_spike": 0.5}
    )
    sampler = LatencySampler(config, 1)
    assert sampler.legs(1.0) == pytest.approx((0.010, 0.002, 0.010))
    assert sampler.legs(3.0) == pytest.approx((0.020, 0.004, 0.020))  # x (1 + 0.5 x 2)


# -- rejections ---------------------------------------------------------------------------


def test_random_rejections_come_at_their_configured_rate_per_code():
    rejections = Rejections(RejectionConfig(random={10004: 0.05, 10021: 0.02, 10006: 0.01}), 7)
    codes = [rejections.refusal(MONDAY + i) for i in range(50_000)]
    rates = {code: codes.count(code) / len(codes) for code in (10004, 10021, 10006)}
    assert rates[10004] == pytest.approx(0.05, abs=0.004)
    assert rates[10021] == pytest.approx(0.02, abs=0.003)
    assert rates[10006] == pytest.approx(0.01, abs=0.002)


def test_the_broker_rate_limit_refuses_requests_beyond_the_limit_in_any_second():
    rejections = Rejections(RejectionConfig(rate_limit_per_second=10), 1)
    burst = [rejections.refusal(MONDAY + i * 0.01) for i in range(15)]
    assert burst[:10] == [None] * 10 and burst[10:] == [10024] * 5
    assert rejections.refusal(MONDAY + 1.5) is None  # the window has moved on


def test_an_unknown_return_code_in_the_config_is_refused_with_the_known_ones_listed():
    with pytest.raises(ValueError, match="unknown MT5 return codes \\[10005\\]"):
        RejectionConfig(random={10005: 0.1})


def test_random_rejections_reach_the_engine_as_final_rejections_with_the_mt5_code():
    world = SimulatedWorld.build(
        seed=3, venue=VenueConfig(rejections=RejectionConfig(random={10004: 0.2, 10021: 0.1}))
    )
    processes = [
        world.engine.submit(decision(decision_id=f"r{i}", direction=(-1) ** i))
        for i in range(2_000)
    ]
    world.env.run()
    executions = [p.value for p in processes]
    requoted = [e for e in executions if e.broker_code in (10004, 10021)]
    assert len(requoted) / len(executions) == pytest.approx(0.3, abs=0.03)
    assert all(e.outcome_reason is R.REQUOTE and e.attempts == 1 for e in requoted)
    assert sum(world.venue.refusals.values()) == len(requoted)


# -- fills and depth ----------------------------------------------------------------------


def test_size_walks_the_depth_ladder_to_a_worse_average_price():
    ladder = DepthLadder(top_units=100_000, levels=3, level_step_pips=0.5, growth=2.0)
    assert ladder.total_units == 700_000
    units, price = ladder.walk(300_000, 1.10000, +1, 0.0001)
    # 100k at the touch, 200k half a pip worse
    assert units == 300_000
    assert price == pytest.approx((100_000 * 1.1 + 200_000 * 1.10005) / 300_000)
    units, price = ladder.walk(1_000_000, 1.10000, -1, 0.0001)
    assert units == 700_000  # the book is exhausted: the rest is not there


def test_ioc_orders_beyond_the_book_fill_partially_at_the_rate_the_sizes_imply():
    ladder = DepthLadder(top_units=100_000, levels=1)
    world = SimulatedWorld.build(seed=9, venue=VenueConfig(depth=ladder))
    flow = list(order_flow(OrderFlowConfig(orders=1_000, symbols=("EURUSD",)), seed=9))
    processes = [world.engine.submit(a.rpm) for a in flow]
    world.env.run()
    expected = sum(a.rpm.decision.approved_trade.position_units > 100_000 for a in flow)
    partial = [p.value for p in processes if p.value.status is S.PARTIALLY_FILLED]
    assert len(partial) == expected > 0
    assert all(e.executed_units == 100_000 for e in partial)


def test_a_fill_or_kill_order_beyond_the_book_is_refused_whole():
    world = SimulatedWorld.build(
        seed=1, venue=VenueConfig(depth=DepthLadder(top_units=50_000, levels=1))
    )
    order = OrderRequest("AXfok", "EURUSD", Direction.BUY, 100_000, 1.0, 1.0, None, FillPolicy.FOK)
    with pytest.raises(Exception, match="FOK needs 100000") as refused:
        world.venue.place(order, MONDAY)
    assert refused.value.code == 10006
    assert world.venue.orders == {}


def test_a_filling_policy_the_symbol_does_not_allow_is_refused_with_10030():
    only_fok = (SymbolConfig(symbol="EURUSD", start_mid=1.1, fill_policies=(FillPolicy.FOK,)),)
    world = SimulatedWorld.build(seed=1, market=MarketConfig(symbols=only_fok))
    execution = run_one(world, decision())  # the engine sends IOC: partial fills accepted
    assert execution.status is S.REJECTED and execution.broker_code == 10030
    assert world.venue.refusals == {10030: 1}


# -- spreads and sessions -----------------------------------------------------------------


def still_market(**extra: object) -> SyntheticMarket:
    symbols = (SymbolConfig(symbol="EURUSD", start_mid=1.1, spread_pips=1.0, volatility_pips=0.0),)
    config = MarketConfig(symbols=symbols, regimes=None, shape=None, **extra)  # flat spreads
    return SyntheticMarket(config, 1, MONDAY)


def spread_at(market: SyntheticMarket, text: str) -> float:
    quote = market.quote("EURUSD", at(text))
    assert quote is not None
    return round((quote.ask - quote.bid) / 0.0001, 6)


def test_spreads_widen_at_the_roll_for_about_an_hour_and_after_the_weekly_open():
    # Defaults fitted to GBP/USD, February 2012 (sim/spreads.py): 1.5x for ten minutes
    # before the roll, 5.3x at it, a spike decaying in minutes onto a 1.8x plateau that
    # lasts the hour.
    market = still_market()
    assert spread_at(market, "2024-01-09T12:00") == 1.0
    assert spread_at(market, "2024-01-09T21:56") == pytest.approx(1.5, abs=0.1)
    assert spread_at(market, "2024-01-09T22:00") == pytest.approx(5.3, abs=0.1)
    assert spread_at(market, "2024-01-09T22:05") == pytest.approx(
        1 + 4.3 / math.e ** (5 / 6), abs=0.1
    )
    assert spread_at(market, "2024-01-09T22:50") == pytest.approx(1.8, abs=0.1)
    assert spread_at(market, "2024-01-09T23:01") == 1.0
    sunday = still_market()
    assert spread_at(sunday, "2024-01-14T22:05") == pytest.approx(2.87, abs=0.15)  # the roll
    assert spread_at(sunday, "2024-01-14T22:45") == pytest.approx(1.8, abs=0.1)
    assert spread_at(sunday, "2024-01-15T00:00") == 1.0


def test_the_roll_follows_new_york_daylight_saving():
    market = SyntheticMarket(still_market().config, 1, at("2024-07-08T07:00"))
    assert spread_at(market, "2024-07-09T21:00") == pytest.approx(5.3, abs=0.1)  # 17:00 EDT
    assert spread_at(market, "2024-07-09T22:30") == 1.0
    assert not FxWeek().is_open(at("2024-07-12T21:00")) and FxWeek().is_open(at("2024-07-12T20:59"))


def test_spreads_widen_around_news():
    release = datetime(2024, 1, 9, 13, 30, tzinfo=UTC)
    market = still_market(news=(NewsEvent(at=release, jump_pips=0.0, window_seconds=300),))
    assert spread_at(market, "2024-01-09T13:29") == 1.0
    assert spread_at(market, "2024-01-09T13:31") == 3.0
    assert spread_at(market, "2024-01-09T13:36") == 1.0


def test_news_moves_the_price_by_a_jump_of_the_configured_size():
    releases = tuple(
        NewsEvent(at=datetime(2024, 1, 8, tzinfo=UTC) + timedelta(hours=i), jump_pips=10.0)
        for i in range(24 * 4)
        if FxWeek().is_open((datetime(2024, 1, 8, tzinfo=UTC) + timedelta(hours=i)).timestamp())
    )
    symbols = (SymbolConfig(symbol="EURUSD", start_mid=1.1, volatility_pips=0.0),)
    market = SyntheticMarket(MarketConfig(symbols=symbols, regimes=None, news=releases), 5, MONDAY)
    moves = []
    for event in releases:
        before = market.mid("EURUSD", event.start - 1.0)
        moves.append((market.mid("EURUSD", event.start + 1.0) - before) / 0.0001)
    assert np.std(moves) == pytest.approx(10.0, rel=0.2)
    assert abs(np.mean(moves)) < 3.0


def test_the_volatile_regime_takes_the_share_of_time_its_mean_durations_imply():
    regimes = RegimeConfig(
        mean_calm_minutes=90.0, mean_volatile_minutes=10.0, volatile_multiplier=3.0
    )
    market = SyntheticMarket(MarketConfig(regimes=regimes), 4, MONDAY)
    samples = [market.volatility(MONDAY + i * 60.0) for i in range(60 * 24 * 60)]  # 60 days
    share = np.mean(np.array(samples) == 3.0)
    assert share == pytest.approx(0.1, abs=0.02)


def test_no_order_fills_while_the_market_is_closed():
    friday_evening = at("2024-01-12T21:50")
    world = SimulatedWorld.build(seed=2, start=friday_evening)
    flow = OrderFlowConfig(orders=400, rate_per_second=0.5)  # 400 orders over ~13 minutes
    arrivals = order_flow(flow, seed=2)

    def feed():
        for arrival in arrivals:
            yield world.env.timeout(arrival.delay)
            world.engine.submit(arrival.rpm)

    world.env.process(feed())
    world.env.run()
    week = FxWeek()
    deals = [row for row in world.venue.ledger_rows() if row[6]]
    assert deals and all(week.is_open(row[8]) for row in deals)
    closed = [
        e
        for e in world.engine.database.execution_ids()
        if not world.engine.database.get_execution(e).fills
    ]
    assert closed  # orders did arrive after 22:00 and were refused


def test_a_holiday_closes_the_market_for_its_trading_day():
    week = FxWeek(holidays=(date(2024, 1, 1),))
    assert not week.is_open(at("2023-12-31T23:00")) and not week.is_open(at("2024-01-01T12:00"))
    assert week.is_open(at("2024-01-01T22:00"))
    world = SimulatedWorld.build(
        seed=1, market=MarketConfig(week=week), start=at("2024-01-01T12:00")
    )
    execution = run_one(world, decision())
    assert execution.outcome_reason is R.MARKET_CLOSED
    assert world.venue.orders == {}


# -- accounts -----------------------------------------------------------------------------


def test_a_netting_account_offsets_opposite_fills_and_realises_the_pnl():
    account = Account(AccountConfig(balance=10_000.0, leverage=100), still_market())
    account.book("EURUSD", 100_000, 1.1000, MONDAY)
    assert account.state(MONDAY).margin_used == pytest.approx(1_100.0)  # 100k EUR at 1.1 / 100
    account.book("EURUSD", -100_000, 1.1010, MONDAY)
    state = account.state(MONDAY)
    assert state.margin_used == 0.0 and state.balance == pytest.approx(10_100.0)  # 10 pips on 1 lot


def test_a_hedging_account_keeps_both_sides_and_margins_each():
    config = AccountConfig(balance=10_000.0, leverage=100, margin_mode=MarginMode.HEDGING)
    account = Account(config, still_market())
    account.book("EURUSD", 100_000, 1.1000, MONDAY)
    account.book("EURUSD", -100_000, 1.1010, MONDAY)
    state = account.state(MONDAY)
    assert state.margin_used == pytest.approx(2_200.0)
    assert state.balance == 10_000.0 and state.equity == pytest.approx(10_100.0)


def test_positions_built_from_fills_squeeze_the_margin_until_the_engine_refuses():
    world = SimulatedWorld.build(seed=1, account=AccountConfig(balance=20_000.0, leverage=50))
    results = [run_one(world, decision(decision_id=f"m{i}", units=100_000)) for i in range(12)]
    statuses = [e.status for e in results]
    assert statuses[0] is S.FILLED
    assert results[-1].outcome_reason is R.INSUFFICIENT_MARGIN
    first_refusal = statuses.index(S.REJECTED)
    assert all(s is S.FILLED for s in statuses[:first_refusal])


# -- faults -------------------------------------------------------------------------------


def test_a_disconnected_terminal_cannot_even_read_a_quote_and_sends_nothing():
    window = FaultWindow(start=MONDAY, end=MONDAY + 60, kind=FaultKind.DISCONNECT)
    world = SimulatedWorld.build(seed=1, network=NetworkConfig(faults=(window,)))
    execution = run_one(world, decision())
    assert execution.outcome_reason is R.NETWORK_ERROR
    assert "disconnected" in execution.outcome_detail
    assert world.venue.orders == {}


def test_under_reply_loss_the_broker_executes_orders_the_engine_never_heard_of_and_none_twice():
    world = SimulatedWorld.build(seed=6, network=NetworkConfig(reply_loss=0.2))
    processes = [world.engine.submit(decision(decision_id=f"x{i}")) for i in range(500)]
    world.env.run()
    by_client = world.venue.orders_by_client_id()
    unheard = [
        p.value
        for p in processes
        if any(
            isinstance(e, SubmissionUnanswered)
            for e in world.engine.database.events(p.value.execution_id)
        )
        and p.value.request.client_order_id in by_client
    ]
    assert len(unheard) > 20  # the very situation reconciliation exists for
    assert all(len(orders) == 1 for orders in by_client.values())
    adopted = {e.broker_order_id for e in unheard if e.broker_order_id}
    assert adopted <= {str(o[0].ticket) for o in by_client.values()}
    assert {p.value.status for p in processes} <= {S.FILLED, S.UNRESOLVED}


# -- slippage as an outcome of the models ---------------------------------------------------


def slippage_run(latency_ms: float, volatility_pips: float, seed: int = 8) -> np.ndarray:
    symbols = (SymbolConfig(symbol="EURUSD", start_mid=1.1, volatility_pips=volatility_pips),)
    world = SimulatedWorld.build(
        seed=seed,
        market=MarketConfig(symbols=symbols, regimes=None, tick_seconds=0.05),
        network=NetworkConfig(latency=LatencyConfig.constant(latency_ms / 2)),
    )
    flow = OrderFlowConfig(orders=2_000, symbols=("EURUSD",), rate_per_second=20.0)

    def feed():
        for arrival in order_flow(flow, seed):
            yield world.env.timeout(arrival.delay)
            world.engine.submit(arrival.rpm)

    world.env.process(feed())
    world.env.run()
    database = world.engine.database
    slips = [database.get_execution(e).slippage_pips for e in database.execution_ids()]
    return np.array([s for s in slips if s is not None])


@pytest.mark.slow
def test_slippage_grows_with_latency_and_with_volatility_and_is_symmetric_without_drift():
    fast_calm = slippage_run(latency_ms=10.0, volatility_pips=0.3)
    slow_calm = slippage_run(latency_ms=300.0, volatility_pips=0.3)
    slow_wild = slippage_run(latency_ms=300.0, volatility_pips=1.5)
    assert np.mean(np.abs(fast_calm)) < np.mean(np.abs(slow_calm)) < np.mean(np.abs(slow_wild))
    moved = slow_wild[slow_wild != 0]
    assert np.mean(moved > 0) == pytest.approx(0.5, abs=0.05)


# -- determinism and real data at the broker ----------------------------------------------


def rich_world(seed: int) -> SimulatedWorld:
    release = datetime(2024, 1, 8, 7, 0, 30, tzinfo=UTC)
    return SimulatedWorld.build(
        seed=seed,
        market=MarketConfig(news=(NewsEvent(at=release),)),
        network=NetworkConfig(request_loss=0.02, reply_loss=0.02),
        venue=VenueConfig(
            depth=DepthLadder(top_units=150_000),
            rejections=RejectionConfig(random={10004: 0.03}, rate_limit_per_second=40),
        ),
    )


def ledger_of(seed: int) -> bytes:
    world = rich_world(seed)
    flow = order_flow(OrderFlowConfig(orders=600, rate_per_second=10.0), seed)

    def feed():
        for arrival in flow:
            yield world.env.timeout(arrival.delay)
            world.engine.submit(arrival.rpm)

    world.env.process(feed())
    world.env.run()
    return world.venue.ledger_bytes()


def test_the_same_seed_gives_a_byte_identical_broker_ledger_and_another_seed_does_not():
    first = ledger_of(21)
    assert first == ledger_of(21)
    assert first != ledger_of(22)


def test_replayed_gbpusd_bars_reach_the_broker_with_the_datas_own_spreads(fx_data):
    source = BarQuotesConfig(
        symbol="GBPUSD",
        digits=5,
        bid_path=fx_data / "gbpusd-m1-bid-2012-02.csv",
        ask_path=fx_data / "gbpusd-m1-ask-2012-02.csv",
        bad_quotes="drop",
        intra_bar="close",
    )
    market = ReplayMarket([source])
    venue = Venue(market)
    series = market.series("GBPUSD")
    assert series.report.crossed.count > 0  # reported, and handled by the declared policy
    closes = np.unique(np.floor(series.time / 60) * 60) + BAR_SECONDS / 2  # mid-bar
    spreads = []
    for t in closes:
        quote = venue.quote("GBPUSD", float(t))
        assert quote is not None
        spreads.append((quote.ask - quote.bid) / 0.0001)
    assert np.median(spreads) == pytest.approx(0.7, abs=0.05)
    assert np.percentile(spreads, 95) == pytest.approx(1.3, abs=0.05)
    world = SimulatedWorld.build(seed=1, market=market, start=float(closes[100]))
    execution = run_one(world, decision(symbol="GBPUSD"))
    assert execution.status is S.FILLED


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.floats(0.0, 1_799.0), min_size=1, max_size=30),
    st.lists(st.floats(0.0, 1_799.0), min_size=1, max_size=30),
)
def test_the_synthetic_market_gives_the_same_prices_however_often_it_is_read(reads_a, reads_b):
    """Two brokers reading the market at different instants must meet one market: the
    path is a function of time alone, through regimes, news windows and a jump. (A read
    never goes back: both are compared after their last reads.)"""
    news = NewsEvent(at=datetime.fromtimestamp(DEFAULT_START + 600, UTC), jump_pips=15.0)
    config = MarketConfig(news=(news,), regimes=RegimeConfig(mean_calm_minutes=10.0))
    a, b = (SyntheticMarket(config, 11, DEFAULT_START) for _ in range(2))
    for market, reads in ((a, reads_a), (b, reads_b)):
        for offset in sorted(reads):
            market.quote("GBPUSD", DEFAULT_START + offset)
    for offset in (1_800.0, 3_600.0, 3_601.0):
        t = DEFAULT_START + offset
        assert a.quote("GBPUSD", t) == b.quote("GBPUSD", t)
