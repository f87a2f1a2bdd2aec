"""The emulated terminal's own behaviours, each against the emulator alone: a server clock that
moves with daylight saving, positional history dates, hidden symbols, trade permissions, a
terminal restart, another account logged in under a running program, and a history that
lags each (re)connection (mt5-reference.md, "Behaviours of real servers and terminals")."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from sim.clock import SimPyClock
from sim.latency import LatencyConfig
from sim.market import MarketConfig, SymbolConfig, SyntheticMarket
from sim.mt5 import AccountLogin, MT5Emulator, TerminalConfig
from sim.network import FaultKind, FaultWindow, LateExecution, Network, NetworkConfig
from sim.venue import Venue, VenueConfig
from sim.wire import Wire
from sim.world import DEFAULT_START

T0 = DEFAULT_START  # a Monday in January: the server's winter time
SUMMER = datetime(2024, 7, 10, 12, 0, tzinfo=UTC).timestamp()  # a Wednesday
# US daylight saving started on 10 March 2024, the EU's on 31 March.
BETWEEN_US_AND_EU_CHANGES = datetime(2024, 3, 20, 12, 0, tzinfo=UTC).timestamp()
HOUR = 3_600
NEW_YORK_CLOSE = {"server_time_zone": "America/New_York", "server_time_offset_seconds": 7 * HOUR}
EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))

MARKET = MarketConfig(
    symbols=(
        SymbolConfig(symbol="EURUSD", start_mid=1.085, volatility_pips=0.0),
        SymbolConfig(symbol="USDJPY", start_mid=145.0, digits=3, volatility_pips=0.0),
    )
)


def terminal(
    network: NetworkConfig | None = None,
    start: float = T0,
    venue: VenueConfig | None = None,
    **config: Any,
) -> tuple[MT5Emulator, SimPyClock]:
    """An emulator over a still market, initialized."""
    clock = SimPyClock.starting_at(start)
    prices = SyntheticMarket(MARKET, 1, start)
    wire = Wire(Network(network, 1) if network is not None else None, clock)
    emulator = MT5Emulator(Venue(prices, config=venue, seed=1), wire, TerminalConfig(**config))
    assert emulator.initialize()
    return emulator, clock


def buy_request(emulator: MT5Emulator, symbol: str = "EURUSD", comment: str = "AX1") -> Any:
    """A market buy of 0.1 lot, as a request dict (`symbol` as the terminal lists it)."""
    quote = emulator.venue.quote(emulator.config.venue_symbol(symbol) or symbol, emulator.clock())
    assert quote is not None
    return {
        "action": emulator.TRADE_ACTION_DEAL,
        "symbol": symbol,
        "volume": 0.1,
        "type": emulator.ORDER_TYPE_BUY,
        "price": quote.ask,
        "deviation": 10,
        "magic": 7,
        "comment": comment,
        "type_filling": emulator.ORDER_FILLING_IOC,
    }


def buy(emulator: MT5Emulator, symbol: str = "EURUSD", comment: str = "AX1") -> Any:
    return emulator.order_send(buy_request(emulator, symbol, comment))


# -- the server's clock -------------------------------------------------------------------------


@pytest.mark.parametrize(("start", "hours"), [(T0, 2), (SUMMER, 3), (BETWEEN_US_AND_EU_CHANGES, 3)])
def test_the_server_clock_is_utc_plus_2_in_winter_and_plus_3_in_summer_on_us_dates(start, hours):
    emulator, clock = terminal(start=start, **NEW_YORK_CLOSE)
    quote = emulator.venue.quote("EURUSD", clock.now())
    tick = emulator.symbol_info_tick("EURUSD")
    assert tick.time_msc - round(quote.time * 1000) == hours * HOUR * 1000
    assert emulator.symbol_info("EURUSD").time == tick.time


def test_a_server_on_eu_dates_is_an_hour_behind_one_on_us_dates_for_three_weeks_of_march():
    emulator, clock = terminal(start=BETWEEN_US_AND_EU_CHANGES, server_time_zone="Europe/Helsinki")
    quote = emulator.venue.quote("EURUSD", clock.now())
    assert emulator.symbol_info_tick("EURUSD").time == int(quote.time) + 2 * HOUR


def test_new_york_five_pm_is_the_servers_midnight_in_summer_and_in_winter():
    summer, winter = datetime(2024, 7, 10, 21, tzinfo=UTC), datetime(2024, 1, 9, 22, tzinfo=UTC)
    for five_pm_in_new_york in (summer, winter):
        emulator, _ = terminal(start=five_pm_in_new_york.timestamp(), **NEW_YORK_CLOSE)
        shown = datetime.fromtimestamp(emulator.symbol_info_tick("EURUSD").time, UTC)
        assert (shown.hour, shown.minute) == (0, 0)


def test_deals_and_history_windows_are_in_the_servers_summer_time():
    emulator, _ = terminal(start=SUMMER, **NEW_YORK_CLOSE)
    sent = buy(emulator)
    [deal] = emulator.history_deals_get(ticket=sent.order)
    assert deal.time == int(SUMMER) + 3 * HOUR
    [order] = emulator.history_orders_get(ticket=sent.order)
    assert order.time_setup == order.time_done == deal.time
    # A window is server time written as UTC, both ends included (the MQL5 book, HistorySelect).
    server_now = datetime(2024, 7, 10, 15, 0, tzinfo=UTC)
    assert emulator.history_deals_get(server_now, server_now) == (deal,)
    assert emulator.history_orders_get(server_now, server_now) == (order,)
    utc_now = datetime(2024, 7, 10, 12, 0, tzinfo=UTC)
    assert emulator.history_deals_get(utc_now, utc_now) == ()


def test_a_fixed_offset_still_works_alone_and_an_unknown_zone_is_refused():
    emulator, _ = terminal(server_time_offset_seconds=2 * HOUR, start=SUMMER)
    assert emulator.symbol_info_tick("EURUSD").time == int(SUMMER) + 2 * HOUR
    with pytest.raises(ValidationError, match="no IANA time zone"):
        TerminalConfig(server_time_zone="Europe/Atlantis")


# -- history argument forms -----------------------------------------------------------------


@pytest.mark.parametrize("function", ["history_orders_get", "history_deals_get"])
def test_history_dates_given_as_keywords_are_invalid_parameters_as_in_the_c_extension(function):
    emulator, _ = terminal()
    buy(emulator)
    history = getattr(emulator, function)
    start, end = EVER
    for call in (
        lambda: history(date_from=start, date_to=end),
        lambda: history(start, date_to=end),
        lambda: history(start, end, symbol="EURUSD"),  # no such parameter: group= filters
        lambda: history(start, end, "EURUSD"),  # group is a keyword
    ):
        assert call() is None
        assert emulator.last_error() == (emulator.RES_E_INVALID_PARAMS, "Invalid parameters")
    assert len(history(start, end, group="EUR*")) == 1
    assert emulator.last_error() == (emulator.RES_S_OK, "Success")
    assert history(start, end, group="USDJPY") == ()


def test_a_history_window_includes_both_ends_to_the_second():
    emulator, clock = terminal()
    clock.sleep(10.0)
    sent = buy(emulator)
    at = int(T0) + 10  # server time is UTC here
    [deal] = emulator.history_deals_get(at, at)
    assert deal.order == sent.order
    assert emulator.history_deals_get(at - 10, at - 1) == ()
    assert emulator.history_deals_get(at + 1, at + 10) == ()
    assert [o.ticket for o in emulator.history_orders_get(at, at)] == [sent.order]


# -- trade permissions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("forbid", "code"),
    [
        (lambda e: setattr(e, "algo_trading", False), 10027),  # CLIENT_DISABLES_AT
        (lambda e: setattr(e, "tradeapi_disabled", True), 10027),
        (lambda e: setattr(e.account, "trade_allowed", False), 10017),  # TRADE_DISABLED
        (lambda e: setattr(e.account, "trade_expert", False), 10026),  # SERVER_DISABLES_AT
    ],
    ids=["algo trading button", "python api disabled", "investor login", "no expert trading"],
)
def test_each_of_the_four_switches_forbids_trading_with_its_own_code(forbid, code):
    emulator, _ = terminal()
    forbid(emulator)
    sent = buy(emulator)
    assert sent.retcode == code and sent.order == 0
    assert emulator.order_check(buy_request(emulator)).retcode == code
    assert emulator.venue.orders == {}


def test_the_switches_show_where_a_careful_client_looks_before_trading():
    emulator, _ = terminal(tradeapi_disabled=True, trade_allowed=False, trade_expert=False)
    terminal_info, account_info = emulator.terminal_info(), emulator.account_info()
    assert terminal_info.trade_allowed is True and terminal_info.tradeapi_disabled is True
    assert account_info.trade_allowed is False and account_info.trade_expert is False
    emulator.algo_trading = False
    assert emulator.terminal_info().trade_allowed is False


def test_the_codes_for_a_forbidden_account_are_configurable_but_must_refuse():
    emulator, _ = terminal(trade_allowed=False, trade_disabled_code=10044)  # CLOSE_ONLY
    assert buy(emulator).retcode == 10044
    with pytest.raises(ValidationError, match="not a TRADE_RETCODE that refuses"):
        TerminalConfig(expert_disabled_code=10009)


# -- symbols out of the Market Watch ------------------------------------------------------------


def test_a_hidden_symbol_has_no_tick_until_selected_but_its_info_answers_not_visible():
    emulator, _ = terminal(hidden_symbols=frozenset({"USDJPY"}))
    info = emulator.symbol_info("USDJPY")
    assert (info.visible, info.select, info.bid, info.ask) == (False, False, 0.0, 0.0)
    assert info.digits == 3 and info.volume_min > 0  # the specification is there
    assert emulator.symbol_info_tick("USDJPY") is None
    assert emulator.symbol_info("EURUSD").visible is True

    assert emulator.symbol_select("USDJPY", True) is True
    assert emulator.symbol_info("USDJPY").visible is True
    assert emulator.symbol_info_tick("USDJPY").bid > 100


def test_an_order_for_a_hidden_symbol_is_refused_by_default_and_nothing_is_sent():
    emulator, _ = terminal(hidden_symbols=frozenset({"USDJPY"}))
    assert buy(emulator, "USDJPY").retcode == emulator.TRADE_RETCODE_INVALID
    assert emulator.venue.orders == {}
    assert emulator.symbol_info("USDJPY").visible is False


def test_a_terminal_may_be_configured_to_select_a_hidden_symbol_to_trade_it():
    emulator, _ = terminal(hidden_symbols=frozenset({"USDJPY"}), hidden_symbol_orders="select")
    assert buy(emulator, "USDJPY").retcode == emulator.TRADE_RETCODE_DONE
    assert emulator.symbol_info("USDJPY").visible is True


def test_a_symbol_with_an_open_position_cannot_be_taken_out_of_the_market_watch():
    emulator, _ = terminal()
    buy(emulator, "EURUSD")
    assert emulator.symbol_select("EURUSD", False) is False
    assert emulator.last_error()[0] == emulator.RES_E_FAIL
    assert emulator.symbol_select("USDJPY", False) is True
    assert emulator.symbol_info_tick("USDJPY") is None


# -- another account under a running program ----------------------------------------------------

SECOND = {"login": 5_100_002, "password": SecretStr("second"), "server": "Arbitrex-Sim"}


def test_login_switches_the_terminal_to_another_account_which_account_info_shows():
    emulator, _ = terminal(other_accounts=(AccountLogin(**SECOND),))
    assert emulator.account_info().login == 5_100_001
    assert emulator.login(5_100_002, password="second", server="Arbitrex-Sim") is True
    assert emulator.account_info().login == 5_100_002


def test_orders_sent_on_one_account_are_never_in_anothers_lists_or_history():
    emulator, _ = terminal(other_accounts=(AccountLogin(**SECOND),))
    first = buy(emulator, comment="AXfirst")
    send = emulator.order_send  # taken from the module before the login: still the module's
    emulator.login(5_100_002, password="second")
    second = send(buy_request(emulator, comment="AXsecond"))
    assert second.retcode == emulator.TRADE_RETCODE_DONE
    assert [o.comment for o in emulator.history_orders_get(*EVER)] == ["AXsecond"]
    assert emulator.history_deals_get(ticket=first.order) == ()
    assert [p.identifier for p in emulator.positions_get()] == [second.order]

    emulator.login(5_100_001, password="emulator")
    assert [o.comment for o in emulator.history_orders_get(*EVER)] == ["AXfirst"]
    assert [p.identifier for p in emulator.positions_get()] == [first.order]
    assert len(emulator.venue.orders) == 2  # one venue: both traded on it


def test_a_failed_login_leaves_the_terminal_on_its_account():
    emulator, _ = terminal(other_accounts=(AccountLogin(**SECOND),))
    assert emulator.login(5_100_002, password="wrong") is False
    assert emulator.last_error() == (emulator.RES_E_AUTH_FAILED, "Terminal: Authorization failed")
    assert emulator.login(5_100_003, password="second") is False
    assert emulator.account_info().login == 5_100_001


def test_an_investor_login_to_another_account_can_read_but_not_trade():
    investor = AccountLogin(**SECOND, trade_allowed=False)
    emulator, _ = terminal(other_accounts=(investor,))
    assert emulator.initialize(login=5_100_002, password="second")
    assert emulator.account_info().trade_allowed is False
    assert buy(emulator).retcode == emulator.TRADE_RETCODE_TRADE_DISABLED


# -- a terminal restart -------------------------------------------------------------------------


def test_after_a_terminal_restart_every_call_fails_with_no_ipc_connection_until_initialize():
    emulator, _ = terminal()
    request = buy_request(emulator)
    emulator.restart_terminal()
    no_ipc = (emulator.RES_E_INTERNAL_FAIL_CONNECT, "No IPC connection")
    for call in (
        emulator.version,
        emulator.terminal_info,
        emulator.account_info,
        lambda: emulator.symbol_info("EURUSD"),
        lambda: emulator.symbol_info_tick("EURUSD"),
        lambda: emulator.order_check(request),
        lambda: emulator.order_send(request),
        emulator.orders_get,
        emulator.positions_get,
        lambda: emulator.history_orders_get(*EVER),
        lambda: emulator.history_deals_get(*EVER),
    ):
        assert call() is None
        assert emulator.last_error() == no_ipc
    assert emulator.symbol_select("EURUSD") is False
    assert emulator.login(5_100_001, password="emulator") is False
    assert emulator.venue.orders == {}

    assert emulator.initialize() is True
    assert emulator.account_info().login == 5_100_001


def test_what_the_terminal_had_before_it_closed_is_there_at_once_after_a_restart():
    emulator, clock = terminal(history_sync_seconds=30.0)
    sent = buy(emulator)
    emulator.restart_terminal()
    clock.sleep(5.0)
    assert emulator.initialize()
    assert [d.order for d in emulator.history_deals_get(*EVER)] == [sent.order]


# -- history that lags a (re)connection -----------------------------------------------------------


def ticket_of_the_only_order(emulator: MT5Emulator) -> int:
    [ticket] = emulator.venue.orders
    return ticket


def test_an_order_executed_while_the_terminal_was_down_reaches_its_history_after_the_sync():
    late = LateExecution(probability=1.0, min_seconds=5.0, max_seconds=5.0)
    network = NetworkConfig(reply_loss=1.0, late_execution=late)
    emulator, clock = terminal(network, history_sync_seconds=30.0)
    emulator.initialize(timeout=1_000)
    assert buy(emulator) is None  # IPC timeout: the server executes it 5 s after it arrived
    emulator.restart_terminal()
    clock.sleep(10.0)
    ticket = ticket_of_the_only_order(emulator)  # executed while the terminal was down
    assert emulator.initialize(timeout=1_000)
    restarted = clock.now()

    assert emulator.history_orders_get(ticket=ticket) == ()
    assert emulator.history_deals_get(*EVER) == ()
    # Positions are not history: the server sends them with the connection.
    assert [p.identifier for p in emulator.positions_get()] == [ticket]
    clock.sleep(restarted + 30.0 - clock.now() - 0.001)
    assert emulator.history_deals_get(ticket=ticket) == ()
    clock.sleep(0.001)
    assert [o.ticket for o in emulator.history_orders_get(ticket=ticket)] == [ticket]
    assert [d.order for d in emulator.history_deals_get(*EVER)] == [ticket]


def test_connected_again_is_no_proof_that_the_history_is_complete():
    hang = FaultWindow(start=T0 + 10, end=T0 + 70, kind=FaultKind.HANG)
    network = NetworkConfig(latency=LatencyConfig.constant(0.0), faults=(hang,))
    emulator, clock = terminal(
        network, venue=VenueConfig(fill_delay_seconds=30.0), history_sync_seconds=20.0
    )
    placed = buy(emulator)  # rests 30 s: fills at T0 + 30, while the link is down
    assert placed.retcode == emulator.TRADE_RETCODE_PLACED
    clock.sleep(40.0)
    assert emulator.terminal_info().connected is False
    assert emulator.history_orders_get(ticket=placed.order) == ()

    clock.sleep(30.0)  # T0 + 70: connected again
    assert emulator.terminal_info().connected is True
    assert emulator.history_orders_get(ticket=placed.order) == ()
    assert emulator.history_deals_get(position=placed.order) == ()
    assert [p.identifier for p in emulator.positions_get()] == [placed.order]
    clock.sleep(20.0)  # T0 + 90: synchronised
    [order] = emulator.history_orders_get(ticket=placed.order)
    assert order.state == emulator.ORDER_STATE_FILLED
    assert len(emulator.history_deals_get(position=placed.order)) == 1


def test_an_order_executed_just_before_the_link_broke_is_never_shown_until_the_sync():
    refuse = FaultWindow(start=T0 + 10, end=T0 + 20, kind=FaultKind.REFUSE)
    network = NetworkConfig(latency=LatencyConfig.constant(0.0), faults=(refuse,))
    emulator, clock = terminal(network, history_sync_seconds=5.0, history_sync_margin_seconds=1.0)
    clock.sleep(8.0)
    early = buy(emulator)  # T0 + 8: its trade transaction arrives
    clock.sleep(1.5)
    late = buy(emulator)  # T0 + 9.5: its transaction is lost when the link breaks at T0 + 10
    assert late.retcode == emulator.TRADE_RETCODE_DONE
    assert [o.ticket for o in emulator.history_orders_get(*EVER)] == [early.order]
    clock.sleep(15.5 - 0.001)  # T0 + 24.999: 5 s after reconnecting, less a millisecond
    assert [o.ticket for o in emulator.history_orders_get(*EVER)] == [early.order]
    clock.sleep(0.001)
    assert [o.ticket for o in emulator.history_orders_get(*EVER)] == [early.order, late.order]


def test_another_accounts_history_lags_the_login_for_what_happened_while_away():
    late = LateExecution(probability=1.0, min_seconds=5.0, max_seconds=5.0)
    network = NetworkConfig(reply_loss=1.0, late_execution=late)
    second = AccountLogin(**SECOND)
    emulator, clock = terminal(network, history_sync_seconds=30.0, other_accounts=(second,))
    emulator.initialize(timeout=1_000)
    assert buy(emulator) is None  # executed 5 s later, on the first account
    assert emulator.login(5_100_002, password="second")
    clock.sleep(10.0)
    ticket = ticket_of_the_only_order(emulator)
    assert emulator.history_orders_get(*EVER) == ()  # not this account's order
    assert emulator.login(5_100_001, password="emulator")
    assert emulator.history_orders_get(ticket=ticket) == ()
    clock.sleep(30.0)
    assert [o.ticket for o in emulator.history_orders_get(ticket=ticket)] == [ticket]


def test_with_no_sync_time_the_history_is_complete_at_once_even_while_disconnected():
    refuse = FaultWindow(start=T0 + 10, end=T0 + 70, kind=FaultKind.REFUSE)
    network = NetworkConfig(latency=LatencyConfig.constant(0.0), faults=(refuse,))
    emulator, clock = terminal(network, venue=VenueConfig(fill_delay_seconds=30.0))
    placed = buy(emulator)
    clock.sleep(40.0)
    assert emulator.terminal_info().connected is False
    assert len(emulator.history_deals_get(ticket=placed.order)) == 1


def test_a_broker_that_suffixes_its_symbols_lists_and_trades_them_only_by_those_names():
    emulator, _ = terminal(symbol_suffix=".m")
    assert emulator.symbol_info("EURUSD") is None and emulator.symbol_info("EURUSD.m").name == (
        "EURUSD.m"
    )
    assert emulator.order_send(buy_request(emulator, symbol="EURUSD")).retcode == 10013
    done = emulator.order_send(buy_request(emulator, symbol="EURUSD.m"))
    assert done.retcode == emulator.TRADE_RETCODE_DONE
    [deal] = emulator.history_deals_get(*EVER)
    [position] = emulator.positions_get(symbol="EURUSD.m")
    assert deal.symbol == position.symbol == "EURUSD.m"
