"""MT5Broker's own rules, the emulator's strictness, and chaos through the engine.

The broker contract both brokers share is in test_broker_conformance.py; here is what only
MetaTrader 5 has: filling modes from a bitmask, comment rules, None answers explained by
last_error(), return-code classes, credentials, one lock around the module, and lost
replies reconciled against the emulator's own ledger.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from brokers import mt5_codes
from brokers.mt5 import (
    MT5Broker,
    MT5Config,
    MT5Credentials,
    MT5Unavailable,
    TerminalStartError,
    load_mt5_module,
)
from engine.clock import WallClock
from engine.core.config import EngineConfig
from engine.core.events import OrderAcknowledged, SubmissionUnanswered
from engine.core.ports import (
    BrokerOrderState,
    BrokerRejected,
    FillPolicy,
    OrderRequest,
    OutcomeUnknown,
    RequestNotSent,
)
from engine.engine import ExecutionEngine
from engine.live import LiveDriver
from engine.schemas import Direction, ExecutionRejectionReason, ExecutionStatus
from engine.store.base import ExecutionDatabase
from sim.clock import SimPyClock
from sim.latency import LatencyConfig
from sim.market import MarketConfig, SymbolConfig, SyntheticMarket
from sim.mt5 import MT5Emulator, OrderSendResult, TerminalConfig
from sim.mt5.config import AccountLogin
from sim.network import FaultKind, FaultWindow, LateExecution, Network, NetworkConfig
from sim.venue import Venue
from sim.wire import Wire
from sim.world import DEFAULT_START
from tests.builders import STILL_THREE_SYMBOLS, decision

R = ExecutionRejectionReason
T0 = DEFAULT_START
TAG = "AX" + "0123456789abcdef0123"
SECRET = "s3cr3t-Pa55phrase"
LOGIN = 7_770_001
SERVER = "Hidden-Server-Live"




def terminal(
    config: TerminalConfig | None = None,
    network: NetworkConfig | None = None,
    market: MarketConfig = STILL_THREE_SYMBOLS,
    start: float = T0,
) -> tuple[MT5Emulator, SimPyClock]:
    clock = SimPyClock.starting_at(start)
    prices = SyntheticMarket(market, 1, start)
    venue = Venue(prices, seed=1)
    faults = Network(network, 1, prices.volatility) if network is not None else None
    emulator = MT5Emulator(venue, Wire(faults, clock), config)
    return emulator, clock


def broker_on(
    emulator: Any, clock: SimPyClock, config: MT5Config | None = None, **options: Any
) -> MT5Broker:
    # These terminals' history never lags a connection: a "not found" is an answer at once
    # (the lag and the broker's patience with it are tested on their own).
    synced = (config or MT5Config()).model_copy(update={"history_sync_seconds": 0.0})
    broker = MT5Broker(emulator, synced, clock=clock, **options)
    broker.start()
    return broker


def order(emulator: MT5Emulator, symbol: str = "EURUSD", tag: str = TAG, **fields: Any):
    quote = emulator.venue.quote(symbol, emulator.clock())
    assert quote is not None
    values: dict[str, Any] = {
        "client_order_id": tag,
        "symbol": symbol,
        "direction": Direction.BUY,
        "units": 100_000,
        "lots": 1.0,
        "price": quote.ask,
        "deviation_points": 10,
        "fill_policy": FillPolicy.IOC,
    }
    return OrderRequest(**{**values, **fields})


def request(emulator: MT5Emulator, **fields: Any) -> dict[str, Any]:
    """A valid market buy of 0.1 lot, as a request dict, with `fields` replaced."""
    quote = emulator.venue.quote("EURUSD", emulator.clock())
    assert quote is not None
    body = {
        "action": emulator.TRADE_ACTION_DEAL,
        "symbol": "EURUSD",
        "volume": 0.1,
        "type": emulator.ORDER_TYPE_BUY,
        "price": quote.ask,
        "deviation": 10,
        "magic": 7,
        "comment": "AX1",
        "type_time": emulator.ORDER_TIME_GTC,
        "type_filling": emulator.ORDER_FILLING_IOC,
    }
    body.update(fields)
    return body


class Scripted:
    """The emulator, recording every request sent, with order_send's answer scriptable."""

    def __init__(self, emulator: MT5Emulator) -> None:
        self._emulator = emulator
        self.sent: list[dict[str, Any]] = []
        self.answer: Any = "emulate"
        self._error: tuple[int, str] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._emulator, name)

    def order_send(self, request: dict[str, Any]) -> Any:
        self.sent.append(request)
        if self.answer == "emulate":
            return self._emulator.order_send(request)
        if isinstance(self.answer, tuple) and len(self.answer) == 2:  # a last_error
            self._error = self.answer
            return None
        return self.answer

    def last_error(self) -> tuple[int, str]:
        error, self._error = self._error, None
        return error or self._emulator.last_error()


def answer(retcode: int) -> Any:
    return OrderSendResult(retcode, 0, 0, 0.0, 0.0, 1.08, 1.08, "scripted", 1, 0, None)


# -- filling modes from the bitmask ---------------------------------------------------------


