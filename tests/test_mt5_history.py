"""The emulated terminal keeps its history and positions up to date as fills become
visible, and reads exactly as replaying every visible fill in deal order would: a run's
history calls cost what its new fills cost, not what its whole history does."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sim.account import AccountConfig, MarginMode
from sim.clock import SimPyClock
from sim.latency import LatencyConfig
from sim.liquidity import DepthLadder
from sim.market import MarketConfig, SymbolConfig, SyntheticMarket
from sim.mt5 import MT5Emulator
from sim.network import FaultKind, FaultWindow, Network, NetworkConfig
from sim.spilled import SpilledRecords
from sim.venue import Venue, VenueConfig
from sim.wire import Wire
from sim.world import DEFAULT_START

T0 = DEFAULT_START
MARKET = MarketConfig(
    symbols=(
        SymbolConfig(symbol="EURUSD", start_mid=1.085, volatility_pips=0.5),
        SymbolConfig(symbol="USDJPY", start_mid=145.0, digits=3, volatility_pips=0.5),
    )
)
EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def terminal(
    fill_delay: float, hedging: bool, partition: tuple[float, float] | None = None
) -> tuple[MT5Emulator, SimPyClock]:
    clock = SimPyClock.starting_at(T0)
    prices = SyntheticMarket(MARKET, 3, T0)
    account = AccountConfig(margin_mode=MarginMode.HEDGING if hedging else MarginMode.NETTING)
    # A thin book: large orders fill partially, so deals come in every size.
    venue_config = VenueConfig(
        depth=DepthLadder(top_units=150_000, levels=2), fill_delay_seconds=fill_delay
    )
    venue = Venue(prices, account=account, config=venue_config, seed=3)
    faults = (
        (FaultWindow(start=T0 + partition[0], end=T0 + partition[1], kind=FaultKind.DROP_REPLIES),)
        if partition
        else ()
    )
    wire = Network(NetworkConfig(latency=LatencyConfig.constant(0.0), faults=faults), 3)
    emulator = MT5Emulator(venue, Wire(wire, clock))
    # A history of a few orders in memory, the rest spilled: both parts are read.
    book = emulator._book
    book.closed_tags, book.deals = SpilledRecords(keep=2), SpilledRecords(keep=2)
    assert emulator.initialize(timeout=1_000)
    return emulator, clock


def send(emulator: MT5Emulator, symbol: str, buy: bool, lots: float) -> Any:
    quote = emulator.symbol_info_tick(symbol)
    return emulator.order_send(
        {
            "action": emulator.TRADE_ACTION_DEAL,
            "symbol": symbol,
            "volume": lots,
            "type": emulator.ORDER_TYPE_BUY if buy else emulator.ORDER_TYPE_SELL,
            "price": quote.ask if buy else quote.bid,
            "deviation": 50,
            "magic": 7,
            "comment": "AX1",
            "type_time": emulator.ORDER_TIME_GTC,
            "type_filling": emulator.ORDER_FILLING_IOC,
        }
    )


def assert_reads_as_a_full_replay(emulator: MT5Emulator) -> None:
    """What the terminal shows now, against a book rebuilt from every visible fill."""
    now = emulator.clock()
    shown = (
        emulator.positions_get(),
        emulator.history_deals_get(*EVER),
        emulator.history_orders_get(*EVER),
        emulator.orders_get(),
    )
    by_ticket = [
        (emulator.history_orders_get(ticket=t), emulator.history_deals_get(ticket=t))
        for t in emulator.venue.orders
    ]
    # A window from the middle of the history reads what the whole history filtered would.
    every_deal, every_order = shown[1], shown[2]
    times = sorted(d.time for d in every_deal) or [0]
    middle = (datetime.fromtimestamp(times[len(times) // 2], UTC), EVER[1])
    assert emulator.history_deals_get(*middle) == tuple(
        d for d in every_deal if d.time >= times[len(times) // 2]
    )
    assert emulator.history_orders_get(*middle) == tuple(
        o for o in every_order if o.time_setup >= times[len(times) // 2]
    )
    kept = (list(emulator._book.positions.values()), list(emulator._book.deals.items()))
    emulator._book.rebook(now)
    assert kept == (list(emulator._book.positions.values()), list(emulator._book.deals.items()))
    assert shown == (
        emulator.positions_get(),
        emulator.history_deals_get(*EVER),
        emulator.history_orders_get(*EVER),
        emulator.orders_get(),
    )
    assert by_ticket == [
        (emulator.history_orders_get(ticket=t), emulator.history_deals_get(ticket=t))
        for t in emulator.venue.orders
    ]


def test_an_order_learnt_of_late_with_older_deals_is_booked_in_deal_order():
    emulator, clock = terminal(fill_delay=10.0, hedging=False, partition=(5.0, 300.0))
    send(emulator, "EURUSD", buy=True, lots=1.0)  # known at once, rests 10 s
    clock.sleep(10.0)
    send(emulator, "EURUSD", buy=False, lots=0.5)  # in the partition: known at its end
    late = max(emulator.venue.orders)
    clock.sleep(20.0)
    emulator.venue.status(str(late), clock.now())  # the server fills it: the older deal
    assert emulator.positions_get()[0].volume == 1.0  # the first order's fill, booked now
    assert len(emulator.history_deals_get(*EVER)) == 1

    clock.sleep(300.0)
    deals = emulator.history_deals_get(*EVER)
    assert [deal.order for deal in deals] == [late, late - 1]  # by deal ticket: the late first
    assert [deal.entry for deal in deals] == [emulator.DEAL_ENTRY_IN, emulator.DEAL_ENTRY_INOUT]
    assert emulator.positions_get()[0].volume == 0.5
    assert_reads_as_a_full_replay(emulator)


sends = st.tuples(
    st.just("send"),
    st.sampled_from(["EURUSD", "USDJPY"]),
    st.booleans(),
    st.sampled_from([0.1, 0.5, 1.0, 2.5]),
)
operations = st.lists(
    st.tuples(
        st.one_of(
            sends,
            sends,
            st.tuples(st.just("wait"), st.sampled_from([0.5, 3.0, 12.0, 60.0])),
            st.tuples(st.just("server fills"), st.integers(0, 3)),
            st.tuples(st.just("cancel"), st.integers(0, 30)),
            st.tuples(st.just("look"), st.integers(0, 30)),
        ),
        st.booleans(),  # whether the terminal shows everything after the step
    ),
    min_size=5,
    max_size=50,
)


@settings(max_examples=200, deadline=None)
@given(
    operations,
    st.sampled_from([0.0, 5.0]),
    st.booleans(),
    st.one_of(st.none(), st.tuples(st.floats(0.0, 30.0), st.floats(31.0, 400.0))),
)
def test_the_kept_book_reads_as_a_full_replay_whatever_happens(
    steps, fill_delay, hedging, partition
):
    emulator, clock = terminal(fill_delay, hedging, partition)
    for step, shown in steps:
        tickets = list(emulator.venue.orders)
        # Counted back from the newest: the orders a partition may still hide.
        chosen = tickets[-1 - step[1] % len(tickets)] if tickets and isinstance(step[1], int) else 0
        if step[0] == "send":
            send(emulator, step[1], step[2], step[3])
        elif step[0] == "wait":
            clock.sleep(step[1])
        elif step[0] == "server fills" and chosen:
            emulator.venue.status(str(chosen), clock.now())
        elif step[0] == "cancel" and chosen:
            emulator.order_send({"action": emulator.TRADE_ACTION_REMOVE, "order": chosen})
        elif step[0] == "look" and chosen:
            emulator.history_orders_get(ticket=chosen)
            emulator.history_deals_get(ticket=chosen)
        if shown:  # between looks, fills of several orders pile up: booked in deal order
            assert_reads_as_a_full_replay(emulator)
    assert_reads_as_a_full_replay(emulator)
