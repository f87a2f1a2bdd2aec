"""The quote tape fetched after the fact from MT5: the emulator's `copy_ticks_range` answers
as the module does, from its market's own history, and the broker and `arbitrex audit
fetch-tape` turn its ticks into one sample a second, in UTC, in the store."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from brokers.mt5 import MT5Broker, MT5Config
from brokers.mt5.server_clock import ServerClock, ServerTime
from brokers.mt5.ticks import fetch_quote_tape, last_of_each_second
from engine.core.ports import BrokerRejected
from engine.store import QuoteSample, open_database
from scenarios.cli.app import app
from sim.clock import SimPyClock
from sim.market import MarketConfig, SyntheticMarket
from sim.mt5 import MT5Emulator, TerminalConfig
from sim.venue import Venue
from sim.wire import Wire
from sim.world import DEFAULT_START

T0 = DEFAULT_START  # a Monday in January: Helsinki, the server's zone here, is at UTC+2
HELSINKI = TerminalConfig(server_time_zone="Europe/Helsinki")
SERVER = 7_200  # seconds the server's clock is ahead of UTC
SEED = 4


def terminal(config: TerminalConfig = HELSINKI) -> tuple[MT5Emulator, SimPyClock]:
    clock = SimPyClock.starting_at(T0)
    venue = Venue(SyntheticMarket(MarketConfig(), SEED, T0), seed=SEED)
    emulator = MT5Emulator(venue, Wire(None, clock), config)
    emulator.initialize()
    return emulator, clock


def server_time(utc: float) -> datetime:
    """A window's end as programs pass it: the server's clock reading, as a datetime."""
    return datetime.fromtimestamp(utc + SERVER, UTC)


def market_ticks(
    symbol: str, start: float, end: float, origin: float = T0
) -> list[tuple[float, float, float]]:
    """(time, bid, ask) of every change of quote in [start, end], from a market of the same
    seed that started at `origin`: what the emulator's history must hold."""
    market = SyntheticMarket(MarketConfig(), SEED, origin)
    first = market.quote(symbol, origin)
    assert first is not None
    strikes = [first, *market.quotes_between(symbol, origin, end)]
    changes = [strikes[0]] + [
        now for before, now in pairwise(strikes) if (now.bid, now.ask) != (before.bid, before.ask)
    ]
    return [(q.time, q.bid, q.ask) for q in changes if start <= q.time <= end]


# -- the emulator's copy_ticks_range -----------------------------------------------------