def test_the_filling_type_comes_from_the_symbols_bitmask_never_the_bitmask_itself():
    emulator, clock = terminal()
    spy = Scripted(emulator)
    broker = broker_on(spy, clock)
    assert emulator.symbol_info("EURUSD").filling_mode == 3  # FOK 1 | IOC 2
    assert emulator.symbol_info("GBPUSD").filling_mode == 1  # FOK only

    both = broker.place_order(order(emulator, tag="AX" + "1" * 20))
    fok_only = broker.place_order(order(emulator, "GBPUSD", tag="AX" + "2" * 20))

    assert [r["type_filling"] for r in spy.sent] == [
        emulator.ORDER_FILLING_IOC,  # IOC asked and allowed
        emulator.ORDER_FILLING_FOK,  # IOC asked, only FOK allowed: all or nothing stands in
    ]
    assert both.state is fok_only.state is BrokerOrderState.DONE
    assert emulator.venue.refusals == {}  # no 10030 met


def test_a_fok_order_on_a_symbol_without_fok_is_refused_before_sending():
    emulator, clock = terminal()
    spy = Scripted(emulator)
    broker = broker_on(spy, clock)
    with pytest.raises(BrokerRejected, match="allows no FOK filling"):
        broker.place_order(order(emulator, "USDJPY", fill_policy=FillPolicy.FOK))
    assert spy.sent == [] and emulator.venue.orders == {}


@pytest.mark.parametrize(
    ("symbol", "type_filling"),
    [("GBPUSD", 1), ("USDJPY", 0), ("EURUSD", 2), ("EURUSD", 3)],
    ids=["IOC on FOK-only", "FOK on IOC-only", "RETURN", "the bitmask passed as is"],
)
def test_the_emulator_answers_10030_for_a_filling_type_the_bitmask_does_not_allow(
    symbol, type_filling
):
    emulator, _ = terminal()
    emulator.initialize()
    quote = emulator.symbol_info_tick(symbol)
    result = emulator.order_send(
        request(emulator, symbol=symbol, type_filling=type_filling, price=quote.ask)
    )
    assert result.retcode == emulator.TRADE_RETCODE_INVALID_FILL
    assert emulator.venue.orders == {}


# -- comments and the emulator's strictness ------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "argument"),
    [
        ({"comment": "AX 1"}, "comment"),
        ({"comment": "AX_1"}, "comment"),
        ({"comment": "A" * 27}, "comment"),
        ({"comment": "AXé"}, "comment"),
        ({"volume": 1}, "volume"),
        ({"deviation": -1}, "deviation"),
        ({"deviation": 2.5}, "deviation"),
        ({"magic": True}, "magic"),
        ({"slippage": 3}, "slippage"),
    ],
    ids=[
        "space",
        "punctuation",
        "27 characters",
        "not ASCII",
        "int volume",
        "negative deviation",
        "fractional deviation",
        "bool magic",
        "unknown field",
    ],
)
def test_the_emulator_refuses_a_request_a_terminal_would_not_pass_on(fields, argument):
    emulator, _ = terminal()
    emulator.initialize()
    assert emulator.order_send(request(emulator, **fields)) is None
    assert emulator.last_error() == (-2, f'Invalid "{argument}" argument')
    assert emulator.venue.orders == {}


def test_the_comment_limit_is_configurable_because_brokers_differ():
    emulator, _ = terminal(TerminalConfig(comment_max_length=31))
    emulator.initialize()
    result = emulator.order_send(request(emulator, comment="A" * 27))
    assert result.retcode == emulator.TRADE_RETCODE_DONE


def test_a_client_id_unfit_for_a_comment_is_refused_before_sending():
    emulator, clock = terminal()
    spy = Scripted(emulator)
    broker = broker_on(spy, clock)
    for bad in ("AX-0123", "AX" + "0" * 25):
        with pytest.raises(BrokerRejected, match="cannot travel in an MT5 comment"):
            broker.place_order(order(emulator, tag=bad))
        assert broker.find_order(bad) is None  # it could never have been sent
    assert spy.sent == []


def test_the_emulator_answers_a_volume_off_the_step_with_10014():
    emulator, _ = terminal()
    emulator.initialize()
    assert emulator.order_send(request(emulator, volume=0.015)).retcode == 10014
    assert emulator.order_send(request(emulator, volume=0.001)).retcode == 10014


def test_a_market_order_without_a_price_is_an_invalid_price_in_instant_execution():
    emulator, _ = terminal()
    emulator.initialize()
    body = request(emulator)
    del body["price"]
    assert emulator.order_send(body).retcode == emulator.TRADE_RETCODE_INVALID_PRICE


def test_nothing_answers_before_initialize():
    emulator, _ = terminal()
    assert emulator.symbol_info_tick("EURUSD") is None
    assert emulator.last_error() == (-10004, "No IPC connection")
    assert emulator.initialize() is True and emulator.symbol_info_tick("EURUSD") is not None


def test_order_check_prices_the_margin_and_says_what_the_server_would_refuse():
    emulator, _ = terminal()
    emulator.initialize()
    check = emulator.order_check(request(emulator, volume=1.0))
    assert check.retcode == 0 and check.margin == pytest.approx(1_085.0)
    assert emulator.order_check(request(emulator, volume=1e4)).retcode == 10014
    assert emulator.order_check(request(emulator, volume=100.0, price=1.0)).retcode == 0
    assert emulator.venue.orders == {}  # a check trades nothing


