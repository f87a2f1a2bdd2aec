"""The venue's ledger and the terminal's history in bounded memory: closed orders leave
memory for a spill file, and every question reads them back exactly as they were."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.ports import BrokerFill, BrokerOrderState, BrokerRejected, OrderRequest
from engine.schemas import Direction
from sim.ledger import Ledger, LedgerOrder
from sim.liquidity import DepthLadder
from sim.market import MarketConfig, SyntheticMarket
from sim.sessions import FxWeek
from sim.spilled import SpilledRecords
from sim.venue import Venue, VenueConfig
from sim.world import DEFAULT_START

MONDAY = DEFAULT_START


def venue(keep_closed: int | None, fill_delay: float = 0.0) -> Venue:
    # A thin book: large orders fill partially, so the ledger holds deals of every size.
    config = VenueConfig(
        depth=DepthLadder(top_units=150_000, levels=2), fill_delay_seconds=fill_delay
    )
    built = Venue(SyntheticMarket(MarketConfig(), 5, MONDAY), config=config, seed=5)
    if keep_closed is not None:
        built.orders = Ledger(keep_closed=keep_closed)
    return built


def order(index: int, client_order_id: str | None = None) -> OrderRequest:
    symbol = ("EURUSD", "USDJPY")[index % 2]
    units = (10_000, 100_000, 400_000)[index % 3]
    direction = Direction.BUY if index % 5 < 3 else Direction.SELL
    cid = client_order_id or f"AX{index:06d}"
    return OrderRequest(cid, symbol, direction, units, units / 100_000, 1.0, None)


def trade(target: Venue, count: int) -> list[str]:
    """Place `count` orders a few ms apart; the reports' order ids."""
    return [target.place(order(i), MONDAY + i * 0.003).order_id for i in range(count)]


def test_a_spilled_ledger_reads_back_byte_identical_to_one_held_in_memory():
    in_memory, spilled = venue(None), venue(keep_closed=3)
    trade(in_memory, 200)
    trade(spilled, 200)
    assert len(spilled.orders._live) < 2 * 3  # all but the latest few left memory
    assert spilled.ledger_bytes() == in_memory.ledger_bytes()
    assert spilled.ledger_orders() == in_memory.ledger_orders()
    assert spilled.orders_by_client_id() == in_memory.orders_by_client_id()
    by_client = list(spilled.orders.by_client())
    assert by_client == list(in_memory.orders.by_client()) == list(spilled.orders.by_client(7))
    assert [o[0].client_order_id for o in by_client] == sorted(in_memory.orders_by_client_id())
    assert len(spilled.orders) == 200 and list(spilled.orders) == list(range(1, 201))
    assert spilled.orders == in_memory.orders
    assert dict(spilled.orders.items()) == dict(in_memory.orders.items())


def test_a_spilled_order_is_found_by_ticket_and_client_id_with_its_fills_exactly():
    target = venue(keep_closed=2)
    # 400,000 units: a partial fill off a thin book.
    first = target.place(order(2, "AXfirst"), MONDAY)
    trade(target, 50)
    assert 1 not in target.orders._live
    t = MONDAY + 10.0
    assert target.status(first.order_id, t) == first
    assert target.find(first.client_order_id, t) == first
    assert target.cancel(first.order_id, t) == first  # a closed order stays as it was
    assert first.fills and first.fills[0].units < 400_000
    assert target.orders[1].fills == list(first.fills)
    assert 1 in target.orders and 0 not in target.orders and 10**6 not in target.orders
    assert target.orders.get(10**6) is None and target.find("AXnone", t) is None
    with pytest.raises(BrokerRejected, match="no order 999999"):
        target.status("999999", t)


def test_the_latest_order_of_a_client_id_wins_whether_spilled_or_in_memory():
    target = venue(keep_closed=1)
    target.place(order(0, "AXsame"), MONDAY)
    trade(target, 10)
    second = target.place(order(1, "AXsame"), MONDAY + 1.0)  # a duplicate, still in memory
    assert target.find("AXsame", MONDAY + 1.0) == second
    trade(target, 10)  # now the duplicate is spilled too
    assert target.find("AXsame", MONDAY + 2.0) == second
    assert [o.ticket for o in target.orders_by_client_id()["AXsame"]] == [1, 12]


def test_working_orders_stay_in_memory_until_they_settle_and_then_spill():
    target = venue(keep_closed=1, fill_delay=5.0)
    resting = [target.place(order(i), MONDAY + i * 0.01) for i in range(6)]
    assert all(r.state is BrokerOrderState.WORKING for r in resting)
    cancelled = target.cancel(resting[0].order_id, MONDAY + 1.0)
    assert cancelled.state is BrokerOrderState.CANCELLED and cancelled.fills == ()
    later = MONDAY + 10.0
    done = [target.status(r.order_id, later) for r in resting[1:]]
    assert all(r.state is BrokerOrderState.DONE and r.fills for r in done)
    assert len(target.orders._live) < 2
    assert target.status(resting[0].order_id, later) == cancelled
    assert [target.status(r.order_id, later + 1.0) for r in resting[1:]] == done


def test_a_spilled_order_keeps_the_types_of_its_times_and_prices():
    ledger = Ledger(keep_closed=1)
    orders = [
        LedgerOrder(1, "AXint", "EURUSD", Direction.SELL, 7, 5, BrokerOrderState.DONE),
        LedgerOrder(2, "AXflt", "EURUSD", Direction.BUY, 9, 6.5, BrokerOrderState.DONE),
    ]
    orders[0].fills.append(BrokerFill("d1", 3, 2, 8))
    orders[0].fills.append(BrokerFill("d2", 4, 1.25, 9.0))
    for ledger_order in orders:
        ledger.add(ledger_order)
        ledger.closed(ledger_order)
    spilled = ledger[1]
    assert 1 not in ledger._live and spilled == orders[0] and spilled is not orders[0]
    assert type(spilled.time) is int and type(spilled.fills[0].price) is int
    assert type(spilled.fills[1].time) is float and spilled.direction is Direction.SELL
    assert ledger.latest("AXint") == orders[0]


def test_the_weekly_hours_are_cached_without_changing_what_the_week_is():
    week = FxWeek()
    assert week.is_open(MONDAY) and week.close_second == 4 * 86_400 + 22 * 3600
    assert week == FxWeek() and hash(week) == hash(FxWeek())
    assert week.model_dump() == FxWeek().model_dump() and "close_second" not in week.model_dump()


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.integers(0, 500), unique=True, max_size=60),
    st.integers(1, 8),
    st.integers(1, 5),
)
def test_spilled_records_answer_as_a_dict_would_whichever_part_holds_them(keys, keep, chunk):
    records: SpilledRecords[tuple[int, str]] = SpilledRecords(keep=keep)
    model: dict[int, tuple[int, tuple[int, str]]] = {}
    for key in keys:  # added in any key order, as orders settle
        group = key % 7
        records.add(key, (key, f"deal {key}"), group=group)
        model[key] = (group, (key, f"deal {key}"))

    assert len(records) == len(model)
    assert list(records.items(chunk)) == sorted((k, r) for k, (_, r) in model.items())
    for key in range(0, 501, 7):
        assert records.get(key) == (model[key][1] if key in model else None)
    for group in range(7):
        assert records.of_group(group) == [r for k, (g, r) in sorted(model.items()) if g == group]
    records.clear()
    assert (
        len(records) == 0
        and list(records.items()) == []
        and records.get(keys[0] if keys else 0) is None
    )
