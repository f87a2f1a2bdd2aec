"""Trading through the emulated terminal as real servers trade: execution modes and the
filling types each allows, and positions as MT5 keeps them (netting reversals, tickets
that differ from identifiers, hedging closes by position). Each test drives the emulator
alone, through the module's functions."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.account import AccountConfig, MarginMode
from sim.clock import SimPyClock
from sim.market import SyntheticMarket
from sim.mt5 import MT5Emulator, TerminalConfig
from sim.mt5.config import ExecutionMode
from sim.venue import Venue, VenueConfig
from sim.wire import Wire
from sim.world import DEFAULT_START
from tests.builders import STILL_THREE_SYMBOLS

T0 = DEFAULT_START



def terminal(
    modes: dict[str, ExecutionMode] | None = None, hedging: bool = False, fill_delay: float = 0.0
) -> tuple[MT5Emulator, SimPyClock]:
    clock = SimPyClock.starting_at(T0)
    prices = SyntheticMarket(STILL_THREE_SYMBOLS, 1, T0)
    account = AccountConfig(margin_mode=MarginMode.HEDGING if hedging else MarginMode.NETTING)
    venue = Venue(prices, account, VenueConfig(fill_delay_seconds=fill_delay), seed=1)
    emulator = MT5Emulator(venue, Wire(None, clock), TerminalConfig(execution_modes=modes or {}))
    assert emulator.initialize()
    return emulator, clock


def deal(emulator: MT5Emulator, symbol: str = "EURUSD", buy: bool = True, **fields: Any) -> Any:
    """A market order of 0.1 lot at the quoted side, as a request dict; `fields` replace."""
    quote = emulator.symbol_info_tick(symbol)
    body = {
        "action": emulator.TRADE_ACTION_DEAL,
        "symbol": symbol,
        "volume": 0.1,
        "type": emulator.ORDER_TYPE_BUY if buy else emulator.ORDER_TYPE_SELL,
        "price": quote.ask if buy else quote.bid,
        "deviation": 10,
        "magic": 7,
        "comment": "AX1",
        "type_filling": emulator.ORDER_FILLING_FOK,
    }
    return {**body, **fields}


def send(emulator: MT5Emulator, symbol: str = "EURUSD", buy: bool = True, **fields: Any) -> Any:
    return emulator.order_send(deal(emulator, symbol, buy, **fields))


# -- execution modes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "exemode"), [("request", 0), ("instant", 1)], ids=["request", "instant"]
)
def test_request_and_instant_execution_allow_fill_or_kill_only(mode, exemode):
    emulator, _ = terminal({"EURUSD": mode})
    info = emulator.symbol_info("EURUSD")
    assert (info.trade_exemode, info.filling_mode) == (exemode, 1)  # FOK only
    for filling in (emulator.ORDER_FILLING_IOC, emulator.ORDER_FILLING_RETURN):
        refused = send(emulator, type_filling=filling)
        assert refused.retcode == emulator.TRADE_RETCODE_INVALID_FILL
    assert send(emulator).retcode == emulator.TRADE_RETCODE_DONE
    assert len(emulator.venue.orders) == 1


@pytest.mark.parametrize("mode", ["request", "instant"])
def test_request_and_instant_execution_requote_a_price_beyond_the_deviation(mode):
    emulator, _ = terminal({"EURUSD": mode})
    ask = emulator.symbol_info_tick("EURUSD").ask
    result = send(emulator, price=ask - 0.0002, deviation=10)  # 20 points away
    assert result.retcode == emulator.TRADE_RETCODE_REQUOTE
    assert emulator.venue.orders == {}
    assert send(emulator, price=0.0).retcode == emulator.TRADE_RETCODE_INVALID_PRICE


def test_market_execution_fills_at_the_servers_price_whatever_the_request_says():
    emulator, _ = terminal({"EURUSD": "market"})
    info = emulator.symbol_info("EURUSD")
    assert (info.trade_exemode, info.filling_mode) == (emulator.SYMBOL_TRADE_EXECUTION_MARKET, 3)
    far = send(emulator, price=info.ask - 0.0050, deviation=0)  # 500 points away: no requote
    unpriced = send(emulator, price=0.0, deviation=0)  # no price at all
    assert far.retcode == unpriced.retcode == emulator.TRADE_RETCODE_DONE
    assert far.price == unpriced.price == info.ask
    check = emulator.order_check(deal(emulator, price=0.0))
    assert check.retcode == 0


def test_market_execution_takes_fok_or_ioc_but_not_return():
    emulator, _ = terminal({"EURUSD": "market"})
    assert send(emulator, type_filling=emulator.ORDER_FILLING_IOC).retcode == 10009
    assert send(emulator, type_filling=emulator.ORDER_FILLING_FOK).retcode == 10009
    returned = send(emulator, type_filling=emulator.ORDER_FILLING_RETURN)
    assert returned.retcode == emulator.TRADE_RETCODE_INVALID_FILL


def test_exchange_execution_takes_return_too_with_no_bit_for_it():
    emulator, _ = terminal({"EURUSD": "exchange"})
    info = emulator.symbol_info("EURUSD")
    assert (info.trade_exemode, info.filling_mode) == (emulator.SYMBOL_TRADE_EXECUTION_EXCHANGE, 3)
    result = send(emulator, type_filling=emulator.ORDER_FILLING_RETURN, price=0.0)
    assert result.retcode == emulator.TRADE_RETCODE_DONE and result.volume == 0.1


def test_a_mode_allows_only_the_filling_types_the_venue_offers_for_the_symbol():
    emulator, _ = terminal({"GBPUSD": "market", "USDJPY": "market"})
    assert emulator.symbol_info("GBPUSD").filling_mode == 1  # the venue offers FOK only
    assert emulator.symbol_info("USDJPY").filling_mode == 2  # IOC only
    refused = send(emulator, "GBPUSD", type_filling=emulator.ORDER_FILLING_IOC)
    assert refused.retcode == emulator.TRADE_RETCODE_INVALID_FILL


@pytest.mark.parametrize(
    ("modes", "complaint"),
    [({"USDJPY": "instant"}, "no filling type"), ({"AUDUSD": "market"}, "does not list")],
    ids=["instant on an IOC-only symbol", "a symbol the venue lacks"],
)
def test_a_mode_that_disagrees_with_the_venue_is_refused_when_the_terminal_starts(modes, complaint):
    with pytest.raises(ValueError, match=complaint):
        terminal(modes)


def test_a_symbol_not_named_keeps_requotes_and_the_venues_fill_policies():
    emulator, _ = terminal({"GBPUSD": "market"})
    info = emulator.symbol_info("EURUSD")
    assert (info.trade_exemode, info.filling_mode) == (emulator.SYMBOL_TRADE_EXECUTION_INSTANT, 3)
    assert send(emulator, type_filling=emulator.ORDER_FILLING_IOC).retcode == 10009
    requoted = send(emulator, price=info.ask - 0.0002, deviation=10)
    assert requoted.retcode == emulator.TRADE_RETCODE_REQUOTE


# -- positions: tickets and identifiers ---------------------------------------------------


def rebuilt(emulator: MT5Emulator) -> tuple[Any, ...]:
    """positions_get() after the book is rebuilt from every visible fill, as the terminal
    rebuilds it when it learns late of an order with older deals."""
    emulator._book.rebook(emulator.clock())
    return emulator.positions_get()


def test_a_netting_reversal_keeps_the_identifier_and_takes_the_reversing_orders_ticket():
    emulator, _ = terminal()
    opened = send(emulator, volume=0.1).order
    reversing = send(emulator, buy=False, volume=0.3).order

    [position] = emulator.positions_get()
    assert (position.identifier, position.ticket) == (opened, reversing)
    assert (position.type, position.volume) == (emulator.POSITION_TYPE_SELL, 0.2)
    assert emulator.positions_get(ticket=reversing) == (position,)
    assert emulator.positions_get(ticket=opened) == ()
    deals = emulator.history_deals_get(position=opened)
    assert [(d.order, d.entry, d.position_id) for d in deals] == [
        (opened, emulator.DEAL_ENTRY_IN, opened),
        (reversing, emulator.DEAL_ENTRY_INOUT, opened),
    ]
    assert emulator.history_orders_get(ticket=reversing)[0].position_id == opened
    assert rebuilt(emulator) == (position,)


def test_a_swap_reopen_gives_the_position_a_new_ticket_under_the_same_identifier():
    emulator, clock = terminal()
    opened = send(emulator).order
    emulator._book.reopen_positions_for_swap(clock.now())

    [position] = emulator.positions_get()
    assert position.identifier == opened and position.ticket > opened
    assert emulator.positions_get(ticket=position.ticket) == (position,)
    added = send(emulator).order  # the same direction: the ticket stays
    [grown] = emulator.positions_get()
    assert (grown.ticket, grown.identifier, grown.volume) == (position.ticket, opened, 0.2)
    assert emulator.history_deals_get(ticket=added)[0].position_id == opened
    assert rebuilt(emulator) == (grown,)  # a replay of the deals keeps the re-open's ticket

    reversing = send(emulator, buy=False, volume=0.5).order
    [reversed_] = emulator.positions_get()
    assert (reversed_.ticket, reversed_.identifier) == (reversing, opened)
    assert rebuilt(emulator) == (reversed_,)


# -- positions: closing one by naming it ----------------------------------------------------


def test_on_a_hedging_account_an_opposite_order_opens_a_second_position():
    emulator, _ = terminal(hedging=True)
    bought = send(emulator).order
    sold = send(emulator, buy=False).order

    positions = emulator.positions_get()
    assert [(p.ticket, p.identifier, p.type) for p in positions] == [
        (bought, bought, emulator.POSITION_TYPE_BUY),
        (sold, sold, emulator.POSITION_TYPE_SELL),
    ]
    assert emulator.history_deals_get(ticket=sold)[0].entry == emulator.DEAL_ENTRY_IN
    both = emulator.venue.margin_required("EURUSD", 20_000, emulator.clock())
    assert emulator.account_info().margin == pytest.approx(both)  # each leg needs margin


def test_on_a_hedging_account_an_order_naming_a_position_closes_it_in_part_then_in_full():
    emulator, _ = terminal(hedging=True)
    quote = emulator.symbol_info_tick("EURUSD")
    opened = send(emulator, volume=0.3).order
    part = send(emulator, buy=False, volume=0.1, position=opened)
    assert part.retcode == emulator.TRADE_RETCODE_DONE
    [left] = emulator.positions_get()
    assert (left.ticket, left.identifier, left.volume) == (opened, opened, 0.2)
    assert rebuilt(emulator) == (left,)

    rest = send(emulator, buy=False, volume=0.2, position=opened)
    assert rest.retcode == emulator.TRADE_RETCODE_DONE
    assert emulator.positions_get() == ()
    deals = emulator.history_deals_get(position=opened)
    assert [(d.entry, d.position_id, d.volume) for d in deals] == [
        (emulator.DEAL_ENTRY_IN, opened, 0.3),
        (emulator.DEAL_ENTRY_OUT, opened, 0.1),
        (emulator.DEAL_ENTRY_OUT, opened, 0.2),
    ]
    orders = emulator.history_orders_get(position=opened)
    assert [o.ticket for o in orders] == [opened, part.order, rest.order]
    # The venue's account agrees: no margin held, the spread paid on 30,000 units.
    account = emulator.account_info()
    assert account.margin == 0.0
    assert account.balance == pytest.approx(1_000_000 - 30_000 * (quote.ask - quote.bid))


def test_on_a_netting_account_an_order_naming_the_position_reduces_it_but_never_reverses_it():
    emulator, _ = terminal()
    opened = send(emulator, volume=0.3).order
    assert send(emulator, buy=False, volume=0.1, position=opened).retcode == 10009
    [left] = emulator.positions_get()
    assert (left.ticket, left.volume) == (opened, 0.2)
    assert emulator.history_deals_get(position=opened)[-1].entry == emulator.DEAL_ENTRY_OUT

    too_much = send(emulator, buy=False, volume=0.5, position=opened)
    assert too_much.retcode == emulator.TRADE_RETCODE_INVALID_CLOSE_VOLUME
    reversing = send(emulator, buy=False, volume=0.5).order  # not naming it: a reversal
    assert send(emulator, volume=0.1, position=opened).retcode == 10036  # no longer its ticket
    assert send(emulator, volume=0.1, position=reversing).retcode == 10009


@pytest.mark.parametrize("hedging", [True, False], ids=["hedging", "netting"])
def test_a_close_is_refused_with_the_code_mt5_gives_and_executes_nothing(hedging):
    emulator, _ = terminal(hedging=hedging)
    opened = send(emulator, volume=0.1).order
    refusals = {
        "unknown ticket": send(emulator, buy=False, position=opened + 100).retcode,
        "another symbol": send(emulator, "GBPUSD", buy=False, position=opened).retcode,
        "more than held": send(emulator, buy=False, volume=0.2, position=opened).retcode,
        "the same side": send(emulator, position=opened).retcode,
    }
    assert refusals == {
        "unknown ticket": emulator.TRADE_RETCODE_POSITION_CLOSED,
        "another symbol": emulator.TRADE_RETCODE_POSITION_CLOSED,
        "more than held": emulator.TRADE_RETCODE_INVALID_CLOSE_VOLUME,
        "the same side": emulator.TRADE_RETCODE_INVALID,
    }
    assert list(emulator.venue.orders) == [opened]
    assert send(emulator, buy=False, position=opened).retcode == 10009
    assert send(emulator, buy=False, position=opened).retcode == 10036  # closed by now


@pytest.mark.parametrize("hedging", [True, False], ids=["hedging", "netting"])
def test_a_second_close_while_the_first_is_working_is_answered_10039(hedging):
    emulator, clock = terminal(hedging=hedging, fill_delay=5.0)
    opened = send(emulator).order
    clock.sleep(5.0)
    [position] = emulator.positions_get()  # the terminal looks: the order fills

    first = send(emulator, buy=False, position=position.ticket)
    assert first.retcode == emulator.TRADE_RETCODE_PLACED
    second = send(emulator, buy=False, position=position.ticket)
    assert second.retcode == emulator.TRADE_RETCODE_CLOSE_ORDER_EXIST
    removed = emulator.order_send({"action": emulator.TRADE_ACTION_REMOVE, "order": first.order})
    assert removed.retcode == emulator.TRADE_RETCODE_DONE
    again = send(emulator, buy=False, position=opened)
    clock.sleep(5.0)
    assert again.retcode == emulator.TRADE_RETCODE_PLACED and emulator.positions_get() == ()


def test_a_position_re_opened_for_swap_is_closed_by_its_new_ticket_under_its_identifier():
    emulator, clock = terminal(hedging=True)
    opened = send(emulator).order
    emulator._book.reopen_positions_for_swap(clock.now())
    [position] = emulator.positions_get()

    assert send(emulator, buy=False, position=opened).retcode == 10036  # the old ticket
    closed = send(emulator, buy=False, position=position.ticket)
    assert closed.retcode == emulator.TRADE_RETCODE_DONE
    assert emulator.history_deals_get(ticket=closed.order)[0].position_id == opened
    assert emulator.positions_get() == ()


steps = st.lists(
    st.one_of(
        st.tuples(st.just("open"), st.booleans(), st.sampled_from([0.1, 0.2, 0.5])),
        st.tuples(st.just("close"), st.integers(0, 5), st.sampled_from([0.1, 0.2, 0.5])),
        st.tuples(st.just("wait"), st.sampled_from([1.0, 4.0])),
    ),
    max_size=25,
)


@settings(max_examples=100, deadline=None)
@given(steps, st.booleans(), st.sampled_from([0.0, 3.0]))
def test_whatever_opens_and_closes_the_terminals_positions_agree_with_the_venues_account(
    operations, hedging, fill_delay
):
    emulator, clock = terminal(hedging=hedging, fill_delay=fill_delay)
    contract = 100_000
    for operation in operations:
        if operation[0] == "open":
            send(emulator, buy=operation[1], volume=operation[2])
        elif operation[0] == "close" and (positions := emulator.positions_get()):
            position = positions[operation[1] % len(positions)]
            send(
                emulator,
                buy=position.type == emulator.POSITION_TYPE_SELL,
                volume=operation[2],
                position=position.ticket,
            )  # may be refused (too much volume, a close already working): nothing changes
        elif operation[0] == "wait":
            clock.sleep(operation[1])
        shown = emulator.positions_get()
        held = [
            round(p.volume * contract) * (1 if p.type == emulator.POSITION_TYPE_BUY else -1)
            for p in shown
        ]
        exposure = emulator.venue.account.exposures.get("EURUSD")
        net, gross = (exposure.net, exposure.gross) if exposure else (0, 0)
        assert (sum(held), sum(map(abs, held))) == (net, gross)
        assert len(shown) <= 1 or hedging
        assert rebuilt(emulator) == shown


@pytest.mark.parametrize("mode", ["market", "instant"])
def test_mt5broker_lets_the_server_price_a_market_order_and_bounds_an_instant_one(mode):
    from brokers.mt5 import MT5Broker, MT5Config
    from engine.core.ports import OrderRequest
    from engine.schemas import Direction

    emulator, clock = terminal({"EURUSD": mode})
    sent: list[dict[str, Any]] = []
    send_order = emulator.order_send
    emulator.order_send = lambda request: sent.append(request) or send_order(request)
    broker = MT5Broker(emulator, MT5Config(history_sync_seconds=0), clock=clock)
    broker.start()
    quote = emulator.symbol_info_tick("EURUSD")
    report = broker.place_order(
        OrderRequest("AXEURUSD", "EURUSD", Direction.BUY, 100_000, 1.0, quote.ask, 5)
    )
    [request] = sent
    assert report.filled_units == 100_000
    if mode == "market":  # the server sets the price: no price, no deviation to honour
        assert request["price"] == 0.0 and "deviation" not in request
    else:
        assert request["price"] == quote.ask and request["deviation"] == 5