def test_copy_ticks_range_answers_the_modules_array_of_the_markets_ticks_in_server_time():
    emulator, clock = terminal()
    clock.sleep(120.0)

    ticks = emulator.copy_ticks_range(
        "EURUSD", server_time(T0 + 30), server_time(T0 + 90), emulator.COPY_TICKS_INFO
    )

    assert ticks.dtype.names == (
        "time", "bid", "ask", "last", "volume", "time_msc", "flags", "volume_real"
    )  # fmt: skip
    assert [ticks.dtype[n].str for n in ticks.dtype.names] == [
        "<i8", "<f8", "<f8", "<f8", "<u8", "<i8", "<u4", "<f8"
    ]  # fmt: skip
    expected = market_ticks("EURUSD", T0 + 30, T0 + 90)
    assert len(ticks) == len(expected) > 60
    assert [(t["time_msc"] / 1000 - SERVER, t["bid"], t["ask"]) for t in ticks] == expected
    assert (ticks["time"] == ticks["time_msc"] // 1000).all()
    assert (ticks["last"] == 0).all() and (ticks["volume"] == 0).all()
    assert emulator.last_error() == (emulator.RES_S_OK, "Success")


def test_each_ticks_flags_say_which_side_changed():
    emulator, clock = terminal()
    clock.sleep(60.0)

    ticks = emulator.copy_ticks_range("USDJPY", 0, 2**40, emulator.COPY_TICKS_ALL)

    bid, ask = emulator.TICK_FLAG_BID, emulator.TICK_FLAG_ASK
    assert ticks["flags"][0] == bid | ask
    for before, tick in pairwise(ticks):
        changed = (tick["bid"] != before["bid"]) * bid | (tick["ask"] != before["ask"]) * ask
        assert tick["flags"] == changed != 0


def test_the_window_holds_both_its_ends_and_no_tick_of_the_future():
    emulator, clock = terminal()
    clock.sleep(30.0)
    everything = emulator.copy_ticks_range("EURUSD", 0, 2**40, emulator.COPY_TICKS_INFO)
    first, last = (int(t) // 1000 for t in everything["time_msc"][[0, -1]])

    exact = emulator.copy_ticks_range("EURUSD", first, last, emulator.COPY_TICKS_INFO)
    later = emulator.copy_ticks_range("EURUSD", last + 1, 2**40, emulator.COPY_TICKS_INFO)

    assert everything["time_msc"][-1] / 1000 - SERVER <= T0 + 30.0
    assert exact["time_msc"][0] == everything["time_msc"][0]
    assert exact["time_msc"][-1] >= last * 1000
    assert len(later) == 0 and later.dtype == everything.dtype
    assert emulator.last_error() == (emulator.RES_S_OK, "Success")


def test_the_history_outlives_the_market_the_venue_moved_on():
    emulator, clock = terminal()
    clock.sleep(600.0)
    emulator.venue.quote("EURUSD", T0 + 600.0)  # the venue's market walks on to now

    ticks = emulator.copy_ticks_range(
        "EURUSD", server_time(T0), server_time(T0 + 60), emulator.COPY_TICKS_INFO
    )

    assert [(t["time_msc"] / 1000 - SERVER, t["bid"], t["ask"]) for t in ticks] == (
        market_ticks("EURUSD", T0, T0 + 60)
    )


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda m: m.copy_ticks_range("XAUXAU", T0, T0 + 9, m.COPY_TICKS_INFO), -4),
        (lambda m: m.copy_ticks_range("EURUSD", 1.5, T0 + 9, m.COPY_TICKS_INFO), -2),
        (lambda m: m.copy_ticks_range("EURUSD", 0, "later", m.COPY_TICKS_INFO), -2),
        (lambda m: m.copy_ticks_range("EURUSD", 0, 9, 7), -2),
        (lambda m: m.copy_ticks_range("EURUSD", 0, 9), -2),
        (lambda m: m.copy_ticks_range("EURUSD", 0, date_to=9, flags=m.COPY_TICKS_INFO), -2),
    ],
)
def test_a_call_the_terminal_refuses_answers_none_and_says_why(call, error):
    emulator, _ = terminal()

    assert call(emulator) is None
    assert emulator.last_error()[0] == error


def test_a_symbol_out_of_the_market_watch_or_a_terminal_gone_has_no_ticks():
    emulator, _ = terminal(HELSINKI.model_copy(update={"hidden_symbols": ("GBPUSD",)}))

    assert emulator.copy_ticks_range("GBPUSD", 0, 2**40, emulator.COPY_TICKS_INFO) is None
    emulator.restart_terminal()
    assert emulator.copy_ticks_range("EURUSD", 0, 2**40, emulator.COPY_TICKS_INFO) is None
    assert emulator.last_error()[0] == emulator.RES_E_INTERNAL_FAIL_CONNECT


def test_an_fx_market_prints_no_trade_ticks():
    emulator, clock = terminal()
    clock.sleep(30.0)

    trades = emulator.copy_ticks_range("EURUSD", 0, 2**40, emulator.COPY_TICKS_TRADE)

    assert trades is not None and len(trades) == 0


# -- the broker: one sample a second, in UTC ---------------------------------------------


def broker_on(emulator: MT5Emulator, clock: SimPyClock, **config: Any) -> MT5Broker:
    broker = MT5Broker(emulator, MT5Config(history_sync_seconds=0, **config), clock=clock)
    broker.start()
    return broker


def test_the_broker_keeps_the_last_tick_of_each_second_in_utc():
    emulator, clock = terminal()
    broker = broker_on(emulator, clock)
    assert broker.learn_server_offset(["EURUSD"])
    clock.sleep(120.0)

    samples = broker.quote_samples("EURUSD", T0 + 10.5, T0 + 70.5)

    expected: dict[int, QuoteSample] = {}
    for time, bid, ask in market_ticks("EURUSD", T0 + 10.5, T0 + 70.5):
        if time < T0 + 70.5:
            expected[int(time)] = QuoteSample("EURUSD", time, bid, ask)
    assert samples == list(expected.values()) and len(samples) > 40


