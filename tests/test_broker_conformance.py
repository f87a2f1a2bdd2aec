"""One contract, two brokers: the simulator's own and MT5Broker over the MT5 emulator.

Each case builds the same venue (market, account, depth, faults) behind either broker and
asserts what the engine relies on. Both run in virtual time: a SimPy clock that moves only
when the network's delays are slept, so faults and timeouts are exact and instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from brokers.mt5 import MT5Broker, MT5Config
from engine.core.config import EngineConfig
from engine.core.ids import child_client_order_id
from engine.core.instruments import TradeMode
from engine.core.ports import (
    BrokerError,
    BrokerInterface,
    BrokerOrderState,
    BrokerRejected,
    FillPolicy,
    OrderReport,
    OrderRequest,
    OutcomeUnknown,
)
from engine.engine import ExecutionEngine
from engine.live import LiveDriver
from engine.schemas import Direction, ExecutionRejectionReason, ExecutionStatus
from sim.account import AccountConfig
from sim.broker import SimulatedBroker
from sim.clock import SimPyClock
from sim.latency import LatencyConfig
from sim.liquidity import DepthLadder
from sim.market import MarketConfig, SymbolConfig, SyntheticMarket
from sim.mt5 import MT5Emulator
from sim.network import FaultKind, FaultWindow, Network, NetworkConfig
from sim.venue import Venue, VenueConfig
from sim.wire import Wire
from sim.world import DEFAULT_START
from tests.builders import decision

R = ExecutionRejectionReason
T0 = DEFAULT_START
SATURDAY = T0 + 5 * 86_400
TIMEOUT = 5.0  # seconds either broker waits for a reply
TAG = "AX" + "0123456789abcdef0123"

STILL = MarketConfig(
    symbols=(
        SymbolConfig(symbol="EURUSD", start_mid=1.085, volatility_pips=0.0),
        SymbolConfig(symbol="USDJPY", start_mid=145.0, digits=3, volatility_pips=0.0),
    )
)
WIRE = NetworkConfig(latency=LatencyConfig.constant(1.0))
BROKERS = ("simulator", "mt5")


def window(kind: FaultKind, seconds: float = 1.0) -> NetworkConfig:
    return NetworkConfig(
        latency=LatencyConfig.constant(1.0),
        faults=(FaultWindow(start=T0, end=T0 + seconds, kind=kind),),
    )


@dataclass
class Setup:
    kind: str
    clock: SimPyClock
    venue: Venue
    broker: BrokerInterface


def build(
    kind: str,
    *,
    start: float = T0,
    market: MarketConfig = STILL,
    account: AccountConfig | None = None,
    venue: VenueConfig | None = None,
    network: NetworkConfig = WIRE,
    seed: int = 1,
) -> Setup:
    """The same venue and wire behind the simulator's broker or MT5Broker + emulator."""
    clock = SimPyClock.starting_at(start)
    prices = SyntheticMarket(market, seed, start)
    sim_venue = Venue(prices, account, venue, seed)
    wire = Wire(Network(network, seed, prices.volatility), clock)
    broker: BrokerInterface
    if kind == "simulator":
        broker = SimulatedBroker(
            sim_venue, wire, request_timeout=TIMEOUT
        )
    else:
        terminal = MT5Emulator(sim_venue, wire)
        # The emulated terminal's history never lags here: a "not found" answers at once.
        config = MT5Config(timeout_ms=int(TIMEOUT * 1000), history_sync_seconds=0)
        mt5 = MT5Broker(terminal, config, clock=clock)
        mt5.start()
        broker = mt5
    return Setup(kind, clock, sim_venue, broker)