# -- None from order_send, return codes ---------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "raised"),
    [
        ((-10001, "IPC send failed"), OutcomeUnknown),
        ((-10002, "IPC recv failed"), OutcomeUnknown),
        ((-10005, "IPC timeout"), OutcomeUnknown),
        ((-10003, "IPC initialize failed"), RequestNotSent),
        ((-10004, "No IPC connection"), RequestNotSent),
        ((-2, 'Invalid "comment" argument'), BrokerRejected),
        ((-1, "generic fail"), BrokerRejected),
    ],
)
def test_a_none_from_order_send_is_explained_by_last_error(error, raised):
    emulator, clock = terminal()
    spy = Scripted(emulator)
    broker = broker_on(spy, clock)
    spy.answer = error
    with pytest.raises(raised, match=error[1].replace('"', ".")) as failure:
        broker.place_order(order(emulator))
    if raised is BrokerRejected:
        assert failure.value.code == error[0] and failure.value.reason is R.BROKER_REJECTED


RESEND_SAFE = (10004, 10020, 10021, 10023, 10024, 10028)
UNKNOWN = (10011, 10012, 10031)
FINAL = (
    10006,
    10007,
    *range(10013, 10020),
    10022,
    10025,
    10026,
    10027,
    10029,
    10030,
    *range(10032, 10037),
    *range(10038, 10047),
)
REASONS = {
    10004: R.REQUOTE,
    10020: R.REQUOTE,
    10021: R.REQUOTE,
    10014: R.INVALID_VOLUME,
    10017: R.SYMBOL_NOT_TRADABLE,
    10018: R.MARKET_CLOSED,
    10019: R.INSUFFICIENT_MARGIN,
    10042: R.SYMBOL_NOT_TRADABLE,
    10043: R.SYMBOL_NOT_TRADABLE,
    10044: R.SYMBOL_NOT_TRADABLE,
    # Issue 16's reasons of their own (the table both brokers share: brokers/mt5_codes.py).
    10015: R.INVALID_PRICE,
    10016: R.INVALID_STOPS,
    10022: R.INVALID_EXPIRATION,
    10036: R.NO_POSITION,
    10038: R.EXCEEDS_POSITION,
}


@pytest.mark.parametrize("retcode", RESEND_SAFE + FINAL)
def test_a_resend_safe_or_final_return_code_is_a_rejection_with_its_reason(retcode):
    emulator, clock = terminal()
    spy = Scripted(emulator)
    broker = broker_on(spy, clock)
    spy.answer = answer(retcode)
    with pytest.raises(BrokerRejected) as refused:
        broker.place_order(order(emulator))
    assert refused.value.code == retcode
    assert refused.value.reason is REASONS.get(retcode, R.BROKER_REJECTED)


@pytest.mark.parametrize("retcode", (*UNKNOWN, 10099))
def test_a_return_code_that_may_hide_an_execution_is_an_unknown_outcome(retcode):
    emulator, clock = terminal()
    spy = Scripted(emulator)
    broker = broker_on(spy, clock)
    spy.answer = answer(retcode)
    with pytest.raises(OutcomeUnknown):
        broker.place_order(order(emulator))


def test_the_shared_table_classifies_every_code_the_reference_lists():
    Outcome = mt5_codes.Outcome
    assert {c: mt5_codes.outcome_of(c) for c in RESEND_SAFE} == dict.fromkeys(
        RESEND_SAFE, Outcome.RESEND_SAFE
    )
    assert {c: mt5_codes.outcome_of(c) for c in FINAL} == dict.fromkeys(FINAL, Outcome.FINAL)
    assert [mt5_codes.outcome_of(c) for c in (10008, 10009, 10010)] == [
        Outcome.DONE,
        Outcome.DONE,
        Outcome.PARTIAL,
    ]


def test_autotrading_off_in_the_terminal_is_a_final_rejection_that_says_so():
    emulator, clock = terminal()
    broker = broker_on(emulator, clock)
    emulator.algo_trading = False
    assert emulator.terminal_info().trade_allowed is False
    assert broker.is_connected() is False
    with pytest.raises(BrokerRejected, match="AutoTrading is disabled") as refused:
        broker.place_order(order(emulator))
    assert refused.value.code == 10027 and refused.value.reason is R.BROKER_REJECTED
    assert emulator.venue.orders == {}


# -- reconciliation against the terminal ------------------------------------------------------


def test_a_lost_reply_is_an_ipc_timeout_and_the_order_is_found_at_once():
    emulator, clock = terminal(network=NetworkConfig(reply_loss=1.0))
    broker = broker_on(emulator, clock, MT5Config(timeout_ms=2_000))
    with pytest.raises(OutcomeUnknown, match="IPC timeout"):
        broker.place_order(order(emulator))
    [ledger_order] = emulator.venue.orders.values()
    found = broker.find_order(TAG)
    assert found is not None and found.order_id == str(ledger_order.ticket)
    assert found.filled_units == 100_000 and len(found.fills) == 1


