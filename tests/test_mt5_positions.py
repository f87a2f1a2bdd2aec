"""Pending orders, stops and the server's own orders through the emulated terminal: each
test sends a request, reads the retcode, and checks what positions_get, orders_get and the
history then show — the emulator alone, through the module's functions."""

from __future__ import annotations

from typing import Any

import pytest

from engine.schemas import utc
from sim.account import AccountConfig, MarginMode
from sim.clock import SimPyClock
from sim.market import MarketConfig, NewsEvent, SymbolConfig, SyntheticMarket
from sim.mt5 import MT5Emulator, TerminalConfig
from sim.venue import Venue, VenueConfig
from sim.wire import Wire
from sim.world import DEFAULT_START

T0 = DEFAULT_START
MAGIC = 7


def terminal(
    hedging: bool = False, news: bool = False, **symbol: Any
) -> tuple[MT5Emulator, SimPyClock]:
    """A terminal on a still EURUSD at 1.08500; `news`: a 60-pip jump 30 s in."""
    clock = SimPyClock.starting_at(T0)
    jump = (NewsEvent(at=utc(T0 + 30), jump_pips=60.0, window_seconds=10.0),) if news else ()
    market = MarketConfig(
        symbols=(SymbolConfig(symbol="EURUSD", start_mid=1.085, volatility_pips=0.0, **symbol),),
        news=jump,
    )
    account = AccountConfig(margin_mode=MarginMode.HEDGING if hedging else MarginMode.NETTING)
    venue = Venue(SyntheticMarket(market, 1, T0), account, VenueConfig(), seed=1)
    emulator = MT5Emulator(venue, Wire(None, clock), TerminalConfig())
    assert emulator.initialize()
    return emulator, clock


def deal(emulator: MT5Emulator, buy: bool = True, **fields: Any) -> Any:
    quote = emulator.symbol_info_tick("EURUSD")
    request = {
        "action": emulator.TRADE_ACTION_DEAL,
        "symbol": "EURUSD",
        "volume": 0.1,
        "type": emulator.ORDER_TYPE_BUY if buy else emulator.ORDER_TYPE_SELL,
        "price": quote.ask if buy else quote.bid,
        "deviation": 10,
        "magic": MAGIC,
        "comment": "AX1",
        "type_filling": emulator.ORDER_FILLING_FOK,
    }
    return emulator.order_send(request | fields)


def pending(emulator: MT5Emulator, buy: bool = True, away: float = 0.0020, **fields: Any) -> Any:
    """A limit order `away` from the market on its good side, good for a minute."""
    quote = emulator.symbol_info_tick("EURUSD")
    request = {
        "action": emulator.TRADE_ACTION_PENDING,
        "symbol": "EURUSD",
        "volume": 0.1,
        "type": emulator.ORDER_TYPE_BUY_LIMIT if buy else emulator.ORDER_TYPE_SELL_LIMIT,
        "price": round(quote.ask - away if buy else quote.bid + away, 5),
        "magic": MAGIC,
        "comment": "AX2",
        "type_filling": emulator.ORDER_FILLING_RETURN,
        "type_time": emulator.ORDER_TIME_SPECIFIED,
        "expiration": emulator.config.server_seconds(T0 + 60),
    }
    return emulator.order_send(request | fields)


def sltp(emulator: MT5Emulator, ticket: int, sl: float = 0.0, tp: float = 0.0) -> Any:
    return emulator.order_send(
        {
            "action": emulator.TRADE_ACTION_SLTP,
            "symbol": "EURUSD",
            "position": ticket,
            "sl": sl,
            "tp": tp,
            "magic": MAGIC,
        }
    )


# -- pending orders ------------------------------------------------------------------------