def test_without_the_servers_offset_the_samples_are_off_by_it():
    emulator, clock = terminal()
    broker = broker_on(emulator, clock, learn_server_offset=False)
    clock.sleep(120.0)

    misread = broker.quote_samples("EURUSD", T0 + SERVER, T0 + SERVER + 60)

    assert misread and all(T0 + SERVER <= q.time < T0 + SERVER + 60 for q in misread)
    assert misread == [
        QuoteSample(q.symbol, q.time + SERVER, q.bid, q.ask)
        for q in broker_on(emulator, clock, server_time_offset_seconds=SERVER).quote_samples(
            "EURUSD", T0, T0 + 60
        )
    ]


# A server at UTC+2 in winter and UTC+3 in summer on US dates; the US change of 2024 is on
# Sunday 10 March at 07:00 UTC, inside the weekend: Friday's last hours are at +2, the
# market's reopening that Sunday evening at +3.
NEW_YORK_CLOSE = {"server_time_zone": "America/New_York", "server_time_offset_seconds": 25_200}
FRIDAY_BEFORE = datetime(2024, 3, 8, 20, 58, tzinfo=UTC).timestamp()  # close: 22:00
SUNDAY_AFTER = datetime(2024, 3, 10, 21, 5, tzinfo=UTC).timestamp()


def friday_history_read_after_the_change(**config: Any) -> list[QuoteSample]:
    """A minute of Friday's ticks as a broker configured with `config` fetches them after
    the change, once it has learnt the server's offset from fresh ticks."""
    clock = SimPyClock.starting_at(FRIDAY_BEFORE)
    venue = Venue(SyntheticMarket(MarketConfig(), SEED, FRIDAY_BEFORE), seed=SEED)
    emulator = MT5Emulator(venue, Wire(None, clock), TerminalConfig(**NEW_YORK_CLOSE))
    emulator.initialize()
    clock.sleep(SUNDAY_AFTER - FRIDAY_BEFORE)
    broker = broker_on(emulator, clock, **config)
    assert broker.learn_server_offset(["EURUSD"])
    return broker.quote_samples("EURUSD", FRIDAY_BEFORE + 0.5, FRIDAY_BEFORE + 60.5)


def struck_on_friday(start: float, end: float, shown_at: float = 0.0) -> list[QuoteSample]:
    """The last quote of each second of [start, end) as the market struck them, stamped
    `shown_at` seconds off their time."""
    last = {
        int(t): QuoteSample("EURUSD", t + shown_at, bid, ask)
        for t, bid, ask in market_ticks("EURUSD", start, end, origin=FRIDAY_BEFORE)
        if t < end
    }
    return list(last.values())


def test_with_the_servers_zone_a_history_across_a_daylight_saving_change_reads_right():
    fetched = friday_history_read_after_the_change(**NEW_YORK_CLOSE)
    assert fetched == struck_on_friday(FRIDAY_BEFORE + 0.5, FRIDAY_BEFORE + 60.5)
    assert len(fetched) > 40


def test_without_it_the_far_side_of_the_change_reads_an_hour_off():
    fetched = friday_history_read_after_the_change()  # the ticks teach +3 h, the offset now
    # What was read as 20:58 is what the market struck at 21:58.
    hour_later = struck_on_friday(FRIDAY_BEFORE + 3_600.5, FRIDAY_BEFORE + 3_660.5, -3_600)
    assert fetched == hour_later and len(fetched) > 40


def test_ticks_that_disagree_with_the_configured_zone_win_and_say_so(caplog):
    emulator, clock = terminal()  # Helsinki: UTC+2 in January
    broker = broker_on(emulator, clock, server_time_zone="Asia/Tokyo")  # UTC+9: wrong
    clock.sleep(120.0)
    with caplog.at_level("ERROR"):
        assert broker.learn_server_offset(["EURUSD"])
    assert "the ticks' offset is used while they disagree" in caplog.text

    samples = broker.quote_samples("EURUSD", T0 + 10.5, T0 + 70.5)
    expected = {
        int(t): QuoteSample("EURUSD", t, bid, ask)
        for t, bid, ask in market_ticks("EURUSD", T0 + 10.5, T0 + 70.5)
        if t < T0 + 70.5
    }
    assert samples == list(expected.values())