def test_a_timed_out_request_may_be_executed_by_the_server_after_the_call_returned():
    late = LateExecution(probability=1.0, min_seconds=5.0, max_seconds=5.0)
    emulator, clock = terminal(network=NetworkConfig(reply_loss=1.0, late_execution=late))
    broker = broker_on(emulator, clock, MT5Config(timeout_ms=2_000))  # its history in sync
    with pytest.raises(OutcomeUnknown, match="IPC timeout"):
        broker.place_order(order(emulator))
    assert emulator.venue.orders == {}  # nothing yet: one "not found" now proves nothing
    assert broker.find_order(TAG) is None
    clock.sleep(5.0)  # the server executes it late
    [ledger_order] = emulator.venue.orders.values()
    found = broker.find_order(TAG)
    assert found is not None and found.order_id == str(ledger_order.ticket)


def test_during_a_partition_the_terminal_cannot_prove_an_order_absent():
    partition = FaultWindow(start=T0, end=T0 + 60, kind=FaultKind.DROP_REPLIES)
    emulator, clock = terminal(network=NetworkConfig(faults=(partition,)))
    broker = broker_on(emulator, clock, MT5Config(timeout_ms=1_000))
    with pytest.raises(OutcomeUnknown):
        broker.place_order(order(emulator))
    assert len(emulator.venue.orders) == 1  # executed at the server ...
    span = (datetime.fromtimestamp(T0 - 60, UTC), datetime.fromtimestamp(T0 + 60, UTC))
    assert emulator.history_orders_get(*span) == ()  # ... not yet seen by the terminal
    assert emulator.terminal_info().connected is False
    with pytest.raises(RequestNotSent, match="cannot prove an order absent"):
        broker.find_order(TAG)

    clock.sleep(60)
    assert broker.find_order(TAG) is not None


def test_reconciliation_matches_a_comment_whose_tail_the_broker_rewrote():
    rewrite = TerminalConfig(stored_comment_length=16, stored_comment_suffix="x9")
    emulator, clock = terminal(rewrite)
    broker = broker_on(emulator, clock)
    placed = broker.place_order(order(emulator))
    [stored] = emulator.history_orders_get(ticket=int(placed.order_id))
    assert stored.comment == TAG[:16] + "x9"
    found = broker.find_order(TAG)
    assert found is not None and found.order_id == placed.order_id


def test_a_position_reads_as_the_tag_of_its_opening_order_not_of_a_child_that_added_to_it():
    emulator, clock = terminal()  # netting: the child's fill adds to the parent's position
    broker = broker_on(emulator, clock)
    broker.place_order(order(emulator))
    broker.place_order(order(emulator, tag=TAG + "C1"))

    [position] = broker.positions()
    assert position.units == 200_000 and position.client_order_id == TAG


def test_a_cut_comment_that_cannot_tell_a_parent_from_its_child_reads_as_the_parent():
    emulator, clock = terminal(TerminalConfig(stored_comment_length=16))
    broker = broker_on(emulator, clock)
    broker.place_order(order(emulator))
    broker.place_order(order(emulator, tag=TAG + "C1"))

    [position] = broker.positions()
    assert position.client_order_id == TAG  # either tag leads back to the one execution


def test_a_comment_cut_shorter_than_the_match_length_needs_the_match_length_configured():
    emulator, clock = terminal(TerminalConfig(stored_comment_length=12))
    broker = broker_on(emulator, clock)
    broker.place_order(order(emulator))
    assert broker.find_order(TAG) is None
    assert broker_on(emulator, clock, MT5Config(tag_match_chars=12)).find_order(TAG) is not None


def test_another_systems_order_with_our_tag_is_not_ours():
    emulator, clock = terminal()
    broker_on(emulator, clock, MT5Config(magic=1)).place_order(order(emulator))
    assert broker_on(emulator, clock, MT5Config(magic=2)).find_order(TAG) is None


def test_deals_carry_their_order_and_tag_and_are_filtered_by_order_ticket_or_time():
    emulator, clock = terminal()
    broker = broker_on(emulator, clock)
    first = broker.place_order(order(emulator, tag="AX" + "1" * 20))
    clock.sleep(100)
    second = broker.place_order(
        order(emulator, tag="AX" + "2" * 20, direction=Direction.SELL, units=40_000, lots=0.4)
    )

    [deal] = emulator.history_deals_get(ticket=int(second.order_id))
    assert deal.order == int(second.order_id) and deal.ticket == int(second.fills[0].fill_id)
    assert (deal.magic, deal.comment, deal.volume) == (MT5Config().magic, "AX" + "2" * 20, 0.4)
    assert deal.price == second.fills[0].price and deal.time_msc == round((T0 + 100) * 1000)
    assert deal.entry == emulator.DEAL_ENTRY_OUT  # a netting account: the sell reduces the buy
    early = emulator.history_deals_get(int(T0 - 10), int(T0 + 10))
    assert [d.order for d in early] == [int(first.order_id)]
    [position] = emulator.positions_get(symbol="EURUSD")
    assert (position.identifier, position.volume) == (int(first.order_id), 0.6)