def test_a_buy_limit_below_the_market_is_placed_and_listed_as_a_working_order():
    emulator, _ = terminal()
    placed = pending(emulator, sl=1.0800, tp=1.0900)
    assert placed.retcode == emulator.TRADE_RETCODE_PLACED
    assert placed.order > 0 and placed.deal == 0
    [order] = emulator.orders_get()
    assert order.ticket == placed.order
    assert (order.type, order.state) == (emulator.ORDER_TYPE_BUY_LIMIT, emulator.ORDER_STATE_PLACED)
    assert order.price_open == placed.request.price
    assert (order.sl, order.tp) == (1.08, 1.09)
    assert order.type_time == emulator.ORDER_TIME_SPECIFIED
    assert order.time_expiration == emulator.config.server_seconds(T0 + 60)
    assert order.volume_current == order.volume_initial == 0.1
    assert emulator.positions_get() == ()


def test_a_marketable_limit_is_refused_as_an_invalid_price_and_nothing_rests():
    emulator, _ = terminal()
    refused = pending(emulator, away=-0.0005)  # a buy limit above the ask
    assert refused.retcode == emulator.TRADE_RETCODE_INVALID_PRICE
    assert emulator.orders_get() == ()


def test_a_limit_nearer_the_market_than_the_stops_level_is_refused_as_an_invalid_price():
    emulator, _ = terminal(stops_level_points=50)
    assert emulator.symbol_info("EURUSD").trade_stops_level == 50
    refused = pending(emulator, away=0.0003)  # 30 points below the ask
    assert refused.retcode == emulator.TRADE_RETCODE_INVALID_PRICE
    assert pending(emulator, away=0.0060).retcode == emulator.TRADE_RETCODE_PLACED


@pytest.mark.parametrize(
    "lifetime",
    [
        {"expiration": 0},  # SPECIFIED without a time
        {"type_time": 1},  # ORDER_TIME_DAY: not in the symbol's expiration_mode
        {"expiration": "past"},
    ],
    ids=["no-time", "day", "past"],
)
def test_an_expiration_the_server_cannot_take_is_refused_as_invalid(lifetime):
    emulator, _ = terminal()
    if lifetime.get("expiration") == "past":
        lifetime = {"expiration": emulator.config.server_seconds(T0 - 10)}
    refused = pending(emulator, **lifetime)
    assert refused.retcode == emulator.TRADE_RETCODE_INVALID_EXPIRATION
    assert emulator.orders_get() == ()


def test_a_pending_order_the_market_never_reaches_expires_and_history_shows_it_expired():
    emulator, clock = terminal()
    placed = pending(emulator, expiration=emulator.config.server_seconds(T0 + 30))
    clock.sleep(60)
    assert emulator.orders_get() == ()
    [order] = emulator.history_orders_get(ticket=placed.order)
    assert order.state == emulator.ORDER_STATE_EXPIRED
    assert order.time_done == emulator.config.server_seconds(T0 + 30)
    assert emulator.history_deals_get(ticket=placed.order) == ()


def test_removing_a_pending_order_leaves_it_canceled_and_a_second_removal_is_refused():
    emulator, clock = terminal()
    placed = pending(emulator, type_time=emulator.ORDER_TIME_GTC, expiration=0)
    clock.sleep(5)
    remove = {"action": emulator.TRADE_ACTION_REMOVE, "order": placed.order, "magic": MAGIC}
    assert emulator.order_send(remove).retcode == emulator.TRADE_RETCODE_DONE
    assert emulator.orders_get() == ()
    [order] = emulator.history_orders_get(ticket=placed.order)
    assert order.state == emulator.ORDER_STATE_CANCELED
    assert order.type_time == emulator.ORDER_TIME_GTC
    assert emulator.order_send(remove).retcode == emulator.TRADE_RETCODE_INVALID_ORDER