def test_the_rule_comes_back_once_the_ticks_agree_with_it_again():
    clock = ServerClock(ServerTime("America/New_York", 25_200), 5.0, learn=True)
    friday, sunday = FRIDAY_BEFORE, SUNDAY_AFTER  # at +2 h and +3 h by the rule

    def tick(offset: float, now: float) -> None:
        clock.observe("EURUSD", now + offset - 1.0, now)  # a first read of the symbol
        clock.observe("EURUSD", now + offset, now)  # then a tick that moved

    tick(3_600, sunday)  # one tick that says +1 h: it wins while it stands
    assert clock.utc(sunday + 3_600) == sunday
    tick(10_800, sunday + 60)  # the ticks agree with the rule again
    assert clock.utc(friday + 7_200) == friday and clock.utc(sunday + 10_800) == sunday


def test_a_server_zone_that_does_not_exist_is_refused_when_configured():
    with pytest.raises(ValueError, match="no IANA time zone named 'Mars/Olympus'"):
        MT5Config(server_time_zone="Mars/Olympus")


def test_a_symbol_the_terminal_does_not_list_is_refused():
    emulator, clock = terminal()
    with pytest.raises(BrokerRejected, match="does not list XAUXAU"):
        broker_on(emulator, clock).quote_samples("XAUXAU", T0, T0 + 60)


def test_the_last_tick_of_a_second_is_taken_once_both_sides_are_quoted():
    ticks = np.zeros(4, dtype=[("time_msc", "<i8"), ("bid", "<f8"), ("ask", "<f8")])
    ticks["time_msc"] = [2_500, 1_250, 1_750, 2_250]  # out of order: sorted first
    ticks["bid"] = [1.2, 1.1, 1.15, 0.0]
    ticks["ask"] = [1.3, 0.0, 1.25, 1.35]

    samples = last_of_each_second("EURUSD", ticks, lambda s: s - 1.0, 0.0, 10.0)

    assert samples == [
        QuoteSample("EURUSD", 0.75, 1.15, 1.25),
        QuoteSample("EURUSD", 1.5, 1.2, 1.3),
    ]


def test_a_period_is_fetched_in_chunks_without_splitting_a_second(tmp_path):
    emulator, clock = terminal()
    broker = broker_on(emulator, clock)
    broker.learn_server_offset(["EURUSD"])
    clock.sleep(120.0)
    whole, chunked = open_database("memory://"), open_database("memory://")

    counts = fetch_quote_tape(broker, whole, ["EURUSD", "USDJPY"], T0 + 0.5, T0 + 100.5)
    fetch_quote_tape(broker, chunked, ["EURUSD", "USDJPY"], T0 + 0.5, T0 + 100.5, chunk_seconds=7)

    assert chunked.quote_tape() == whole.quote_tape()
    assert counts["USDJPY"] == len([q for q in whole.quote_tape() if q.symbol == "USDJPY"]) > 50


def test_a_period_longer_than_the_tape_keeps_is_refused():
    emulator, clock = terminal()
    database = open_database("memory://", quote_retention_seconds=3_600.0)
    with pytest.raises(ValueError, match=r"spans 0\.0833 days; the quote tape keeps 0\.0417 days"):
        fetch_quote_tape(broker_on(emulator, clock), database, ["EURUSD"], T0, T0 + 7_200)


# -- arbitrex audit fetch-tape -----------------------------------------------------------


@pytest.fixture
def mt5_terminal(monkeypatch: pytest.MonkeyPatch) -> tuple[MT5Emulator, SimPyClock]:
    """The emulator, two minutes on, standing in for the terminal `MT5Broker.connect` opens."""
    emulator, clock = terminal()
    clock.sleep(120.0)
    monkeypatch.setenv("MT5_LOGIN", str(emulator.config.login))
    monkeypatch.setenv("MT5_PASSWORD", emulator.config.password.get_secret_value())
    monkeypatch.setenv("MT5_SERVER", emulator.config.server)

    def connect(
        cls: type[MT5Broker], credentials: Any, config: MT5Config | None = None, **kwargs: Any
    ) -> MT5Broker:
        synced = (config or MT5Config()).model_copy(update={"history_sync_seconds": 0})
        broker = MT5Broker(emulator, synced, clock=clock)
        broker.start(credentials)
        return broker

    monkeypatch.setattr(MT5Broker, "connect", classmethod(connect))
    return emulator, clock


