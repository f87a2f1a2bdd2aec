"""The SQL audit store, one suite over SQLite (file and in-memory) and PostgreSQL.

Stores are filled by real executions through the engine and the simulated market, and the
in-memory store run on the same seed is the reference every SQL backend must agree with.
"""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import store_backends as sb

import engine.store.sql
from engine.clock import iso_utc
from engine.core.config import EngineConfig
from engine.core.events import (
    ExecutionRequested,
    OrderFilled,
    SubmissionAttempted,
    ValidationCompleted,
    to_payload,
)
from engine.core.flow import build_request
from engine.core.ids import idempotency_key_for
from engine.core.lifecycle import IllegalTransition
from engine.schemas import ExecutionStatus, RPMOutput
from engine.store import (
    DuplicateExecution,
    ExecutionDatabase,
    InMemoryExecutionDatabase,
    SQLExecutionDatabase,
    StoreUnavailable,
    export_audit_trail_to,
    open_database,
    verify_audit_chain,
)
from engine.store.backend import Durability
from engine.store.chain import canonical_json
from engine.store.migrations import MIGRATIONS, apply_migrations
from engine.store.postgres import PostgresBackend
from engine.store.records import stored_record
from engine.store.sqlite import SQLiteBackend
from sim.world import DEFAULT_START, SimulatedWorld

SEED = 28  # chosen because its run has a lost reply, a reconciliation and refusals
EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[sb.StoreTarget]:
    with sb.store_target("postgresql", tmp_path) as store_target:
        yield store_target


@pytest.fixture(scope="module")
def reference() -> InMemoryExecutionDatabase:
    db = InMemoryExecutionDatabase()
    sb.seeded_run(db, SEED)
    return db


def records(db: ExecutionDatabase) -> list[dict[str, Any]]:
    return db.export_audit_trail(*EVER)


def record_of(db: ExecutionDatabase, kind: str) -> dict[str, Any]:
    return next(row for row in records(db) if row["kind"] == kind)