def test_a_limit_order_the_market_comes_to_fills_and_opens_a_position_under_its_ticket():
    emulator, clock = terminal(news=True)
    buy = pending(emulator, away=0.0005)
    sell = pending(emulator, buy=False, away=0.0005, comment="AX3")
    clock.sleep(59)
    filled = [
        o
        for o in emulator.history_orders_get(ticket=buy.order)
        + emulator.history_orders_get(ticket=sell.order)
        if o.state == emulator.ORDER_STATE_FILLED
    ]
    assert filled, "the news jump reached neither limit"
    [position] = emulator.positions_get()
    assert position.identifier == filled[0].ticket
    [opening] = emulator.history_deals_get(ticket=filled[0].ticket)
    assert opening.entry == emulator.DEAL_ENTRY_IN and opening.position_id == filled[0].ticket
    limit = filled[0].price_open
    if filled[0].type == emulator.ORDER_TYPE_BUY_LIMIT:  # at the limit or better
        assert opening.price <= limit
    else:
        assert opening.price >= limit


def test_stop_orders_and_close_by_are_refused_as_prohibited_and_modify_as_invalid():
    emulator, _ = terminal()
    info = emulator.symbol_info("EURUSD")
    assert info.order_mode == 1 | 2 | 16 | 32  # market, limit, SL, TP: no stop, no close-by
    assert info.expiration_mode == 1 | 4  # GTC, SPECIFIED
    stop = pending(emulator, type=emulator.ORDER_TYPE_BUY_STOP, away=-0.0020)
    assert stop.retcode == emulator.TRADE_RETCODE_INVALID_ORDER
    close_by = {"action": emulator.TRADE_ACTION_CLOSE_BY, "position": 1, "position_by": 2}
    assert emulator.order_send(close_by).retcode == emulator.TRADE_RETCODE_INVALID_ORDER
    modify = {"action": emulator.TRADE_ACTION_MODIFY, "order": 1, "price": 1.08}
    assert emulator.order_send(modify).retcode == emulator.TRADE_RETCODE_INVALID


# -- stops on a position ---------------------------------------------------------------------


def test_a_deal_with_stops_opens_a_position_that_shows_them():
    emulator, _ = terminal()
    assert deal(emulator, sl=1.0800, tp=1.0900).retcode == emulator.TRADE_RETCODE_DONE
    [position] = emulator.positions_get()
    assert (position.sl, position.tp) == (1.08, 1.09)


def test_a_stop_loss_above_a_longs_bid_is_refused_as_invalid_stops():
    emulator, _ = terminal()
    refused = deal(emulator, sl=1.0900)
    assert refused.retcode == emulator.TRADE_RETCODE_INVALID_STOPS
    assert emulator.positions_get() == () and len(emulator.venue.orders) == 0


def test_a_symbol_without_stops_on_orders_shows_it_and_refuses_them_with_invalid_stops():
    emulator, _ = terminal(stops_on_order=False)
    assert emulator.symbol_info("EURUSD").order_mode & (16 | 32) == 0
    assert deal(emulator, sl=1.0800).retcode == emulator.TRADE_RETCODE_INVALID_STOPS
    opened = deal(emulator)
    [position] = emulator.positions_get()
    assert sltp(emulator, position.ticket, sl=1.0800).retcode == emulator.TRADE_RETCODE_DONE
    assert opened.retcode == emulator.TRADE_RETCODE_DONE


def test_sltp_sets_a_positions_stops_and_the_same_levels_again_are_no_changes():
    emulator, _ = terminal()
    deal(emulator)
    [position] = emulator.positions_get()
    assert sltp(emulator, position.ticket, 1.0800, 1.0900).retcode == emulator.TRADE_RETCODE_DONE
    [moved] = emulator.positions_get()
    assert (moved.sl, moved.tp) == (1.08, 1.09)
    again = sltp(emulator, position.ticket, 1.0800, 1.0900)
    assert again.retcode == emulator.TRADE_RETCODE_NO_CHANGES
    removed = sltp(emulator, position.ticket, 1.0800, 0.0)  # 0 removes the take-profit
    assert removed.retcode == emulator.TRADE_RETCODE_DONE
    assert (emulator.positions_get()[0].sl, emulator.positions_get()[0].tp) == (1.08, 0.0)