def fetch_tape(url: str, *args: str) -> Any:
    return CliRunner().invoke(app, ["audit", "fetch-tape", "--db", url, *args])


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def test_fetch_tape_writes_the_terminals_ticks_to_the_store(tmp_path, mt5_terminal):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    window = ("--from", iso(T0 + 10), "--to", iso(T0 + 70))

    result = fetch_tape(url, "--symbols", "EURUSD,USDJPY", *window)

    assert result.exit_code == 0, result.output
    with open_database(url) as db:
        tape = db.quote_tape()
    counts = {s: sum(q.symbol == s for q in tape) for s in ("EURUSD", "USDJPY")}
    assert f"EURUSD: {counts['EURUSD']} samples" in result.output
    assert f"USDJPY: {counts['USDJPY']} samples" in result.output
    assert all(T0 + 10 <= q.time < T0 + 70 for q in tape) and min(counts.values()) > 30
    broker = broker_on(*mt5_terminal, server_time_offset_seconds=SERVER)
    assert [q for q in tape if q.symbol == "EURUSD"] == broker.quote_samples(
        "EURUSD", T0 + 10, T0 + 70
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--symbols", "EURUSD", "--from", "monday", "--to", iso(T0)), "not an ISO 8601 time"),
        (("--symbols", "EURUSD", "--from", iso(T0), "--to", iso(T0)), "is not after --from"),
        (("--symbols", "EURUSD,,USDJPY", "--from", iso(T0), "--to", iso(T0 + 9)), "empty symbol"),
        (("--symbols", "EURUSD", "--from", iso(T0), "--to", iso(T0 + 8 * 86_400)), "keeps 7 days"),
        (("--symbols", "EURUSD,XAUXAU", "--from", iso(T0), "--to", iso(T0 + 9)), "not list XAUXAU"),
    ],
)
def test_fetch_tape_refuses_bad_input_in_one_line_and_writes_nothing(
    tmp_path, mt5_terminal, args, message
):
    url = f"sqlite:///{tmp_path / 'audit.db'}"

    result = fetch_tape(url, *args)

    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    if Path(tmp_path / "audit.db").exists():
        with open_database(url) as db:
            assert db.quote_tape() == []


def test_fetch_tape_reads_the_broker_s_settings_from_the_config_file_s_mt5_table(
    tmp_path, mt5_terminal
):
    config = tmp_path / "arbitrex.toml"
    # Told the server runs 30 s behind what it does, and not to learn better, the broker
    # reads every tick 30 s late: what the file says reaches the broker.
    config.write_text("[mt5]\nlearn_server_offset = false\nserver_time_offset_seconds = 7170\n")
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    window = ("--from", iso(T0 + 10), "--to", iso(T0 + 70))

    result = fetch_tape(url, "--symbols", "EURUSD", *window, "--config", str(config))

    assert result.exit_code == 0, result.output
    with open_database(url) as db:
        tape = db.quote_tape()
    pinned = broker_on(*mt5_terminal, learn_server_offset=False, server_time_offset_seconds=7170)
    assert tape == pinned.quote_samples("EURUSD", T0 + 10, T0 + 70) and tape
    assert tape != broker_on(*mt5_terminal).quote_samples("EURUSD", T0 + 10, T0 + 70)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('server_time_zone = "Mars/Olympus"', "mt5.server_time_zone in"),
        ('server_time_zone = "America"', "no IANA time zone named 'America'"),  # a folder
        ("history_padding_seconds = inf", "mt5.history_padding_seconds in"),
        ("server_time_offset_seconds = 1000000000000", "mt5.server_time_offset_seconds in"),
        ("magik = 7", "mt5.magik in"),
        ("symbols = 3", "mt5.symbols in"),
    ],
)
def test_a_bad_mt5_table_is_refused_in_one_line_before_the_terminal_is_opened(
    tmp_path, table, message
):
    config = tmp_path / "arbitrex.toml"
    config.write_text(f"[mt5]\n{table}\n")
    window = ("--from", iso(T0), "--to", iso(T0 + 60))

    result = fetch_tape("memory://", "--symbols", "EURUSD", *window, "--config", str(config))

    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_fetch_tape_without_a_terminal_says_so_in_one_line(tmp_path, monkeypatch):
    for name in ("MT5_LOGIN", "MT5_PASSWORD", "MT5_SERVER"):
        monkeypatch.delenv(name, raising=False)

    result = fetch_tape(
        f"sqlite:///{tmp_path / 'a.db'}",
        "--symbols",
        "EURUSD",
        "--from",
        iso(T0),
        "--to",
        iso(T0 + 60),
    )

    assert result.exit_code == 2 and "MT5 credentials" in result.output
