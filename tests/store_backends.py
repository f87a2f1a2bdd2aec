"""The audit store's test backends, each one fresh and cleaned up, and the runs that fill them.

PostgreSQL tests each get a schema of their own (created, then dropped). When PostgreSQL
cannot be reached they are skipped with the reason — except on CI (CI=true), where a
missing database is a failure, so the production backend is never silently untested.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import cache
from itertools import groupby, pairwise
from pathlib import Path
from typing import Any

import pytest

from engine.core.config import EngineConfig
from engine.core.events import ExecutionRequested
from engine.core.flow import build_request
from engine.core.ids import idempotency_key_for
from engine.schemas import RPMOutput
from engine.store import (
    DuplicateExecution,
    ExecutionDatabase,
    SQLExecutionDatabase,
    StoreUnavailable,
    open_database,
)
from engine.store.chain import canonical_json, record_hash
from engine.store.export import COLUMNS
from engine.store.records import stored_record
from scenarios.demo import DEMO_NETWORK
from scenarios.orderflow import OrderFlowConfig, order_flow
from sim.world import DEFAULT_START, SimulatedWorld

POSTGRES_URL = os.environ.get(
    "ARBITREX_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
SHARED = ("sqlite-file", "postgresql")  # a second open() reaches the same data
ALL = ("sqlite-file", "sqlite-memory", "postgresql")
SQLITE_GUARDS = ("audit_events_refuse_update", "audit_events_refuse_delete")
POSTGRES_GUARDS = ("audit_events_refuse_update_delete", "audit_events_refuse_truncate")
# Lossy network and odd sizes: retries, reconciliations and refusals land in the trail too.
FLOW = OrderFlowConfig(orders=30, odd_size_share=0.1)


@cache
def _postgres_problem() -> str | None:
    try:
        import psycopg
    except ImportError:
        return 'psycopg is not installed: pip install -e ".[dev]"'
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return None


def require_postgres() -> None:
    problem = _postgres_problem()
    if problem is None:
        return
    reason = f"PostgreSQL is unreachable at {POSTGRES_URL} ({problem})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must run the PostgreSQL store tests", pytrace=False)
    pytest.skip(f"{reason}; set ARBITREX_TEST_POSTGRES_URL to run these tests")


@dataclass
class StoreTarget:
    """One database for one test, and the driver-level access a tamperer would have."""

    kind: str
    url: str
    path: Path | None = None
    schema: str | None = None
    opened: list[ExecutionDatabase] = field(default_factory=list)

    @property
    def shares_database(self) -> bool:
        return self.kind in SHARED

    def open(self, query: str = "", **options: Any) -> SQLExecutionDatabase:
        url = self.url + (("&" if "?" in self.url else "?") + query if query else "")
        db = open_database(url, **options)
        assert isinstance(db, SQLExecutionDatabase)
        self.opened.append(db)
        return db

    @contextmanager
    def raw(self) -> Iterator[Any]:
        """A plain driver connection in autocommit mode, behind the store's back."""
        if self.kind == "sqlite-file":
            conn = sqlite3.connect(self.path, isolation_level=None)
        elif self.kind == "postgresql":
            import psycopg

            conn = psycopg.connect(POSTGRES_URL, autocommit=True)
            conn.execute(f"SET search_path TO {self.schema}")
        else:
            pytest.skip("nothing but its own store can reach a private in-memory database")
        try:
            yield conn
        finally:
            conn.close()

    def tamper(self, statement: str, params: tuple[Any, ...] = ()) -> None:
        """Drop the append-only guards, then run `statement` (with ? placeholders)."""
        with self.raw() as conn:
            if self.kind == "postgresql":
                for trigger in POSTGRES_GUARDS:
                    conn.execute(f"DROP TRIGGER {trigger} ON audit_events")
                statement = statement.replace("?", "%s")
            else:
                for trigger in SQLITE_GUARDS:
                    conn.execute(f"DROP TRIGGER {trigger}")
            conn.execute(statement, params)

    def close_all(self) -> None:
        for db in self.opened:
            with suppress(StoreUnavailable):
                db.close()