def test_server_time_is_made_utc_with_the_configured_offset():
    emulator, clock = terminal(TerminalConfig(server_time_offset_seconds=7_200))
    broker = broker_on(emulator, clock, MT5Config(server_time_offset_seconds=7_200))
    snapshot = broker.market_snapshot("EURUSD")
    assert snapshot is not None and snapshot.time == T0
    assert emulator.symbol_info_tick("EURUSD").time == T0 + 7_200
    placed = broker.place_order(order(emulator))
    assert placed.fills[0].time == T0
    assert broker.find_order(TAG) is not None


# -- credentials --------------------------------------------------------------------------------


def secret_terminal() -> tuple[MT5Emulator, SimPyClock]:
    return terminal(TerminalConfig(login=LOGIN, password=SecretStr(SECRET), server=SERVER))


def credentials(password: str = SECRET) -> MT5Credentials:
    return MT5Credentials.from_env(
        {"MT5_LOGIN": str(LOGIN), "MT5_PASSWORD": password, "MT5_SERVER": SERVER}
    )


def assert_no_secret(text: str) -> None:
    for secret in (SECRET, str(LOGIN), SERVER):
        assert secret not in text


def test_credentials_never_appear_in_logs_reprs_or_error_messages(caplog):
    caplog.set_level(logging.DEBUG)
    emulator, clock = secret_terminal()
    broker = MT5Broker(emulator, clock=clock)
    broker.start(credentials())
    broker.place_order(order(emulator))
    broker.find_order(TAG)
    with pytest.raises(TerminalStartError, match="refused the login") as refused:
        broker.start(credentials("wrong-" + SECRET))

    creds = credentials()
    assert creds.password.get_secret_value() == SECRET and creds.login == LOGIN
    assert caplog.records  # the broker does log; just never a secret
    assert_no_secret(caplog.text)
    assert_no_secret(repr(creds) + str(creds) + repr(broker))
    assert_no_secret("".join(traceback.format_exception(refused.value)))


def test_a_bridge_echoing_the_call_in_its_error_does_not_leak_the_password():
    emulator, clock = secret_terminal()

    class EchoingBridge(Scripted):
        def login(self, login: int, password: str, server: str, timeout: int) -> bool:
            raise RuntimeError(f"remote error in login({login}, {password!r}, {server!r})")

    broker = MT5Broker(EchoingBridge(emulator), clock=clock)
    with pytest.raises(TerminalStartError) as failed:
        broker.start(credentials())
    assert_no_secret("".join(traceback.format_exception(failed.value)))


def test_invalid_credentials_are_refused_without_echoing_them(tmp_path):
    with pytest.raises(ValueError, match="MT5_PASSWORD, MT5_SERVER"):
        MT5Credentials.from_env({"MT5_LOGIN": "1"})
    file = tmp_path / "mt5.toml"
    file.write_text(f'login = "{SECRET}"\npassword = 12345678\nserver = "{SERVER}"\n')
    with pytest.raises(ValidationError) as invalid:
        MT5Credentials.from_file(file)
    assert SECRET not in str(invalid.value) and "12345678" not in str(invalid.value)
    file.write_text(f'login = {LOGIN}\npassword = "{SECRET}"\nserver = "{SERVER}"\n')
    assert MT5Credentials.from_file(file) == credentials()


# -- one lock around the module -------------------------------------------------------------------


