"""The quote tape in the store: what is recorded reads back, once, in order, bounded, and
outside the audit chain — on every backend (in memory, SQLite file and memory, PostgreSQL)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from engine.core.events import OrderFilled
from engine.core.lifecycle import Execution
from engine.core.ports import RequestNotSent
from engine.engine import ExecutionEngine
from engine.live import LiveDriver
from engine.schemas import ExecutionStatus
from engine.store import (
    ExecutionDatabase,
    QuoteSample,
    StoreUnavailable,
    open_database,
    verify_audit_store,
)
from engine.store.migrations import MIGRATIONS, apply_migrations
from engine.store.postgres import PostgresBackend
from engine.store.sqlite import SQLiteBackend
from engine.tape import QuoteTape, TapeSettings
from scenarios.analysis.quality import MARKOUT_HORIZONS
from scenarios.cli.api import api_app
from scenarios.cli.settings import load as load_settings
from sim.broker import SimulatedBroker
from sim.clock import SimPyClock
from sim.latency import LatencyConfig
from sim.market import MarketConfig, SyntheticMarket
from sim.network import Network, NetworkConfig
from sim.venue import Venue
from sim.wire import Wire
from sim.world import DEFAULT_START
from tests import store_backends as sb
from tests.api_support import UNLIMITED, approved, paper_api
from tests.builders import decision

T0 = DEFAULT_START
Opener = Callable[..., ExecutionDatabase]


@pytest.fixture(params=("memory", *sb.ALL))
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens a fresh store of each kind (options as open_database takes them)."""
    if request.param == "memory":
        yield lambda **options: open_database("memory://", **options)
        return
    with sb.store_target(request.param, tmp_path) as target:
        yield lambda **options: target.open(**options)


def sample(time: float, symbol: str = "EURUSD", bid: float = 1.1, ask: float = 1.1002):
    return QuoteSample(symbol, time, bid, ask)


def test_the_tape_reads_back_what_was_recorded_by_time_then_symbol(opener):
    db = opener()
    recorded = [sample(T0 + 1, "USDJPY", 150.1, 150.12), sample(T0 + 1), sample(T0)]

    db.record_quotes(recorded)

    assert db.quote_tape() == [sample(T0), sample(T0 + 1), sample(T0 + 1, "USDJPY", 150.1, 150.12)]


def test_a_sample_recorded_twice_is_one_row_as_first_recorded(opener):
    db = opener()
    db.record_quotes([sample(T0), sample(T0)])
    db.record_quotes([sample(T0, bid=1.2, ask=1.2002), sample(T0 + 1)])

    assert db.quote_tape() == [sample(T0), sample(T0 + 1)]


def test_the_tape_is_read_over_a_half_open_window(opener):
    db = opener()
    db.record_quotes([sample(T0 + second) for second in range(5)])

    window = db.quote_tape(T0 + 1, T0 + 3)

    assert [q.time for q in window] == [T0 + 1, T0 + 2]
    assert [q.time for q in db.quote_tape(start=T0 + 3)] == [T0 + 3, T0 + 4]
    assert [q.time for q in db.quote_tape(end=T0 + 1)] == [T0]


def test_recording_prunes_each_symbols_samples_older_than_the_retention_before_its_newest(
    opener,
):
    db = opener(quote_retention_seconds=60.0)
    db.record_quotes(
        [sample(T0 + s) for s in range(0, 60, 10)] + [sample(T0, "USDJPY", 150, 150.1)]
    )

    db.record_quotes([sample(T0 + 75)])

    # EURUSD keeps [T0 + 15, T0 + 75]; USDJPY, not recorded since, keeps its sample.
    assert [(q.symbol, q.time - T0) for q in db.quote_tape()] == [
        ("USDJPY", 0),
        ("EURUSD", 20),
        ("EURUSD", 30),
        ("EURUSD", 40),
        ("EURUSD", 50),
        ("EURUSD", 75),
    ]


def test_recording_a_past_period_prunes_nothing_newer(opener):
    db = opener(quote_retention_seconds=60.0)
    db.record_quotes([sample(T0 + 1_000)])

    db.record_quotes([sample(T0), sample(T0 + 30)])

    assert [q.time - T0 for q in db.quote_tape()] == [0, 30, 1_000]


def test_a_retention_that_keeps_nothing_is_refused():
    with pytest.raises(ValueError, match="quote_retention_seconds must be positive"):
        open_database("memory://", quote_retention_seconds=0)
    with pytest.raises(ValueError, match="quote_retention_seconds must be positive"):
        open_database("sqlite:///:memory:", quote_retention_seconds=-1.0)


def test_the_tape_stays_out_of_the_audit_chain(target):
    db = target.open()
    sb.seeded_run(db, seed=7, until=5.0)
    before = verify_audit_store(db)

    db.record_quotes([sample(T0 + s) for s in range(100)])
    db.record_quotes([sample(T0 + 100 + 7 * 86_400)])  # prunes the first hundred

    after = verify_audit_store(db)
    assert after.ok and after.chain.records_verified == before.chain.records_verified
    assert after.chain.head_hash == before.chain.head_hash