@pytest.fixture(params=BROKERS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


def order(
    setup: Setup,
    units: int = 100_000,
    direction: Direction = Direction.BUY,
    symbol: str = "EURUSD",
    price_offset_points: int = 0,
    deviation_points: int | None = None,
    fill_policy: FillPolicy = FillPolicy.IOC,
    tag: str = TAG,
) -> OrderRequest:
    """An order as the engine builds it: at the quoted side of the broker's own quote."""
    quote = setup.venue.quote(symbol, setup.clock.now())
    spec = setup.venue.spec(symbol)
    assert quote is not None and spec is not None
    price = quote.ask if direction is Direction.BUY else quote.bid
    return OrderRequest(
        client_order_id=tag,
        symbol=symbol,
        direction=direction,
        units=units,
        lots=units / spec.contract_size,
        price=price + price_offset_points * spec.point,
        deviation_points=deviation_points,
        fill_policy=fill_policy,
    )


def ledger_states(setup: Setup) -> list[tuple[str, str, int]]:
    return [
        (o.client_order_id, o.state.value, sum(f.units for f in o.fills))
        for o in setup.venue.orders.values()
    ]


# -- placement ------------------------------------------------------------------------------


def test_a_market_order_fills_at_the_quote_prevailing_when_it_arrives(kind):
    setup = build(kind)
    report = setup.broker.place_order(order(setup))

    assert report.state is BrokerOrderState.DONE
    assert report.client_order_id == TAG and report.requested_units == 100_000
    [fill] = report.fills
    arrival = setup.venue.quote("EURUSD", fill.time)
    assert arrival is not None and fill.price == arrival.ask and fill.units == 100_000
    assert fill.time == pytest.approx(T0 + 0.001, abs=1e-3)  # one millisecond on the wire
    assert ledger_states(setup) == [(TAG, "DONE", 100_000)]
    assert setup.broker.order_status(report.order_id) == report


def test_an_ioc_order_against_a_thin_book_fills_in_part_and_is_done(kind):
    setup = build(kind, venue=VenueConfig(depth=DepthLadder(top_units=60_000, levels=1)))
    report = setup.broker.place_order(order(setup, units=100_000))

    assert report.state is BrokerOrderState.DONE
    assert report.requested_units == 100_000 and report.filled_units == 60_000
    assert setup.broker.order_status(report.order_id).filled_units == 60_000
    assert ledger_states(setup) == [(TAG, "DONE", 60_000)]


def test_a_sell_fills_at_the_bid(kind):
    setup = build(kind)
    report = setup.broker.place_order(order(setup, direction=Direction.SELL, symbol="USDJPY"))
    [fill] = report.fills
    arrival = setup.venue.quote("USDJPY", fill.time)
    assert arrival is not None and fill.price == arrival.bid


# -- rejections by code -------------------------------------------------------------------------

REJECTIONS: dict[str, dict[str, Any]] = {
    "market closed on a weekend": {
        "setup": {"start": SATURDAY},
        "reason": R.MARKET_CLOSED,
        "code": 10018,
    },
    "no money": {
        "setup": {"account": AccountConfig(balance=1_000.0, leverage=30)},
        "reason": R.INSUFFICIENT_MARGIN,
        "code": 10019,
    },
    "requote beyond a tight deviation": {
        "order": {"price_offset_points": -5, "deviation_points": 1},
        "reason": R.REQUOTE,
        "code": 10004,
    },
    "trade disabled": {
        "setup": {
            "market": MarketConfig(
                symbols=(
                    SymbolConfig(
                        symbol="EURUSD",
                        start_mid=1.085,
                        volatility_pips=0.0,
                        trade_mode=TradeMode.DISABLED,
                    ),
                )
            )
        },
        "reason": R.SYMBOL_NOT_TRADABLE,
        "code": 10017,
    },
    "invalid volume": {
        # MT5Broker refuses units it cannot express in lots before sending (no code);
        # the simulator's venue answers 10014. Neither rounds, and nothing trades.
        "order": {"units": 100_500},
        "reason": R.INVALID_VOLUME,
        "code": {"simulator": 10014, "mt5": None},
    },
}


@pytest.mark.parametrize("case", REJECTIONS)
def test_a_refused_order_is_a_final_rejection_with_its_reason_and_code(kind, case):
    spec = REJECTIONS[case]
    setup = build(kind, **spec.get("setup", {}))
    with pytest.raises(BrokerRejected) as refused:
        setup.broker.place_order(order(setup, **spec.get("order", {})))
    code = spec["code"][kind] if isinstance(spec["code"], dict) else spec["code"]
    assert refused.value.reason is spec["reason"]
    assert refused.value.code == code
    assert setup.venue.orders == {}


# -- unknown outcomes and reconciliation -----------------------------------------------------


def test_a_lost_reply_leaves_the_order_at_the_broker_and_find_order_adopts_it(kind):
    setup = build(kind, network=window(FaultKind.DROP_REPLIES, seconds=30.0))
    with pytest.raises(OutcomeUnknown):
        setup.broker.place_order(order(setup))
    [ledger_order] = setup.venue.orders.values()  # it executed

    # While the replies are lost, the broker cannot say "not found": it fails instead.
    with pytest.raises(BrokerError) as unreachable:
        setup.broker.find_order(TAG)
    assert not isinstance(unreachable.value, BrokerRejected)

    setup.clock.sleep(30.0)
    found = setup.broker.find_order(TAG)
    assert isinstance(found, OrderReport)
    assert found.order_id == str(ledger_order.ticket)
    assert found.state is BrokerOrderState.DONE and found.filled_units == 100_000
    assert len(setup.venue.orders) == 1


def child_after_a_partial_fill(kind: str, fault: FaultKind) -> tuple[Setup, OrderReport, str]:
    """A parent order filled in part, then its remainder sent as the first child order, whose
    tag is the parent's plus a suffix (what MT5 matches, the first characters, is the same),
    into a `fault` that hides its fate for 30 seconds."""
    faults = (FaultWindow(start=T0 + 1.0, end=T0 + 31.0, kind=fault),)
    setup = build(
        kind,
        venue=VenueConfig(depth=DepthLadder(top_units=60_000, levels=1)),
        network=NetworkConfig(latency=LatencyConfig.constant(1.0), faults=faults),
    )
    parent = setup.broker.place_order(order(setup))
    assert parent.filled_units == 60_000
    setup.clock.sleep(1.0)
    child = child_client_order_id(TAG, 1)
    with pytest.raises(OutcomeUnknown):
        setup.broker.place_order(order(setup, units=40_000, tag=child))
    setup.clock.sleep(30.0)
    return setup, parent, child


def test_a_child_order_whose_reply_was_lost_is_found_as_itself_never_as_its_parent(kind):
    setup, parent, child = child_after_a_partial_fill(kind, FaultKind.DROP_REPLIES)

    found = setup.broker.find_order(child, known_order_ids=(parent.order_id,))

    assert found is not None and found.order_id != parent.order_id
    assert found.filled_units == 40_000 and found.client_order_id == child


def test_a_child_order_that_never_arrived_is_not_found_though_its_parent_shares_its_tag(kind):
    setup, parent, child = child_after_a_partial_fill(kind, FaultKind.HANG)

    assert setup.broker.find_order(child, known_order_ids=(parent.order_id,)) is None
    assert len(setup.venue.orders) == 1


def test_a_lost_request_never_reaches_the_broker_and_find_order_says_so(kind):
    setup = build(kind, network=window(FaultKind.HANG, seconds=1.0))
    with pytest.raises(OutcomeUnknown):
        setup.broker.place_order(order(setup))
    assert setup.clock.now() == pytest.approx(T0 + TIMEOUT)  # it waited out its timeout
    assert setup.broker.find_order(TAG) is None
    assert setup.venue.orders == {}


def test_a_refused_connection_sends_nothing_and_is_no_rejection(kind):
    setup = build(kind, network=window(FaultKind.REFUSE, seconds=10.0))
    with pytest.raises(BrokerError) as failed:
        setup.broker.place_order(order(setup))
    assert not isinstance(failed.value, BrokerRejected)
    assert setup.venue.orders == {}


def test_an_order_never_sent_is_not_found(kind):
    setup = build(kind)
    setup.broker.place_order(order(setup, tag="AX" + "1" * 20))
    assert setup.broker.find_order("AX" + "2" * 20) is None


# -- cancel ------------------------------------------------------------------------------------


def test_a_resting_order_is_cancelled_on_request(kind):
    setup = build(kind, venue=VenueConfig(fill_delay_seconds=float("inf")))
    report = setup.broker.place_order(order(setup))
    assert report.state is BrokerOrderState.WORKING and report.fills == ()
    assert setup.broker.order_status(report.order_id).state is BrokerOrderState.WORKING

    cancelled = setup.broker.cancel_order(report.order_id)

    assert cancelled.state is BrokerOrderState.CANCELLED and cancelled.fills == ()
    assert setup.broker.order_status(report.order_id).state is BrokerOrderState.CANCELLED
    assert ledger_states(setup) == [(TAG, "CANCELLED", 0)]


def test_a_resting_order_fills_once_its_delay_has_passed(kind):
    setup = build(kind, venue=VenueConfig(fill_delay_seconds=3.0))
    report = setup.broker.place_order(order(setup))
    assert report.state is BrokerOrderState.WORKING
    setup.clock.sleep(3.0)
    filled = setup.broker.order_status(report.order_id)
    assert filled.state is BrokerOrderState.DONE and filled.filled_units == 100_000


def test_cancelling_an_order_already_done_reports_how_it_ended(kind):
    setup = build(kind)
    report = setup.broker.place_order(order(setup))
    after = setup.broker.cancel_order(report.order_id)
    assert after.state is BrokerOrderState.DONE and after.fills == report.fills


# -- market data, the closed market, margin -----------------------------------------------------


def test_symbol_spec_and_quote_are_the_venues(kind):
    setup = build(kind)
    assert setup.broker.symbol_spec("EURUSD") == setup.venue.spec("EURUSD")
    assert setup.broker.symbol_spec("XAUUSD") is None
    snapshot = setup.broker.market_snapshot("USDJPY")
    quote = setup.venue.quote("USDJPY", setup.clock.now())
    assert snapshot is not None and quote is not None
    assert (snapshot.bid, snapshot.ask, snapshot.time) == (quote.bid, quote.ask, quote.time)
    assert setup.broker.is_connected()


def test_on_a_weekend_the_quote_is_stale_and_the_symbol_still_tradable(kind):
    setup = build(kind, start=SATURDAY)
    snapshot = setup.broker.market_snapshot("EURUSD")
    spec = setup.broker.symbol_spec("EURUSD")
    assert snapshot is not None and spec is not None
    # The engine judges the market closed from the quote's age: MT5 has no session call.
    assert setup.clock.now() - snapshot.time > EngineConfig().max_quote_age_seconds
    assert spec.trade_mode is TradeMode.FULL


def test_margin_required_and_the_account_agree_with_the_venue(kind):
    setup = build(kind, account=AccountConfig(balance=50_000.0, leverage=50))
    quote = setup.venue.quote("EURUSD", T0)
    assert quote is not None
    needed = setup.broker.margin_required("EURUSD", Direction.BUY, 1.0, quote.ask)
    assert needed == pytest.approx(setup.venue.margin_required("EURUSD", 100_000, T0))
    before = setup.broker.account()
    assert (before.balance, before.margin_used, before.leverage) == (50_000.0, 0.0, 50)

    setup.broker.place_order(order(setup))
    after = setup.broker.account()
    assert after.margin_used == pytest.approx(needed)
    assert after.free_margin == pytest.approx(after.equity - after.margin_used)
    assert after == setup.venue.account_state(setup.clock.now())


# -- through the engine ------------------------------------------------------------------------


def engine_on(setup: Setup) -> ExecutionEngine:
    return ExecutionEngine(
        setup.broker, driver=LiveDriver(setup.clock), instance_id=setup.kind
    )


def test_the_engine_fills_an_approved_trade_through_either_broker(kind):
    setup = build(kind)
    confirmation = engine_on(setup).execute(decision(units=200_000))
    assert confirmation.status is ExecutionStatus.FILLED
    assert confirmation.executed_units == 200_000
    assert [(o.ticket, o.state.value) for o in setup.venue.orders.values()] == [(1, "DONE")]


def test_the_engine_adopts_an_order_whose_reply_was_lost_through_either_broker(kind):
    setup = build(kind, network=window(FaultKind.DROP_REPLIES, seconds=3.0))
    engine = engine_on(setup)
    confirmation = engine.execute(decision())
    execution = engine.database.get_execution(confirmation.execution_id)
    assert execution is not None
    assert confirmation.status is ExecutionStatus.FILLED and execution.attempts == 1
    assert len(setup.venue.orders) == 1


def test_both_brokers_report_the_same_order_for_the_same_market():
    reports = {}
    for kind in BROKERS:
        setup = build(kind, venue=VenueConfig(depth=DepthLadder(top_units=60_000, levels=2)))
        placed = setup.broker.place_order(order(setup, units=150_000))
        reports[kind] = (
            placed.order_id,
            placed.state,
            placed.requested_units,
            [(f.fill_id, f.units, f.price) for f in placed.fills],
        )
    assert reports["simulator"] == reports["mt5"]