def stored(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What both kinds of store keep of a record, in a comparable form."""
    return sorted(
        (row["execution_id"], row["at"], row["kind"], canonical_json(row["payload"]))
        for row in rows
    )


# -- the SQL store agrees with the in-memory reference -----------------------------------


def test_a_seeded_run_reads_back_as_the_reference_store_records_it(target, reference):
    db = target.open()
    sb.seeded_run(db, SEED)

    assert sorted(db.execution_ids()) == sorted(reference.execution_ids())
    for execution_id in reference.execution_ids():
        assert db.get_execution_log(execution_id) == reference.get_execution_log(execution_id)
        assert [
            (type(event), event.at, canonical_json(to_payload(event)))
            for event in db.events(execution_id)
        ] == [
            (type(event), event.at, canonical_json(to_payload(event)))
            for event in reference.events(execution_id)
        ]


def test_a_nul_character_in_text_kept_as_json_is_stored_escaped_and_reads_back(target):
    # Only raw text columns cannot hold NUL on PostgreSQL: payloads are canonical JSON, in
    # which it is the escape \u0000, so a decision's unread fields may carry one.
    rpm = RPMOutput.model_validate(sb.decision("with-nul") | {"note": ["fine", "also\x00kept"]})
    request = build_request(rpm, idempotency_key_for(rpm), EngineConfig(), DEFAULT_START, "t")
    db = target.open()
    db.append(ExecutionRequested(request.execution_id, DEFAULT_START, request))

    stored = db.request(request.execution_id)
    assert stored is not None and stored.decision["note"] == ["fine", "also\x00kept"]
    assert verify_audit_chain(db).ok


def test_history_and_open_executions_come_from_the_projection_with_the_base_semantics(target):
    db = target.open()
    sb.seeded_run(db, SEED, until=0.3)  # stopped mid-flight: some executions are still open
    logs = ExecutionDatabase.history(db, limit=1000)
    middle = logs[len(logs) // 2].created_at
    queries: list[dict[str, Any]] = [
        {},
        {"symbol": "USDJPY"},
        {"status": ExecutionStatus.FILLED},
        {"status": ExecutionStatus.REJECTED, "symbol": "EURUSD"},
        {"start": middle},
        {"end": middle},
        {"start": middle, "end": middle + timedelta(seconds=0.1)},
        {"limit": 3, "offset": 2},
        {"limit": 0},
    ]
    for query in queries:
        assert db.history(**query) == ExecutionDatabase.history(db, **query), query
    assert db.unsettled() == ExecutionDatabase.unsettled(db)
    assert db.unsettled(), "the run was stopped while executions were in flight"


def test_every_execution_reads_back_in_id_order_a_page_at_a_time_as_replayed_one_by_one(target):
    db = target.open()
    sb.seeded_run(db, SEED, until=0.3)  # open executions as well as settled ones
    one_by_one = list(ExecutionDatabase.executions(db))
    paged = list(db.executions(chunk=3))

    assert [e.execution_id for e in one_by_one] == sorted(db.execution_ids())
    assert len(paged) > 3 and paged == one_by_one
    assert any(not e.is_terminal for e in paged) and any(e.is_terminal for e in paged)


def test_the_exported_trail_holds_the_reference_events_one_record_per_append_rehashable(
    target, reference
):
    db = target.open()
    sb.seeded_run(db, SEED)

    rows = records(db)
    assert stored(rows) == stored(records(reference))
    chain = sb.appends(rows)
    assert [record[0]["seq"] for record in chain] == list(range(1, len(chain) + 1))
    assert len(chain) < len(rows)  # the events of one append share one record
    assert chain[0][0]["prev_hash"] == "0" * 64
    assert sb.chain_problem(rows) is None
    request = record_of(db, "ExecutionRequested")
    assert (request["engine_version"], request["config_version"]) == (
        request["payload"]["request"]["engine_version"],
        request["payload"]["request"]["config_version"],
    )


def test_an_export_window_keeps_the_records_stamped_inside_it(target, reference):
    db = target.open()
    sb.seeded_run(db, SEED)
    start = datetime.fromtimestamp(DEFAULT_START + 0.2, tz=UTC)
    end = datetime.fromtimestamp(DEFAULT_START + 0.4, tz=UTC)

    window = db.export_audit_trail(start, end)

    assert window
    assert stored(window) == stored(reference.export_audit_trail(start, end))


def test_the_same_seeded_run_gives_the_same_audit_head_hash_on_every_backend(target):
    with open_database("sqlite:///:memory:") as baseline:
        sb.seeded_run(baseline, SEED)
        expected = verify_audit_chain(baseline).head_hash
    db = target.open()
    sb.seeded_run(db, SEED)

    assert verify_audit_chain(db).head_hash == expected


# -- the audit records are append-only, enforced by the database -------------------------


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_events SET payload = '{}' WHERE seq = 2", "DELETE FROM audit_events"],
)
def test_the_database_itself_refuses_to_change_or_remove_audit_records(target, statement):
    db = target.open()
    sb.seeded_run(db, SEED)
    db.close()

    with target.raw() as conn, pytest.raises(Exception, match="append-only") as refused:
        conn.execute(statement)

    assert type(refused.value).__module__.split(".")[0] in ("sqlite3", "psycopg")
    assert verify_audit_chain(target.open()).ok


def test_postgresql_also_refuses_to_truncate_the_audit_records(postgres):
    import psycopg

    sb.seeded_run(postgres.open(), SEED)
    with postgres.raw() as conn, pytest.raises(psycopg.Error, match="append-only"):
        conn.execute("TRUNCATE audit_events")


# -- tamper evidence ---------------------------------------------------------------------


def test_an_untouched_store_verifies_and_counts_every_record(target, reference):
    db = target.open()
    sb.seeded_run(db, SEED)

    result = verify_audit_chain(db)

    assert result.ok and result.problem is None and result.first_bad_seq is None
    rows = records(db)
    chain = sb.appends(rows)
    assert len(rows) == len(records(reference))
    assert result.records_verified == len(chain)
    assert result.grouped_records == sum(len(record) > 1 for record in chain) > 0
    assert result.head_hash == rows[-1]["hash"]


def test_an_empty_store_verifies_with_the_genesis_head(target):
    result = verify_audit_chain(target.open())

    assert result.ok and result.records_verified == 0 and result.head_hash == "0" * 64


def forged_fill(db: ExecutionDatabase, **change: Any) -> tuple[dict[str, Any], str]:
    """The first row of the record holding the first fill, and that record's payload with
    the fill's fields changed: what a forger writes over it."""
    fill = record_of(db, "OrderFilled")
    (record,) = (rows for rows in sb.appends(records(db)) if rows[0]["seq"] == fill["seq"])
    forged = [
        row | {"payload": row["payload"] | change} if row["kind"] == "OrderFilled" else row
        for row in record
    ]
    return record[0], stored_record(forged)[2]


def test_verify_names_the_record_whose_payload_was_changed_behind_the_store(target):
    db = target.open()
    sb.seeded_run(db, SEED)
    fill = record_of(db, "OrderFilled")
    record, forged = forged_fill(db, price=fill["payload"]["price"] + 0.001)

    target.tamper("UPDATE audit_events SET payload = ? WHERE seq = ?", (forged, fill["seq"]))
    result = verify_audit_chain(db)

    assert not result.ok
    assert (result.first_bad_seq, result.first_bad_execution_id) == (
        fill["seq"],
        fill["execution_id"],
    )
    assert result.records_verified == fill["seq"] - 1
    assert result.first_bad_kind == record["kind"]  # a record is named by its first event
    assert "content changed" in result.problem


def test_verify_names_a_record_that_was_removed_as_missing(target):
    db = target.open()
    sb.seeded_run(db, SEED)
    fill = record_of(db, "OrderFilled")

    target.tamper("DELETE FROM audit_events WHERE seq = ?", (fill["seq"],))
    result = verify_audit_chain(db)

    assert not result.ok and result.first_bad_seq == fill["seq"]
    assert result.first_bad_execution_id is None and result.first_bad_kind is None
    assert "missing" in result.problem


def test_verify_names_the_broken_link_when_a_forger_also_rewrites_the_hash(target):
    db = target.open()
    sb.seeded_run(db, SEED)
    fill = record_of(db, "OrderFilled")
    record, forged = forged_fill(db, units=1)
    rehashed = sb.rehash(record, forged)

    target.tamper(
        "UPDATE audit_events SET payload = ?, hash = ? WHERE seq = ?",
        (forged, rehashed, fill["seq"]),
    )
    result = verify_audit_chain(db)

    assert not result.ok and result.first_bad_seq == fill["seq"] + 1
    assert "broken link" in result.problem


def test_verify_detects_bytes_edited_in_the_sqlite_file(tmp_path):
    path = tmp_path / "audit.db"
    with open_database(f"sqlite:///{path}") as db:
        sb.seeded_run(db, SEED)
        fill = record_of(db, "OrderFilled")
    text = canonical_json(fill["payload"]).encode()
    digit = text.index(b'"units":') + len(b'"units":')
    forged = text[:digit] + (b"9" if text[digit : digit + 1] != b"9" else b"8") + text[digit + 1 :]
    raw = path.read_bytes()
    assert text in raw
    path.write_bytes(raw.replace(text, forged))  # same length: still a valid SQLite file

    with open_database(f"sqlite:///{path}") as db:
        result = verify_audit_chain(db)

    assert not result.ok and result.first_bad_seq == fill["seq"]
    assert "content changed" in result.problem


def test_verify_refuses_a_store_that_keeps_no_chain():
    with pytest.raises(TypeError, match="keeps no hash chain"):
        verify_audit_chain(InMemoryExecutionDatabase())


# -- idempotency across connections and processes ---------------------------------------


def test_two_connections_racing_to_record_the_same_request_let_exactly_one_succeed(shared):
    event = sb.requested("race-threads")
    stores = [shared.open(), shared.open()]

    outcomes = sb.in_threads(2, lambda i: sb.append_outcome(stores[i], event))

    assert sorted(outcomes) == ["duplicate:" + event.execution_id, "won"]
    kinds = [type(e).__name__ for e in stores[0].events(event.execution_id)]
    assert kinds == ["ExecutionRequested"]


def test_two_processes_racing_on_postgresql_let_exactly_one_win(postgres):
    event = sb.requested("race-processes")
    postgres.open()  # migrate first: the race is about the request, not the schema
    context = multiprocessing.get_context("spawn")
    contenders = 3
    barrier, results = context.Barrier(contenders), context.Queue()
    processes = [
        context.Process(target=sb.race_to_append, args=(postgres.url, event, barrier, results))
        for _ in range(contenders)
    ]
    for process in processes:
        process.start()
    outcomes = sorted(results.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(timeout=60)

    assert outcomes == ["duplicate:" + event.execution_id] * 2 + ["won"]
    assert [p.exitcode for p in processes] == [0] * contenders


def test_writers_on_separate_connections_extend_one_unbroken_chain(shared):
    def write(writer: int) -> int:
        db = shared.open()
        for index in range(10):
            db.append(sb.requested(f"writer-{writer}-{index}"))
        return writer

    assert sb.in_threads(4, write) == [0, 1, 2, 3]
    result = verify_audit_chain(shared.open())
    assert result.ok and result.records_verified == 40


def test_an_execution_continued_through_another_connection_is_folded_from_the_database(
    shared,
):
    first, second = shared.open(), shared.open()
    request = sb.requested("recovered-elsewhere")
    eid = request.execution_id
    first.append(request)
    second.append(ValidationCompleted(eid, DEFAULT_START + 1, ("all",), 1.0, 1.0849, 1.0851, None))

    first.append(SubmissionAttempted(eid, DEFAULT_START + 2, attempt=1))

    assert [log.execution_id for log in first.history(status=ExecutionStatus.SUBMITTING)] == [eid]
    assert first.get_execution_log(eid).submission_attempts == 1


@pytest.mark.parametrize("durability", ["sync", "batched"])
def test_submitting_the_same_decision_twice_returns_the_first_execution(target, durability):
    db = target.open(durability=durability)
    world = SimulatedWorld.build(SEED, database=db)
    first = world.engine.submit(sb.decision("twice"))
    world.env.run()
    second = world.engine.submit(sb.decision("twice"))
    world.env.run()

    assert second.value.execution_id == first.value.execution_id
    assert second.value.status is first.value.status is ExecutionStatus.FILLED
    kinds = [type(e).__name__ for e in db.events(first.value.execution_id)]
    assert kinds.count("ExecutionRequested") == 1


def test_a_request_already_committed_by_another_connection_is_refused_in_batched_mode(shared):
    event = sb.requested("committed-elsewhere")
    shared.open().append(event)
    batched = shared.open(durability="batched")

    with pytest.raises(DuplicateExecution) as refused:
        batched.append(event)

    assert refused.value.execution_id == event.execution_id


# -- durability --------------------------------------------------------------------------


def test_sync_durability_commits_each_append_before_returning(shared):
    writer, reader = shared.open(), shared.open()

    writer.append(sb.requested("visible-at-once"))

    assert len(reader.chain_records(0, 10)) == 1


class _SlowDisk:
    """A SQLite connection whose durable commits take as long as a slow disk's fsync, and
    whose commits may fail; a commit at synchronous=NORMAL (lazy) does not wait."""

    def __init__(self, conn: sqlite3.Connection, disk: dict[str, Any]) -> None:
        self._conn, self._disk = conn, disk
        self._synchronous = "FULL"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def execute(self, sql: str, *parameters: Any) -> Any:
        if sql.startswith("PRAGMA synchronous="):
            self._synchronous = sql.removeprefix("PRAGMA synchronous=")
        if sql == "COMMIT":
            self._disk["commits"] += 1
            if self._disk["commits"] in self._disk.get("failing", ()):
                raise sqlite3.OperationalError("disk I/O error")
        answer = self._conn.execute(sql, *parameters)
        if sql == "COMMIT" and self._synchronous == "FULL":
            self._disk["fsyncs"] += 1
            time.sleep(self._disk["fsync_seconds"])  # the GIL is free meanwhile, as in fsync
        return answer


def _slow_disk_store(path: Path, **disk: Any) -> tuple[SQLExecutionDatabase, dict[str, Any]]:
    state: dict[str, Any] = {"commits": 0, "fsyncs": 0, "fsync_seconds": 0.02, **disk}

    class SlowDiskBackend(SQLiteBackend):
        def connect(self, durability: Durability = "sync") -> Any:
            return _SlowDisk(super().connect(durability), state)

    store = SQLExecutionDatabase(SlowDiskBackend(str(path)))
    state["commits"] = state["fsyncs"] = 0  # opening migrated the schema
    return store, state


def _append_from_threads(db: ExecutionDatabase, names: list[list[str]]) -> dict[str, Any]:
    """Each list of decision ids appended by a thread of its own; what each append raised."""
    outcomes: dict[str, Any] = {}

    def appender(ids: list[str]) -> None:
        for decision_id in ids:
            try:
                db.append(sb.requested(decision_id))
                outcomes[decision_id] = "durable"
            except StoreUnavailable as lost:
                outcomes[decision_id] = lost

    threads = [threading.Thread(target=appender, args=(ids,)) for ids in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_concurrent_sync_appends_share_commits_and_each_returns_only_once_durable(
    tmp_path, monkeypatch
):
    # The fallback that commits a group no one came to commit (20 ms) is tested on its own;
    # on a loaded machine it fires on threads merely kept off the CPU, so it is set out of
    # reach here: what is counted is how appends that overlap share their commits.
    monkeypatch.setattr(engine.store.sql, "_GROUP_WAIT_SECONDS", 5.0)
    db, disk = _slow_disk_store(tmp_path / "audit.db")
    durable_on_return = []

    def appender(thread: int) -> None:
        with sqlite3.connect(tmp_path / "audit.db") as reader:  # outside the store
            for index in range(10):
                event = sb.requested(f"group-{thread}-{index}")
                db.append(event)
                found = reader.execute(
                    "SELECT count(*) FROM audit_events WHERE execution_id = ?",
                    (event.execution_id,),
                ).fetchone()
                durable_on_return.append(found == (1,))

    threads = [threading.Thread(target=appender, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert durable_on_return == [True] * 80
    assert disk["commits"] <= 40  # one fsync apiece would be 80
    assert verify_audit_chain(db).records_verified == 80
    db.close()


def test_concurrent_sync_appends_on_postgresql_all_become_durable_in_one_chain(postgres):
    db = postgres.open()
    outcomes = _append_from_threads(db, [[f"pg-{t}-{i}" for i in range(10)] for t in range(6)])

    assert set(outcomes.values()) == {"durable"}
    reader = postgres.open()
    assert len(reader.unsettled()) == 60
    assert verify_audit_chain(reader).records_verified == 60


def test_a_failed_group_commit_fails_every_append_of_its_group_and_records_none(tmp_path):
    db, disk = _slow_disk_store(tmp_path / "audit.db", fsync_seconds=0.2, failing={2})
    # The first append's commit is slow: the others arrive meanwhile and form one group,
    # whose commit (the second) fails.
    first = threading.Thread(target=db.append, args=(sb.requested("alone"),))
    first.start()
    time.sleep(0.05)
    outcomes = _append_from_threads(db, [[f"grouped-{n}"] for n in range(5)])
    first.join(timeout=60)

    assert disk["commits"] == 2
    assert all(isinstance(outcome, StoreUnavailable) for outcome in outcomes.values())
    assert [r["execution_id"] for r in records(db)] == [sb.requested("alone").execution_id]
    db.append(sb.requested("after-the-failure"))
    assert verify_audit_chain(db).records_verified == 2
    db.close()


def test_executions_running_at_once_share_their_durable_commits(tmp_path):
    from scenarios.assembly import paper_trading_engine
    from sim.world import DEFAULT_START

    db, disk = _slow_disk_store(tmp_path / "audit.db", fsync_seconds=0.01)
    engine, _ = paper_trading_engine(7, db, latency_ms=1.0, start=DEFAULT_START)
    statuses: list[str] = []

    def trader(thread: int) -> None:
        for index in range(5):
            rpm = sb.decision(f"together-{thread}-{index}", units=10_000)
            statuses.append(engine.execute(rpm).status.value)

    threads = [threading.Thread(target=trader, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert statuses == ["FILLED"] * 30
    # Two groups per execution, one of them durable: one fsync apiece would be 30.
    assert disk["fsyncs"] < 30
    assert verify_audit_chain(db).ok
    db.close()


def test_a_filled_order_waits_for_one_fsync_and_its_fill_is_committed_when_execute_returns(
    tmp_path,
):
    from scenarios.assembly import paper_trading_engine
    from sim.world import DEFAULT_START

    db, disk = _slow_disk_store(tmp_path / "audit.db", fsync_seconds=0.001)
    engine, _ = paper_trading_engine(7, db, latency_ms=1.0, start=DEFAULT_START)
    with sqlite3.connect(tmp_path / "audit.db") as outside:
        for index in range(5):
            confirmation = engine.execute(sb.decision(f"one-fsync-{index}", units=10_000))
            (status,) = outside.execute(
                "SELECT status FROM executions WHERE execution_id = ?",
                (confirmation.execution_id,),
            ).fetchone()
            assert (confirmation.status.value, status) == ("FILLED", "FILLED")

    assert (disk["commits"], disk["fsyncs"]) == (10, 5)
    db.close()


@pytest.mark.parametrize("durable", [True, False])
def test_an_append_the_engine_need_not_wait_for_is_committed_all_the_same(shared, durable):
    db = shared.open()
    request = sb.requested(f"lazy-{durable}")
    eid = request.execution_id
    validated = ValidationCompleted(eid, DEFAULT_START + 1, ("all",), 1.0, 1.1, 1.1001, 10)
    attempted = SubmissionAttempted(eid, DEFAULT_START + 2, attempt=1)
    db.append(request)

    db.append_batch((validated, attempted), durable=durable)

    assert shared.open().events(eid) == (request, validated, attempted)
    assert verify_audit_chain(db).ok


def test_an_append_whose_group_no_one_else_commits_commits_it_itself(tmp_path):
    db = open_database(f"sqlite:///{tmp_path / 'audit.db'}")
    assert isinstance(db, SQLExecutionDatabase)
    db._arriving += 1  # an append counted on its way to the lock, that never gets there

    db.append(sb.requested("not-left-waiting"))

    with sqlite3.connect(tmp_path / "audit.db") as outside:
        assert outside.execute("SELECT count(*) FROM audit_events").fetchone() == (1,)
    db.close()


def test_a_reader_never_sees_a_group_of_sync_appends_before_it_is_committed(tmp_path):
    db, _ = _slow_disk_store(tmp_path / "audit.db", fsync_seconds=0.005)
    seen_uncommitted: list[int] = []
    done = threading.Event()

    def reader() -> None:
        with sqlite3.connect(tmp_path / "audit.db") as outside:
            while not done.is_set():
                seen = len(db.chain_records(0, 10_000))
                (committed,) = outside.execute("SELECT count(*) FROM audit_events").fetchone()
                if seen > committed:
                    seen_uncommitted.append(seen - committed)

    watcher = threading.Thread(target=reader)
    watcher.start()
    outcomes = _append_from_threads(db, [[f"read-{t}-{i}" for i in range(15)] for t in range(6)])
    done.set()
    watcher.join(timeout=60)

    assert set(outcomes.values()) == {"durable"}
    assert seen_uncommitted == []
    db.close()


def test_batched_durability_commits_every_batch_size_events_and_on_flush(shared):
    writer = shared.open(durability="batched", batch_size=3)
    reader = shared.open()

    committed = []
    for index in range(7):
        writer.append(sb.requested(f"batch-{index}"))
        committed.append(len(reader.chain_records(0, 100)))
    writer.flush()

    assert committed == [0, 0, 3, 3, 3, 6, 6]
    assert len(reader.chain_records(0, 100)) == 7
    assert verify_audit_chain(reader).records_verified == 7


def test_a_batched_sqlite_store_sizes_cache_and_checkpoints_for_its_large_commits_not_the_live_one(
    tmp_path,
):
    backend = SQLiteBackend(str(tmp_path / "sizes.db"))
    live, batched = backend.connect("sync"), backend.connect("batched")
    plain = sqlite3.connect(tmp_path / "sizes.db")  # this SQLite build's own defaults

    def sizes(conn: sqlite3.Connection) -> tuple[int, int]:
        checkpoint = conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        return int(checkpoint), int(conn.execute("PRAGMA cache_size").fetchone()[0])

    # The live store keeps SQLite's small checkpoints: a larger one is a longer stall on
    # the path of whichever order's commit crosses it.
    assert sizes(live) == sizes(plain)
    assert sizes(batched) == (10_000, -16_384)
    for conn in (live, batched, plain):
        conn.close()


def test_batched_reads_see_pending_events_and_duplicates_are_refused_at_once(target, reference):
    db = target.open(durability="batched", batch_size=100_000)
    sb.seeded_run(db, SEED)
    execution_id = next(iter(reference.execution_ids()))

    assert db.get_execution_log(execution_id) == reference.get_execution_log(execution_id)
    with pytest.raises(DuplicateExecution):
        db.append(db.events(execution_id)[0])
    if target.shares_database:
        assert target.open().chain_records(0, 10) == []


def test_closing_a_batched_store_commits_what_is_pending(shared, reference):
    db = shared.open(durability="batched", batch_size=100_000)
    sb.seeded_run(db, SEED)
    db.close()

    reader = shared.open()
    assert verify_audit_chain(reader).records_verified == len(sb.appends(records(reader)))
    assert stored(records(reader)) == stored(records(reference))
    with pytest.raises(StoreUnavailable, match="closed"):
        db.append(sb.requested("after-close"))


# -- refused events write nothing --------------------------------------------------------


@pytest.mark.parametrize("durability", ["sync", "batched"])
def test_an_event_for_an_execution_never_requested_is_refused_and_not_recorded(target, durability):
    db = target.open(durability=durability)
    db.append(sb.requested("known"))

    with pytest.raises(KeyError, match="has no ExecutionRequested"):
        db.append(SubmissionAttempted("ex-never-requested", DEFAULT_START, attempt=1))
    db.append(sb.requested("still-writable"))

    assert verify_audit_chain(db).records_verified == 2


def test_an_event_the_lifecycle_forbids_is_refused_and_not_recorded(target):
    db = target.open()
    request = sb.requested("out-of-order")
    db.append(request)
    fill = OrderFilled(request.execution_id, DEFAULT_START + 1, "deal-1", 100_000, 1.1, 1.0)

    with pytest.raises(IllegalTransition):
        db.append(fill)

    assert [type(e) for e in db.events(request.execution_id)] == [type(request)]
    assert db.unsettled() == [request.execution_id]


@pytest.mark.parametrize("durability", ["sync", "batched"])
def test_a_batch_the_lifecycle_refuses_midway_writes_none_of_its_events(target, durability):
    db = target.open(durability=durability)
    request = sb.requested("half-a-batch")
    at = DEFAULT_START + 1
    attempted = SubmissionAttempted(request.execution_id, at, attempt=1)
    fill = OrderFilled(request.execution_id, at, "deal-1", 100_000, 1.1, at)

    with pytest.raises(IllegalTransition):
        db.append_batch((request, attempted, fill))  # no validation before the attempt
    db.append(sb.requested("after-the-refusal"))

    assert db.events(request.execution_id) == ()
    assert db.get_execution(request.execution_id) is None
    assert verify_audit_chain(db).records_verified == 1


def test_a_batch_spanning_two_executions_is_refused_before_anything_is_written(target):
    db = target.open()
    first, second = sb.requested("first"), sb.requested("second")

    with pytest.raises(ValueError, match="one execution's events"):
        db.append_batch((first, second))

    assert list(db.execution_ids()) == []


def test_a_batch_is_one_chained_record_and_projects_its_last_status(target):
    db = target.open()
    request = sb.requested("whole-batch")
    eid = request.execution_id
    validated = ValidationCompleted(eid, DEFAULT_START + 1, ("all",), 1.0, 1.1, 1.1001, 10)
    attempted = SubmissionAttempted(eid, DEFAULT_START + 2, attempt=1)

    db.append_batch((request, validated, attempted))

    assert db.events(eid) == (request, validated, attempted)
    assert db.unsettled() == [eid]
    (log,) = db.history(status=ExecutionStatus.SUBMITTING)
    assert log.execution_id == eid and log.created_at.timestamp() == DEFAULT_START
    result = verify_audit_chain(db)
    assert (result.records_verified, result.grouped_records) == (1, 1)
    assert [row["kind"] for row in records(db)] == [
        "ExecutionRequested",
        "ValidationCompleted",
        "SubmissionAttempted",
    ]


# -- failing safe ------------------------------------------------------------------------


def test_an_unreachable_postgresql_raises_store_unavailable_naming_backend_and_cause():
    with pytest.raises(StoreUnavailable) as unavailable:
        open_database("postgresql://postgres@127.0.0.1:1/test")

    message = str(unavailable.value)
    assert "PostgreSQL database test at 127.0.0.1:1" in message
    assert "refused" in message.lower()


def test_an_unwritable_sqlite_path_raises_store_unavailable_naming_the_file(tmp_path):
    not_a_directory = tmp_path / "plain-file"
    not_a_directory.write_text("")
    path = not_a_directory / "audit.db"

    with pytest.raises(StoreUnavailable) as unavailable:
        open_database(f"sqlite:///{path}")

    assert f"SQLite database {path}" in str(unavailable.value)
    assert "unable to open database file" in str(unavailable.value)


def test_a_sqlite_store_locked_by_another_writer_fails_safe_then_recovers(tmp_path):
    path = tmp_path / "audit.db"
    db = open_database(f"sqlite:///{path}?timeout=0.05")
    with sb.StoreTarget("sqlite-file", "", path=path).raw() as other:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable, match="database is locked"):
            db.append(sb.requested("while-locked"))
        other.execute("ROLLBACK")

    db.append(sb.requested("after-unlock"))
    assert verify_audit_chain(db).records_verified == 1
    db.close()


@pytest.mark.parametrize("durability", ["sync", "batched"])
def test_a_lost_postgresql_connection_fails_safe_then_reconnects(postgres, durability):
    name = f"store-{postgres.schema}"
    db = postgres.open(f"application_name={name}", durability=durability)
    db.append(sb.requested("before-loss"))
    with postgres.raw() as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
            "WHERE application_name = %s",
            (name,),
        )

    with pytest.raises(StoreUnavailable, match="PostgreSQL database") as unavailable:
        db.append(sb.requested("during-loss"))
    db.append(sb.requested("after-loss"))
    db.flush()

    lost = "1 appended event(s) not yet committed were lost"
    assert (lost in str(unavailable.value)) is (durability == "batched")
    assert verify_audit_chain(db).records_verified == (2 if durability == "sync" else 1)


def test_a_missing_psycopg_is_named_with_the_extra_that_installs_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)

    with pytest.raises(ImportError, match=r"arbitrex-execution\[postgres\]"):
        open_database("postgresql://postgres@127.0.0.1:5432/test")


# -- URLs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("audit.db", {}, "malformed database URL 'audit.db'"),
        ("mysql://db/audit", {}, "unsupported database URL scheme 'mysql'"),
        ("memory://extra", {}, "memory:// takes nothing more"),
        ("sqlite://host/audit.db", {}, "names a host ('host')"),
        ("sqlite://", {}, "names no database file"),
        ("sqlite:///audit.db?mode=ro", {}, "unknown parameter 'mode'"),
        ("sqlite:///audit.db?timeout=soon", {}, "timeout must be a positive number"),
        ("sqlite:///audit.db", {"schema": "s"}, "applies to PostgreSQL only"),
        (
            "postgresql://u:secret@h:port/db",
            {},
            "'postgresql://u:***@h:port/db' has a malformed port",
        ),
        ("postgresql://u@h/db?schema=Audit-1", {}, "not a plain lower-case SQL identifier"),
        ("postgresql://u@h/db?schema=a", {"schema": "b"}, "names schema 'a' but the schema"),
        ("postgresql://u@h/db?bogus=1", {}, "malformed PostgreSQL URL"),
        ("memory://", {"durability": "eventually"}, "durability must be 'sync' or 'batched'"),
        ("memory://", {"batch_size": 0}, "batch_size must be at least 1"),
    ],
)
def test_a_malformed_url_is_refused_with_a_precise_message(url, options, message):
    with pytest.raises(ValueError) as refused:
        open_database(url, **options)

    assert message in str(refused.value)
    assert "secret" not in str(refused.value)


def test_a_memory_url_opens_the_in_memory_store():
    assert isinstance(open_database("memory://"), InMemoryExecutionDatabase)


def test_sqlite_urls_take_relative_paths_with_three_slashes_and_absolute_with_four(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    with open_database("sqlite:///relative.db"), open_database(f"sqlite:///{tmp_path}/abs.db"):
        pass

    assert (tmp_path / "relative.db").exists() and (tmp_path / "abs.db").exists()


def test_a_sqlite_file_store_runs_in_wal_mode_with_full_sync(tmp_path):
    path = tmp_path / "audit.db"
    with open_database(f"sqlite:///{path}") as db:
        assert isinstance(db, SQLExecutionDatabase)
        with sb.StoreTarget("sqlite-file", "", path=path).raw() as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_sqlite_store_written_without_pause_keeps_its_log_bounded(tmp_path):
    path = tmp_path / "audit.db"
    largest = 0
    with open_database(f"sqlite:///{path}", durability="batched", batch_size=20) as db:
        for index in range(6_000):
            db.append(sb.requested(f"steady-{index}"))
            largest = max(largest, Path(f"{path}-wal").stat().st_size)
        assert len(db.unsettled()) == 6_000
    # SQLite's automatic checkpoint (every 10,000 pages, 40 MB, in a batched store)
    # restarts the log: without it, every record ever written would stay in it (90 MB
    # here).
    assert largest < 48 * 1024 * 1024


# -- migrations --------------------------------------------------------------------------


def applied_versions(target: sb.StoreTarget) -> list[int]:
    with target.raw() as conn:
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    return [row[0] for row in rows]


def test_opening_a_database_again_applies_no_migration_twice(shared):
    shared.open().close()
    shared.open().close()

    assert applied_versions(shared) == [m.version for m in MIGRATIONS]


def test_concurrent_first_opens_apply_each_migration_exactly_once(shared):
    opened = sb.in_threads(4, lambda _: shared.open())

    assert all(isinstance(db, SQLExecutionDatabase) for db in opened), opened
    assert applied_versions(shared) == [m.version for m in MIGRATIONS]


def test_an_older_database_gets_only_its_missing_migrations(shared):
    backend: Any = (
        SQLiteBackend.from_url(shared.url)
        if shared.kind == "sqlite-file"
        else PostgresBackend.from_url(shared.url)
    )
    conn = backend.connect()
    assert apply_migrations(conn, backend, MIGRATIONS[:1]) == (1,)
    conn.close()

    shared.open().append(sb.requested("after-the-upgrade"))

    assert applied_versions(shared) == [m.version for m in MIGRATIONS]
    with shared.raw() as raw, pytest.raises(Exception, match="append-only"):
        raw.execute("DELETE FROM audit_events")


def test_a_database_written_by_a_newer_engine_is_refused(shared):
    shared.open().close()
    with shared.raw() as conn:
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (99, 'from the future')")

    with pytest.raises(StoreUnavailable, match=r"migrations \[99\].*newer engine"):
        shared.open()


# -- files for people and tools ----------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
@pytest.mark.parametrize(
    ("store", "rows_per_chunk"), [("sqlite", 7), ("sqlite", 10_000), ("memory", 7)]
)
def test_the_trail_exports_to_a_file_that_reads_back_as_the_same_records(
    tmp_path, fmt, store, rows_per_chunk
):
    db = open_database("sqlite:///:memory:" if store == "sqlite" else "memory://")
    sb.seeded_run(db, SEED)
    path = tmp_path / f"trail.{fmt}"

    written = export_audit_trail_to(db, path, fmt, *EVER, rows_per_chunk=rows_per_chunk)

    expected = sb.export_rows(records(db))
    if fmt == "csv":  # for people: ISO 8601 UTC, to the microsecond
        expected = [row | {"at": iso_utc(row["at"])} for row in expected]
    if fmt == "jsonl":
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        back = [line | {"payload": canonical_json(line["payload"])} for line in lines]
    else:
        frame = pd.read_csv(path, dtype=sb.CSV_DTYPES) if fmt == "csv" else pd.read_parquet(path)
        back = [
            {key: (None if pd.isna(value) else value) for key, value in row.items()}
            for row in frame.to_dict("records")
        ]
    assert written == len(expected) > 0
    assert back == expected


def test_the_trail_reads_a_page_at_a_time_as_it_reads_whole(target):
    db = target.open()
    sb.seeded_run(db, SEED)
    whole = db.export_audit_trail(*EVER)
    start = datetime.fromtimestamp(whole[len(whole) // 3]["at"], UTC)
    end = datetime.fromtimestamp(whole[2 * len(whole) // 3]["at"], UTC)

    assert list(db.iter_audit_trail(*EVER, page=5)) == whole
    assert list(db.iter_audit_trail(start, end, page=4)) == db.export_audit_trail(start, end)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_an_export_that_fails_midway_leaves_no_file_behind(tmp_path, fmt):
    db = open_database("sqlite:///:memory:")
    sb.seeded_run(db, SEED)

    def failing(start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
        yield from islice(SQLExecutionDatabase.iter_audit_trail(db, start, end), 20)
        raise StoreUnavailable("the disk went away")

    db.iter_audit_trail = failing  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailable):
        export_audit_trail_to(db, tmp_path / f"trail.{fmt}", fmt, *EVER, rows_per_chunk=7)
    assert list(tmp_path.iterdir()) == []


def test_an_export_needs_a_known_format_and_timezone_aware_bounds(tmp_path):
    db = open_database("sqlite:///:memory:")

    with pytest.raises(ValueError, match="unknown export format 'xlsx'"):
        export_audit_trail_to(db, tmp_path / "trail.xlsx", "xlsx", *EVER)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone-aware"):
        db.export_audit_trail(datetime(2024, 1, 1), datetime(2024, 1, 2))