def test_sltp_on_a_position_that_is_not_open_is_position_closed():
    emulator, _ = terminal()
    refused = sltp(emulator, 12345, 1.0800)
    assert refused.retcode == emulator.TRADE_RETCODE_POSITION_CLOSED


def test_a_stop_within_the_freeze_level_of_the_market_cannot_be_moved():
    emulator, _ = terminal(freeze_level_points=50)
    assert emulator.symbol_info("EURUSD").trade_freeze_level == 50
    bid = emulator.symbol_info_tick("EURUSD").bid
    deal(emulator, sl=round(bid - 0.0003, 5))  # 30 points under the bid: frozen
    [position] = emulator.positions_get()
    frozen = sltp(emulator, position.ticket, round(bid - 0.0050, 5))
    assert frozen.retcode == emulator.TRADE_RETCODE_FROZEN


def test_a_deal_naming_a_hedged_position_closes_that_one_only():
    emulator, _ = terminal(hedging=True)
    deal(emulator, comment="AX1")
    deal(emulator, comment="AX2")
    first, second = emulator.positions_get()
    closed = deal(emulator, buy=False, position=second.ticket, comment="AX3")
    assert closed.retcode == emulator.TRADE_RETCODE_DONE
    assert [p.ticket for p in emulator.positions_get()] == [first.ticket]
    [out] = emulator.history_deals_get(ticket=closed.order)
    assert (out.entry, out.position_id) == (emulator.DEAL_ENTRY_OUT, second.identifier)
    gone = deal(emulator, buy=False, position=second.ticket, comment="AX4")
    assert gone.retcode == emulator.TRADE_RETCODE_POSITION_CLOSED


# -- the server's own orders: a stop that triggered -----------------------------------------------


def test_a_triggered_stop_shows_as_the_servers_order_and_deal_with_its_reason_and_level():
    emulator, clock = terminal(news=True)
    bid, ask = emulator.symbol_info_tick("EURUSD")[1:3]
    sl, tp = round(bid - 0.0010, 5), round(bid + 0.0010, 5)
    opened = deal(emulator, sl=sl, tp=tp)
    clock.sleep(59)
    assert emulator.positions_get() == ()
    entry, out = emulator.history_deals_get(position=opened.order)
    assert entry.entry == emulator.DEAL_ENTRY_IN and out.entry == emulator.DEAL_ENTRY_OUT
    assert out.reason in (emulator.DEAL_REASON_SL, emulator.DEAL_REASON_TP)
    stopped = out.reason == emulator.DEAL_REASON_SL
    level = sl if stopped else tp
    assert out.comment == f"[{'sl' if stopped else 'tp'} {level:.5f}]"
    assert out.magic == MAGIC and out.position_id == opened.order
    assert out.type == emulator.DEAL_TYPE_SELL
    if stopped:  # a gap fills at the first price past the level, beyond it
        assert out.price <= level
    [server_order] = emulator.history_orders_get(ticket=out.order)
    assert server_order.reason == (
        emulator.ORDER_REASON_SL if stopped else emulator.ORDER_REASON_TP
    )
    assert server_order.state == emulator.ORDER_STATE_FILLED
    assert (server_order.magic, server_order.comment) == (MAGIC, out.comment)
    assert server_order.position_id == opened.order
    assert [o.ticket for o in emulator.history_orders_get(position=opened.order)] == [
        opened.order,
        out.order,
    ]
    assert ask > bid


def test_another_logins_lists_never_show_the_servers_orders_for_this_accounts_positions():
    emulator, clock = terminal(news=True)
    bid = emulator.symbol_info_tick("EURUSD").bid
    deal(emulator, sl=round(bid - 0.0010, 5), tp=round(bid + 0.0010, 5))
    clock.sleep(59)
    own = emulator.history_deals_get(int(T0) - 60, int(T0) + 3600)
    assert len(own) == 2
    book = emulator.account.book
    other = type(book)(emulator.venue, emulator.config)  # a book with no orders of its own
    other.catch_up(clock.now())
    assert other.open == {} and other.positions == {}