def test_tape_samples_recorded_between_batched_appends_lose_no_audit_record(shared):
    db = shared.open(durability="batched", batch_size=1_000)
    db.append(sb.requested("pending-when-the-tape-is-written"))

    db.record_quotes([sample(T0)])
    db.close()

    reopened = shared.open()
    assert len(list(reopened.execution_ids())) == 1
    assert reopened.quote_tape() == [sample(T0)]


def test_an_existing_database_gets_the_tape_when_opened(shared):
    backend: Any = (
        SQLiteBackend.from_url(shared.url)
        if shared.kind == "sqlite-file"
        else PostgresBackend.from_url(shared.url)
    )
    conn = backend.connect()
    assert apply_migrations(conn, backend, MIGRATIONS[:3]) == (1, 2, 3)
    conn.close()

    db = shared.open()
    db.record_quotes([sample(T0)])

    assert db.quote_tape() == [sample(T0)]
    with shared.raw() as raw:
        versions = [row[0] for row in raw.execute("SELECT version FROM schema_migrations")]
    assert sorted(versions) == [m.version for m in MIGRATIONS]


# -- the live engine's tape, in virtual time -------------------------------------------------


@dataclass
class Live:
    """The live engine (the live driver) over the simulated broker, on a SimPy clock."""

    engine: ExecutionEngine[Any]
    clock: SimPyClock
    tape: QuoteTape

    def trade(self, decision_id: str, symbol: str = "EURUSD", direction: int = 1) -> Execution:
        confirmation = self.engine.execute(decision(symbol, direction, decision_id=decision_id))
        assert confirmation.status is ExecutionStatus.FILLED, confirmation
        execution = self.engine.database.get_execution(confirmation.execution_id)
        assert execution is not None
        return execution

    def samples(self, symbol: str = "EURUSD") -> list[QuoteSample]:
        return [q for q in self.engine.database.quote_tape() if q.symbol == symbol]

    def last_fill_at(self, execution: Execution) -> float:
        events = self.engine.database.events(execution.execution_id)
        return max(e.at for e in events if isinstance(e, OrderFilled))


def live(seed: int = 5, **settings: Any) -> Live:
    clock = SimPyClock.starting_at(T0)
    prices = SyntheticMarket(MarketConfig(), seed, T0)
    venue = Venue(prices, seed=seed)
    wire = Wire(
        Network(NetworkConfig(latency=LatencyConfig.constant(2.0)), seed, prices.volatility), clock
    )
    broker = SimulatedBroker(venue, wire, request_timeout=5.0)
    engine = ExecutionEngine(broker, driver=LiveDriver(clock), instance_id=f"tape-{seed}")
    tape = QuoteTape(engine, TapeSettings(**settings))
    tape.start()
    return Live(engine, clock, tape)


def test_the_tape_samples_a_traded_symbol_once_a_second_until_five_minutes_after_its_last_fill():
    run = live()
    run.clock.sleep(0.3)
    first = run.trade("buy")
    run.clock.sleep(20.0)
    last = run.trade("sell", direction=-1)
    run.clock.sleep(400.0)

    times = [q.time for q in run.samples()]
    decided = first.created_at
    assert decided is not None and decided < times[0] <= decided + 1.0
    assert all(later - earlier == 1.0 for earlier, later in pairwise(times))
    assert run.last_fill_at(last) + 299.0 < times[-1] <= run.last_fill_at(last) + 300.0
    assert all(0 < q.bid < q.ask for q in run.samples())
    assert {q.symbol for q in run.engine.database.quote_tape()} == {"EURUSD"}


def test_an_idle_tape_reads_nothing_and_the_next_decision_starts_it_again(monkeypatch):
    run = live()
    run.trade("early")
    run.clock.sleep(400.0)
    quiet = len(run.samples())
    reads: list[float] = []
    answer = run.engine.broker.market_snapshot
    monkeypatch.setattr(
        run.engine.broker, "market_snapshot", lambda s: reads.append(run.clock.now()) or answer(s)
    )

    run.clock.sleep(3_600.0)
    assert reads == [] and len(run.samples()) == quiet

    later = run.trade("later", symbol="USDJPY")
    run.clock.sleep(10.0)
    run.tape.flush()

    yen = run.samples("USDJPY")
    assert len(run.samples()) == quiet and len(yen) == 10
    assert later.created_at is not None and yen[0].time - later.created_at <= 1.0


def test_the_same_seed_records_the_same_tape():
    def tape(seed: int) -> list[QuoteSample]:
        run = live(seed)
        run.trade("a")
        run.clock.sleep(30.0)
        run.trade("b", symbol="GBPUSD", direction=-1)
        run.clock.sleep(330.0)
        return run.engine.database.quote_tape()

    assert tape(3) == tape(3) and tape(3) != tape(4)