@contextmanager
def store_target(kind: str, tmp_path: Path) -> Iterator[StoreTarget]:
    if kind == "sqlite-file":
        path = tmp_path / "audit.db"
        target = StoreTarget(kind, f"sqlite:///{path}", path=path)
    elif kind == "sqlite-memory":
        target = StoreTarget(kind, "sqlite:///:memory:")
    else:
        require_postgres()
        target = StoreTarget(kind, "", schema=f"t_{uuid.uuid4().hex[:16]}")
        target.url = f"{POSTGRES_URL}?schema={target.schema}"
    try:
        yield target
    finally:
        target.close_all()
        if target.schema is not None:
            _drop_schema(target.schema)


def _drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


# -- filling a store with real executions -----------------------------------------------


def seeded_run(db: ExecutionDatabase, seed: int = 7, until: float | None = None) -> SimulatedWorld:
    """A seeded order flow through the engine; `until` (seconds in) stops it mid-flight."""
    world = SimulatedWorld.build(seed, network=DEMO_NETWORK, database=db)

    def arrivals() -> Iterator[Any]:
        for arrival in order_flow(FLOW, seed):
            yield world.env.timeout(arrival.delay)
            world.engine.submit(arrival.rpm)

    world.env.process(arrivals())
    world.env.run(until=None if until is None else DEFAULT_START + until)
    return world


def decision(decision_id: str, symbol: str = "EURUSD", units: int = 100_000) -> dict[str, Any]:
    return {
        "decision": {
            "status": "APPROVED",
            "decision_id": decision_id,
            "approved_trade": {"symbol": symbol, "direction": 1, "position_units": units},
        }
    }


def requested(decision_id: str, at: float = DEFAULT_START) -> ExecutionRequested:
    """The first record of an execution, exactly as the engine writes it."""
    rpm = RPMOutput.model_validate(decision(decision_id))
    request = build_request(rpm, idempotency_key_for(rpm), EngineConfig(), at, "test-engine")
    return ExecutionRequested(request.execution_id, at, request)


def append_outcome(db: ExecutionDatabase, event: ExecutionRequested) -> str:
    try:
        db.append(event)
    except DuplicateExecution as duplicate:
        return f"duplicate:{duplicate.execution_id}"
    return "won"


def race_to_append(url: str, event: ExecutionRequested, barrier: Any, results: Any) -> None:
    """One contender in a separate OS process: open, wait for the others, append."""
    db = open_database(url)
    try:
        barrier.wait(timeout=60)
        results.put(append_outcome(db, event))
    finally:
        db.close()


def in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run `work(i)` on `count` threads released together; returns results or exceptions."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        barrier.wait(timeout=60)
        try:
            results[index] = work(index)
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


# -- what tamperers and exports produce ---------------------------------------------------


def appends(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """An exported trail's rows as its records: the rows (events) of each seq, in order."""
    return [list(group) for _, group in groupby(rows, key=lambda row: row["seq"])]


def chain_problem(rows: list[dict[str, Any]]) -> str | None:
    """Re-verify an exported trail from its rows alone, as a tool outside the engine would:
    consecutive seqs, each record linked to the one before, each hash recomputed from its
    rows. None when all hold, else the first problem."""
    records = appends(rows)
    for before, record in pairwise(records):
        if (record[0]["seq"], record[0]["prev_hash"]) != (before[0]["seq"] + 1, before[0]["hash"]):
            return f"record {record[0]['seq']} does not follow record {before[0]['seq']}"
    for record in records:
        first = record[0]
        at, kind, payload = stored_record(record)
        if rehash(first | {"at": at, "kind": kind}, payload) != first["hash"]:
            return f"record {first['seq']} does not hash to its hash"
    return None


def rehash(row: dict[str, Any], payload: str) -> str:
    """The hash a forger would compute for `row` carrying `payload` instead."""
    return record_hash(
        row["prev_hash"],
        row["seq"],
        row["execution_id"],
        row["at"],
        row["kind"],
        payload,
        row["engine_version"],
        row["config_version"],
    )


CSV_DTYPES = {column: "string" for column in COLUMNS} | {"seq": "Int64"}


def export_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An exported file's rows: every column, the payload as its canonical JSON text."""
    return [
        {column: row.get(column) for column in COLUMNS}
        | {"payload": canonical_json(row["payload"])}
        for row in rows
    ]
