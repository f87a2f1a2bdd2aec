"""Write-ahead and fail-safe: no order without a durable record, no record lost after one."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from engine.core.config import EngineConfig
from engine.core.events import SubmissionAttempted
from engine.schemas import ExecutionStatus
from engine.store import (
    InMemoryExecutionDatabase,
    StoreUnavailable,
    open_database,
    verify_audit_chain,
)
from sim.latency import LatencyConfig
from sim.market import MarketConfig, SymbolConfig
from sim.network import NetworkConfig
from sim.world import paper_engine
from tests.builders import decision

FAST = EngineConfig(
    poll_interval_seconds=0.01, order_timeout_seconds=2.0, retry_backoff_seconds=0.02
)
STILL = MarketConfig(symbols=(SymbolConfig(symbol="EURUSD", start_mid=1.1, volatility_pips=0.0),))


def locked(path) -> sqlite3.Connection:
    """Another process's exclusive lock: the store cannot write until it is released."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    return holder


def test_an_unwritable_store_refuses_the_execution_and_nothing_reaches_the_broker(tmp_path):
    path = tmp_path / "audit.db"
    database = open_database(f"sqlite:///{path}?timeout=0.1")
    engine, venue = paper_engine(seed=1, market=STILL, config=FAST, database=database)
    holder = locked(path)
    with pytest.raises(StoreUnavailable, match="locked"):
        engine.execute(decision())
    holder.rollback()
    assert venue.orders == {}
    assert list(database.execution_ids()) == []


def test_records_after_the_order_left_are_kept_until_the_store_is_back_and_nothing_new_starts(
    tmp_path,
):
    path = tmp_path / "audit.db"
    database = open_database(f"sqlite:///{path}?timeout=0.05")
    slow = NetworkConfig(latency=LatencyConfig.constant(300.0))
    engine, venue = paper_engine(seed=1, market=STILL, network=slow, config=FAST, database=database)
    result: dict[str, object] = {}
    worker = threading.Thread(
        target=lambda: result.update(first=engine.execute(decision("EURUSD")))
    )
    worker.start()
    deadline = time.monotonic() + 10
    while not any(
        isinstance(e, SubmissionAttempted)
        for eid in database.execution_ids()
        for e in database.events(eid)
    ):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    holder = locked(path)  # the order is on the wire; the store goes away
    worker.join(timeout=10)
    confirmation = result["first"]
    assert confirmation.status is ExecutionStatus.FILLED and len(venue.orders) == 1
    assert engine.unwritten_records > 0
    with pytest.raises(StoreUnavailable, match="not yet durable"):
        engine.execute(decision(decision_id="d-2"))
    assert len(venue.orders) == 1  # the refused execution sent nothing

    holder.rollback()  # the store is back
    second = engine.execute(decision(decision_id="d-2"))
    assert engine.unwritten_records == 0
    assert second.status is ExecutionStatus.FILLED
    first_log = database.get_execution_log(confirmation.execution_id)
    assert first_log is not None and first_log.status is ExecutionStatus.FILLED
    assert verify_audit_chain(database).ok


def test_the_records_up_to_the_order_are_committed_before_the_broker_receives_it(tmp_path):
    path = tmp_path / "audit.db"
    database = open_database(f"sqlite:///{path}")
    engine, _ = paper_engine(seed=1, market=STILL, config=FAST, database=database)
    seen_by_another_connection: list[str] = []
    place_order = engine.broker.place_order

    def place_order_reading_the_file_first(order):
        reader = sqlite3.connect(path)
        seen_by_another_connection.extend(
            kind
            for (kind,) in reader.execute(
                "SELECT kind FROM audit_trail_events ORDER BY seq, position"
            )
        )
        reader.close()
        return place_order(order)

    engine.broker.place_order = place_order_reading_the_file_first  # type: ignore[method-assign]
    assert engine.execute(decision()).status is ExecutionStatus.FILLED
    assert seen_by_another_connection == [
        "ExecutionRequested",
        "ValidationCompleted",
        "SubmissionAttempted",
    ]


def test_an_execution_commits_durably_before_its_order_leaves_and_lazily_when_it_ends():
    database = InMemoryExecutionDatabase()
    batches: list[tuple[list[str], bool]] = []
    append_batch = database.append_batch

    def counting(events, durable=True, folded=None):
        batches.append(([type(event).__name__ for event in events], durable))
        append_batch(events, durable=durable, folded=folded)

    database.append_batch = counting  # type: ignore[method-assign]
    engine, _ = paper_engine(seed=1, market=STILL, config=FAST, database=database)
    assert engine.execute(decision()).status is ExecutionStatus.FILLED
    assert batches == [
        (["ExecutionRequested", "ValidationCompleted", "SubmissionAttempted"], True),
        (["OrderAcknowledged", "OrderFilled", "OrderClosed", "SlippageMeasured"], False),
    ]