def test_the_interval_is_a_setting():
    run = live(interval_seconds=0.5, horizon_seconds=10.0)
    run.trade("half-seconds")
    run.clock.sleep(30.0)

    times = [q.time for q in run.samples()]
    assert set(map(round, np.diff(times) * 2)) == {1} and 20 <= len(times) <= 21


def test_the_horizon_is_the_longest_markout_the_analysis_measures():
    assert TapeSettings().horizon_seconds == max(MARKOUT_HORIZONS)


def test_a_quote_the_broker_cannot_give_is_skipped_and_counted_and_trading_goes_on(monkeypatch):
    run = live(horizon_seconds=20.0)
    broker = run.engine.broker
    answer = broker.market_snapshot
    down = (T0 + 5.5, T0 + 7.5)

    def unreachable_for_a_while(symbol: str) -> Any:
        if down[0] <= run.clock.now() < down[1]:
            raise RequestNotSent("terminal unreachable")
        return answer(symbol)

    run.trade("before")
    monkeypatch.setattr(broker, "market_snapshot", unreachable_for_a_while)
    run.clock.sleep(10.0)  # the tape meets the outage at T0 + 6 and T0 + 7
    run.trade("after")
    run.clock.sleep(30.0)

    times = [q.time - T0 for q in run.samples()]
    assert 6.0 not in times and 7.0 not in times and {5.0, 8.0} <= set(times)
    assert run.tape.missed == 2


def test_samples_the_store_refuses_are_written_later_and_a_full_queue_drops_the_oldest():
    run = live(horizon_seconds=30.0, batch_size=5, max_pending=8)
    database = run.engine.database
    accept = database.record_quotes
    refusing = True

    def store_down_for_a_while(samples: Sequence[QuoteSample]) -> None:
        if refusing:
            raise StoreUnavailable("the store is down")
        accept(samples)

    database.record_quotes = store_down_for_a_while  # type: ignore[method-assign]
    decided = run.trade("through-an-outage").created_at
    run.clock.sleep(12.0)
    assert run.engine.database.quote_tape() == [] and run.tape.dropped == 12 - 8
    refusing = False
    run.clock.sleep(40.0)

    times = [q.time for q in run.samples()]
    assert times == [times[0] + second for second in range(len(times))]
    # What was dropped is the oldest: the tape starts that many seconds after the decision.
    dropped = run.tape.dropped
    assert decided is not None and dropped < times[0] - decided <= dropped + 1


def test_closing_the_tape_writes_what_is_pending_and_stops_it():
    run = live(batch_size=1_000)
    run.trade("then-closed")
    run.clock.sleep(10.0)
    assert run.samples() == []

    run.tape.close()
    run.clock.sleep(10.0)

    assert len(run.samples()) == 10 and run.tape.observe not in run.engine.record_watchers


# -- the served engine, on the wall clock ----------------------------------------------------


@pytest.mark.parametrize("interval", [0.25, 0.0])
def test_a_served_engine_records_the_tape_of_what_it_trades_unless_switched_off(tmp_path, interval):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    settings = UNLIMITED.model_copy(update={"quote_tape_seconds": interval})
    with paper_api(tmp_path, url, settings) as api:
        assert api.execute(approved("served")).status_code == 200
        time.sleep(1.2)
    with open_database(url) as db:  # the server wrote what was pending as it stopped
        tape = db.quote_tape()

    if not interval:
        assert tape == []
        return
    # About four samples, each in a quarter second of its own (fewer if timers run late).
    assert {q.symbol for q in tape} == {"EURUSD"} and 2 <= len(tape) <= 6
    assert len({math.floor(q.time / interval) for q in tape}) == len(tape)


def test_serve_takes_the_tape_interval_from_a_flag_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ARBITREX_QUOTE_TAPE_SECONDS", "0")
    assert load_settings({"db": "memory://"}).quote_tape_seconds == 0.0

    refused = CliRunner().invoke(
        api_app,
        [
            "serve",
            "--db",
            "memory://",
            "--keys",
            str(tmp_path / "k.db"),
            "--quote-tape-seconds",
            "-1",
        ],
    )
    assert refused.exit_code == 2 and "--quote-tape-seconds" in refused.output


def test_a_tape_whose_store_write_breaks_unexpectedly_goes_on_and_no_execution_sees_it():
    run = live(batch_size=1)
    accept = run.engine.database.record_quotes
    calls: list[int] = []

    def broken_once(samples: Sequence[QuoteSample]) -> None:
        calls.append(len(samples))
        if len(calls) == 1:
            raise RuntimeError("a bug in the store")
        accept(samples)

    run.engine.database.record_quotes = broken_once  # type: ignore[method-assign]
    run.trade("first")
    run.clock.sleep(5.0)  # the broken write happens inside this wait on the run's clock
    run.trade("second")

    assert len(run.samples()) >= 4 and len(calls) >= 5
