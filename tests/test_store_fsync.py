"""A SQLite store fsyncs every commit on the live path, and skips it in batched simulation."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import store_backends as sb

from engine.store import SQLExecutionDatabase
from engine.store.backend import Durability
from engine.store.sqlite import SQLiteBackend

FULL, NORMAL = 2, 1  # what PRAGMA synchronous answers


class WatchedSQLite(SQLiteBackend):
    """A SQLite backend that keeps the connections it opens."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.connections: list[sqlite3.Connection] = []

    def connect(self, durability: Durability = "sync") -> sqlite3.Connection:
        conn = super().connect(durability)
        self.connections.append(conn)
        return conn


@pytest.mark.parametrize(("durability", "synchronous"), [("sync", FULL), ("batched", NORMAL)])
def test_the_store_s_connection_syncs_as_its_durability_requires(tmp_path, durability, synchronous):
    backend = WatchedSQLite(tmp_path / "a.db")
    db = SQLExecutionDatabase(backend, durability=durability)
    db.append(sb.requested("one"))

    (conn,) = backend.connections
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == synchronous
    db.close()


def test_a_connection_opened_without_a_durability_is_the_live_path_s(tmp_path):
    conn = SQLiteBackend(str(tmp_path / "a.db")).connect()

    assert conn.execute("PRAGMA synchronous").fetchone()[0] == FULL
    conn.close()