class ProbeLock:
    """A lock that knows which thread holds it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.holder: int | None = None

    def __enter__(self) -> None:
        self._lock.acquire()
        self.holder = threading.get_ident()

    def __exit__(self, *exc: object) -> None:
        self.holder = None
        self._lock.release()


class Watched:
    """The emulator, noting every access made without the probe lock held by the caller,
    and the most calls ever inside it at once."""

    def __init__(self, emulator: MT5Emulator, lock: ProbeLock) -> None:
        self._emulator, self._lock = emulator, lock
        self._count = threading.Lock()
        self.unguarded: list[str] = []
        self.inside = self.most_inside = self.calls = 0

    def __getattr__(self, name: str) -> Any:
        if self._lock.holder != threading.get_ident():
            self.unguarded.append(name)
        value = getattr(self._emulator, name)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._count:
                self.calls += 1
                self.inside += 1
                self.most_inside = max(self.most_inside, self.inside)
            time.sleep(0.0002)  # widen the window in which an unserialised call would overlap
            try:
                return value(*args, **kwargs)
            finally:
                with self._count:
                    self.inside -= 1

        return call


def test_every_call_into_the_module_is_made_under_the_one_lock_even_from_many_threads():
    emulator, clock = terminal()
    lock = ProbeLock()
    module = Watched(emulator, lock)
    broker = broker_on(module, clock, lock=lock)
    start = threading.Barrier(8)

    def trade(worker: int) -> None:
        start.wait()
        for i in range(5):
            tag = f"AX{i:02d}{worker:02d}" + "0" * 16  # distinct in the first 16 characters
            # The test's own read of the venue's quote, not a call into the module, under
            # the lock too: the simulated market's lazily built path is not thread-safe.
            with lock:
                request = order(emulator, tag=tag)
            placed = broker.place_order(request)
            assert broker.find_order(tag) == placed
            broker.market_snapshot("EURUSD")
            broker.account()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(trade, range(8)))

    assert module.unguarded == []
    assert module.most_inside == 1 and module.calls > 8 * 5 * 4
    assert len(emulator.venue.orders) == 40


def test_the_probe_sees_calls_made_without_the_lock():
    emulator, clock = terminal()
    module = Watched(emulator, ProbeLock())
    broker_on(module, clock, lock=nullcontext()).account()
    assert "account_info" in module.unguarded


# -- loading the module ---------------------------------------------------------------------------


def test_a_missing_module_is_a_clear_error_naming_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "MetaTrader5", None)
    monkeypatch.setitem(sys.modules, "mt5linux", None)
    with pytest.raises(MT5Unavailable, match=r"\[mt5\]"):
        load_mt5_module("native")
    with pytest.raises(MT5Unavailable, match="pip install mt5linux"):
        MT5Broker.connect(credentials(), kind="bridge")


def test_importing_the_brokers_loads_neither_metatrader5_nor_the_simulator():
    code = (
        "import sys, brokers, brokers.mt5; from brokers import MT5Broker; "
        "print(sorted(m for m in ('MetaTrader5', 'mt5linux', 'sim', 'simpy') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# -- chaos through the engine ---------------------------------------------------------------------


def assert_every_order_accounted_for(venue: Venue, database: ExecutionDatabase) -> None:
    """No duplicate at the broker; every ledger order is exactly one execution's, and back."""
    executions = [database.get_execution(eid) for eid in database.execution_ids()]
    by_tag = {e.request.client_order_id: e for e in executions}
    assert len(by_tag) == len(executions)
    ledger = venue.orders_by_client_id()
    assert {tag: len(orders) for tag, orders in ledger.items()} == dict.fromkeys(ledger, 1)
    for tag, [ledger_order] in ledger.items():
        execution = by_tag[tag]
        assert execution.broker_order_id == str(ledger_order.ticket)
        assert execution.executed_units == sum(f.units for f in ledger_order.fills)
    for execution in executions:
        assert execution.is_terminal, execution.status
        at_broker = execution.request.client_order_id in ledger
        assert at_broker == (execution.broker_order_id is not None)
        if execution.status in (ExecutionStatus.FAILED, ExecutionStatus.REJECTED):
            assert not at_broker


def events_of(database: ExecutionDatabase, kind: type) -> list[Any]:
    return [
        event
        for eid in database.execution_ids()
        for event in database.events(eid)
        if isinstance(event, kind)
    ]


def virtual_chaos(seed: int) -> tuple[Venue, ExecutionEngine]:
    """120 decisions through the engine, MT5Broker and the emulator, in virtual time, with
    random losses and windows of dropped replies, hangs and a refusing server."""
    clock = SimPyClock.starting_at(T0)
    prices = SyntheticMarket(MarketConfig(regimes=None), seed, T0)
    venue = Venue(prices, seed=seed)
    faults = (
        FaultWindow(start=T0 + 20, end=T0 + 26, kind=FaultKind.DROP_REPLIES),
        FaultWindow(start=T0 + 40, end=T0 + 42, kind=FaultKind.HANG),
        FaultWindow(start=T0 + 60, end=T0 + 61, kind=FaultKind.REFUSE),
        FaultWindow(start=T0 + 80, end=T0 + 81, kind=FaultKind.DISCONNECT),
    )
    wire = Network(
        NetworkConfig(
            latency=LatencyConfig.constant(5.0), reply_loss=0.15, request_loss=0.05, faults=faults
        ),
        seed,
        prices.volatility,
    )
    emulator = MT5Emulator(venue, Wire(wire, clock))
    broker = broker_on(emulator, clock, MT5Config(timeout_ms=1_000))
    engine = ExecutionEngine(
        broker,
        config=EngineConfig(order_timeout_seconds=10.0),
        driver=LiveDriver(clock),
        instance_id=f"chaos-{seed}",
    )
    for i in range(120):
        engine.execute(
            decision(decision_id=f"c{i}", symbol=("EURUSD", "USDJPY")[i % 2], direction=(-1) ** i)
        )
        clock.sleep(0.5)
    clock.sleep(60)
    engine.recover()
    return venue, engine


def test_a_chaos_run_with_lost_replies_through_mt5_duplicates_nothing_and_loses_nothing():
    venue, engine = virtual_chaos(seed=7)
    database = engine.database

    assert_every_order_accounted_for(venue, database)
    assert len(events_of(database, SubmissionUnanswered)) >= 10
    adopted = [e for e in events_of(database, OrderAcknowledged) if e.via_reconciliation]
    assert len(adopted) >= 5  # lost replies whose orders were found and adopted, not resent
    assert len(venue.orders) >= 100


def test_the_same_seed_gives_the_same_chaos_ledger():
    assert virtual_chaos(seed=3)[0].ledger_bytes() == virtual_chaos(seed=3)[0].ledger_bytes()


def test_threads_on_the_wall_clock_with_lost_replies_duplicate_nothing_and_lose_nothing():
    clock = WallClock(T0)
    prices = SyntheticMarket(MarketConfig(regimes=None), 5, T0)
    venue = Venue(prices, seed=5)
    wire = Network(
        NetworkConfig(latency=LatencyConfig.constant(1.0), reply_loss=0.3, request_loss=0.1),
        5,
        prices.volatility,
    )
    emulator = MT5Emulator(venue, Wire(wire, clock))
    broker = MT5Broker(emulator, MT5Config(timeout_ms=30, history_sync_seconds=0), clock=clock)
    broker.start()
    engine = ExecutionEngine(
        broker,
        config=EngineConfig(
            poll_interval_seconds=0.01,
            order_timeout_seconds=2.0,
            retry_backoff_seconds=0.02,
            request_timeout_seconds=0.1,
            absence_proof_seconds=0.2,  # this terminal never executes a request late
        ),
        driver=LiveDriver(clock),
        instance_id="wall-chaos",
    )
    decisions = [decision(decision_id=f"w{i}", direction=(-1) ** i) for i in range(32)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        confirmations = list(pool.map(engine.execute, decisions))
    engine.recover()

    assert len(confirmations) == 32
    assert_every_order_accounted_for(venue, engine.database)
    assert events_of(engine.database, SubmissionUnanswered)


# -- reconciliation that a real terminal can support --------------------------------------------


def test_reconciliation_searches_the_history_from_the_send_not_a_week_back():
    emulator, clock = terminal()
    windows: list[tuple[Any, ...]] = []
    history = emulator.history_orders_get
    emulator.history_orders_get = lambda *window, **form: windows.append(window) or history(
        *window, **form
    )
    broker = broker_on(emulator, clock)
    broker.market_snapshot("EURUSD")
    clock.sleep(1.0)
    broker.market_snapshot("EURUSD")  # a tick that moved: the server's clock is learnt
    clock.sleep(3_600.0)
    assert broker.find_order(TAG, sent_at=T0 + 1_800.0) is None
    [(start, _)] = [window for window in windows if window]
    assert start == datetime.fromtimestamp(T0 + 1_800.0 - MT5Config().history_margin_seconds, UTC)


def test_a_terminal_just_connected_cannot_prove_an_order_absent_until_its_history_synced():
    emulator, clock = terminal()
    broker = MT5Broker(emulator, MT5Config(history_sync_seconds=10.0), clock=clock)
    broker.start()
    with pytest.raises(RequestNotSent, match="still synchronising"):
        broker.find_order(TAG)
    clock.sleep(10.0)
    assert broker.find_order(TAG) is None


def test_the_servers_utc_offset_is_learnt_from_its_ticks_whatever_was_configured():
    emulator, clock = terminal(TerminalConfig(server_time_offset_seconds=3 * 3_600))
    broker = broker_on(emulator, clock, MT5Config(server_time_offset_seconds=2 * 3_600))
    first = broker.market_snapshot("EURUSD")
    assert first is not None and first.time == pytest.approx(T0 + 3_600, abs=1)  # configured
    clock.sleep(2.0)
    fresh = broker.market_snapshot("EURUSD")
    assert fresh is not None and fresh.time == pytest.approx(clock.now(), abs=1)  # learnt


def test_what_order_check_refuses_is_final_and_never_reaches_the_trade_server():
    saturday = datetime(2024, 1, 13, 12, 0, tzinfo=UTC).timestamp()
    emulator, clock = terminal(start=saturday)
    sent: list[Any] = []
    send = emulator.order_send
    emulator.order_send = lambda request: sent.append(request) or send(request)
    broker = broker_on(emulator, clock)
    with pytest.raises(BrokerRejected) as refused:
        broker.place_order(order(emulator))
    assert refused.value.code == 10018 and refused.value.reason is R.MARKET_CLOSED
    assert sent == [] and emulator.venue.orders == {}


# -- a terminal that restarts, switches accounts, hides symbols, syncs its history ------------

EVER_WINDOW = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
SECOND_ACCOUNT = {"login": 5_100_002, "password": "second", "server": "Arbitrex-Sim"}


def test_after_a_terminal_restart_mt5broker_initialises_it_again_and_reads_on():
    emulator, clock = terminal()
    broker = broker_on(emulator, clock)
    emulator.restart_terminal()
    assert emulator.symbol_info_tick("EURUSD") is None  # nothing answers until initialize
    snapshot = broker.market_snapshot("EURUSD")
    assert snapshot is not None and snapshot.bid > 0
    assert broker.place_order(order(emulator)).filled_units == 100_000


def test_mt5broker_refuses_to_trade_on_an_account_a_login_switched_to_and_proves_nothing_there():
    emulator, clock = terminal(TerminalConfig(other_accounts=(AccountLogin(**SECOND_ACCOUNT),)))
    broker = broker_on(emulator, clock)
    emulator.login(5_100_002, password="second", server="Arbitrex-Sim")
    with pytest.raises(BrokerRejected, match="logged in to account 5100002, not 5100001"):
        broker.place_order(order(emulator))
    assert emulator.venue.orders == {}
    with pytest.raises(RequestNotSent, match="cannot prove an order absent"):
        broker.find_order(TAG)
    assert broker.is_connected() is False


@pytest.mark.parametrize(
    "switch", ["tradeapi_disabled", "account trade_allowed", "account trade_expert"]
)
def test_each_trading_switch_off_is_a_final_refusal_before_anything_is_sent(switch):
    emulator, clock = terminal()
    broker = broker_on(emulator, clock)
    if switch == "tradeapi_disabled":
        emulator.tradeapi_disabled = True
    else:
        setattr(emulator.account, switch.split()[1], False)
    assert broker.is_connected() is False
    with pytest.raises(BrokerRejected) as refused:
        broker.place_order(order(emulator))
    assert refused.value.code == 10027 and emulator.venue.orders == {}


def test_a_symbol_out_of_the_market_watch_is_selected_and_quoted_at_the_first_ask():
    emulator, clock = terminal(TerminalConfig(hidden_symbols=frozenset({"EURUSD"})))
    broker = broker_on(emulator, clock)
    snapshot = broker.market_snapshot("EURUSD")
    assert snapshot is not None and snapshot.bid > 0 and emulator.symbol_info("EURUSD").visible


def test_an_order_executed_unseen_while_the_link_was_down_is_never_proven_absent():
    # A sell that closes the position, its reply dropped in a minute-long partition: it is
    # then only in the history, which lags the reconnection by 10 s — and the broker did
    # not look in between.
    partition = FaultWindow(start=T0 + 30, end=T0 + 90, kind=FaultKind.DROP_REPLIES)
    emulator, clock = terminal(
        TerminalConfig(history_sync_seconds=10.0), NetworkConfig(faults=(partition,))
    )
    broker = MT5Broker(emulator, MT5Config(timeout_ms=1_000), clock=clock)
    broker.start()
    clock.sleep(20.0)
    broker.place_order(order(emulator, tag="AXopening1"))
    clock.sleep(20.0)
    bid = emulator.venue.quote("EURUSD", clock.now()).bid
    with pytest.raises(OutcomeUnknown):
        broker.place_order(order(emulator, direction=Direction.SELL, price=bid))
    assert len(emulator.venue.orders) == 2  # the sell executed at the server
    clock.sleep(55.0)  # 5 s after the link is back: the history is still syncing
    with pytest.raises((RequestNotSent, OutcomeUnknown)):  # ask again later, never "absent"
        broker.find_order(TAG, sent_at=T0 + 40)
    clock.sleep(10.0)
    found = broker.find_order(TAG, sent_at=T0 + 40)
    assert found is not None and found.filled_units == 100_000


def test_through_a_symbol_map_the_engine_trades_eurusd_at_a_broker_that_calls_it_eurusd_m():
    emulator, clock = terminal(TerminalConfig(symbol_suffix=".m"))
    broker = MT5Broker(
        emulator, MT5Config(symbols={"EURUSD": "EURUSD.m"}, history_sync_seconds=0), clock=clock
    )
    broker.start()
    engine = ExecutionEngine(broker, driver=LiveDriver(clock))
    confirmation = engine.execute(decision())
    assert confirmation.status is ExecutionStatus.FILLED and confirmation.symbol == "EURUSD"
    [deal] = emulator.history_deals_get(*EVER_WINDOW)
    assert deal.symbol == "EURUSD.m"
    tag = engine.database.request(confirmation.execution_id).client_order_id
    assert broker.find_order(tag).filled_units == 100_000


def test_the_symbol_map_is_checked_against_the_brokers_list_when_the_terminal_opens():
    emulator, clock = terminal()
    broker = MT5Broker(emulator, MT5Config(symbols={"EURUSD": "EURUSD.m"}), clock=clock)
    with pytest.raises(TerminalStartError, match=r"EURUSD -> EURUSD\.m"):
        broker.start()


def test_after_a_quiet_spell_longer_than_a_sync_a_not_found_waits_for_one_more_sync():
    # The link may have broken and come back unseen meanwhile: the history may lag.
    emulator, clock = terminal()
    broker = MT5Broker(emulator, MT5Config(history_sync_seconds=10.0), clock=clock)
    broker.start()
    clock.sleep(10.0)
    assert broker.find_order(TAG) is None  # seen connected ever since the start
    clock.sleep(60.0)
    with pytest.raises(RequestNotSent, match="still synchronising"):
        broker.find_order(TAG)
    clock.sleep(10.0)
    assert broker.find_order(TAG) is None


def test_the_servers_clock_is_learnt_again_after_a_daylight_saving_change():
    # UTC+2 on Friday, UTC+3 once New York has moved its clocks on Sunday 10 March 2024.
    friday = datetime(2024, 3, 8, 20, 0, tzinfo=UTC).timestamp()
    market = MarketConfig(symbols=(SymbolConfig(symbol="EURUSD", start_mid=1.085),))
    server = TerminalConfig(
        server_time_zone="America/New_York", server_time_offset_seconds=7 * 3600
    )
    emulator, clock = terminal(server, market=market, start=friday)
    broker = broker_on(emulator, clock)
    for _ in range(2):
        broker.market_snapshot("EURUSD")
        clock.sleep(30.0)
    before = broker.market_snapshot("EURUSD")
    assert before is not None and before.time == pytest.approx(clock.now(), abs=30)
    sunday_reopen = datetime(2024, 3, 10, 22, 5, tzinfo=UTC).timestamp()
    clock.sleep(sunday_reopen - clock.now())
    for _ in range(2):
        broker.market_snapshot("EURUSD")
        clock.sleep(30.0)
    after = broker.market_snapshot("EURUSD")
    assert after is not None and after.time == pytest.approx(clock.now(), abs=30)
