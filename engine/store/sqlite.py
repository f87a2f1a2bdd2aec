"""SQLite, the embedded default: one file in WAL mode, fsynced on every commit unless the
store's durability is batched or the commit is one the engine need not wait for (lazy)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from filelock import BaseFileLock, FileLock, Timeout

from engine.store.backend import DEFAULT_TIMEOUT_SECONDS, Durability, parse_timeout
from engine.store.base import StoreUnavailable

_WAL_ATTEMPTS = 20
# FULL fsyncs the log on every commit: a commit is durable when it returns, as the live path
# (write-ahead, before the order leaves) needs. NORMAL, in WAL mode, fsyncs only at
# checkpoints: a power cut may take the last commits back, never the database's integrity;
# "batched" (simulation) already accepts losing what is not yet committed.
_SYNCHRONOUS: dict[Durability, str] = {"sync": "FULL", "batched": "NORMAL"}
# A batched store's commits are large (engine.store.backend.DEFAULT_BATCH_SIZE events) and
# dirty pages all over the indexes on execution ids. A 16 MiB page cache (SQLite's default
# is 2 MiB) keeps a commit's pages in memory until it commits, instead of spilling them to
# the log and writing them again; a checkpoint every 10,000 pages of log (40 MB; 1,000 by
# default) copies a page rewritten by many commits into the database once. Over a
# 50,000-order `arbitrex run`, with the larger batches: 26.7 -> 11.3 KB written per
# execution (benchmarks/README.md). The live store keeps SQLite's defaults: its commits are
# small, and a larger checkpoint would be a longer stall on some order's path.
_BATCHED_PRAGMAS = ("PRAGMA cache_size=-16384", "PRAGMA wal_autocheckpoint=10000")
_USAGE = "use sqlite:///relative/path.db, sqlite:////absolute/path.db or sqlite:///:memory:"


class SQLiteBackend:
    dialect = "sqlite"
    driver_errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self, path: str | None, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        """`path` None is a private in-memory database that lives as long as its connection."""
        self.path = path
        self.timeout = timeout
        self.label = f"SQLite database {path}" if path else "SQLite in-memory database"

    @classmethod
    def from_url(cls, url: str) -> SQLiteBackend:
        parts = urlsplit(url)
        if parts.netloc:
            raise ValueError(f"SQLite URL {url!r} names a host ({parts.netloc!r}): {_USAGE}")
        if parts.fragment:
            raise ValueError(f"SQLite URL {url!r} has a fragment (#{parts.fragment}): {_USAGE}")
        path = unquote(parts.path[1:])
        if not path:
            raise ValueError(f"SQLite URL {url!r} names no database file: {_USAGE}")
        timeout = DEFAULT_TIMEOUT_SECONDS
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name != "timeout":
                raise ValueError(
                    f"SQLite URL {url!r} has unknown parameter {name!r}; the only one is "
                    "timeout (seconds to wait for the write lock)"
                )
            timeout = parse_timeout(value, url)
        return cls(None if path == ":memory:" else path, timeout)

    def connect(self, durability: Durability = "sync") -> sqlite3.Connection:
        # Autocommit at the driver level: the store issues BEGIN IMMEDIATE / COMMIT itself.
        conn = sqlite3.connect(
            self.path or ":memory:",
            timeout=self.timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        if self.path:
            self._use_wal(conn)
        conn.execute(f"PRAGMA synchronous={_SYNCHRONOUS[durability]}")
        if durability == "batched":
            for pragma in _BATCHED_PRAGMAS:
                conn.execute(pragma)
        return conn

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        # Switching to WAL may answer "database is locked" at once, without the busy
        # timeout, while another connection creates the same file. Waiting for the write
        # lock (which does honour the timeout) and trying again settles that race.
        for attempt in range(1, _WAL_ATTEMPTS + 1):
            try:
                mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
                if str(mode).lower() != "wal":
                    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorname != "SQLITE_BUSY" or attempt == _WAL_ATTEMPTS:
                    raise
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
        if str(mode).lower() != "wal":
            conn.close()
            raise StoreUnavailable(
                f"{self.label} cannot use write-ahead logging (journal mode stays {mode}); "
                "put it on a local file system"
            )

    def begin_exclusive(
        self, conn: sqlite3.Connection, lock: str, lazy: bool | None = None
    ) -> None:
        # The safety level belongs to the connection and cannot change inside a
        # transaction: set before each one that chooses. NORMAL in WAL mode still writes
        # the commit to the log (a crash of this process loses nothing) but syncs it only
        # with the next FULL commit or checkpoint, each of which syncs the whole log: what
        # is durable is always a prefix of the commits, so a power cut takes only the newest
        # records and the chain keeps no hole (sqlite.org/pragma.html#pragma_synchronous,
        # sqlite.org/wal.html).
        if lazy is not None:
            conn.execute("PRAGMA synchronous=NORMAL" if lazy else "PRAGMA synchronous=FULL")
        # SQLite has one write lock per database: it serves every named lock.
        conn.execute("BEGIN IMMEDIATE")

    def create_namespace(self, conn: sqlite3.Connection) -> None:
        """A SQLite file is its own namespace."""

    def table_exists(self, conn: sqlite3.Connection, table: str) -> bool:
        query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        return conn.execute(query, (table,)).fetchone() is not None

    def is_broken(self, conn: Any) -> bool:
        # Reconnecting would silently swap an in-memory database for an empty one.
        return False

    def sql(self, query: str) -> str:
        return query

    # -- engine leases: a lock on a file beside the database, taken through filelock: flock
    # on POSIX and LockFileEx on Windows, which the OS releases when the holding process
    # dies, however it dies. filelock imports fcntl only where it exists (not on Windows);
    # without it, its lock is a file naming the holder's PID, seen dead once that PID is.

    def _lease_lock(self, instance_id: str) -> BaseFileLock:
        assert self.path is not None
        name = hashlib.sha256(instance_id.encode()).hexdigest()[:32]
        return FileLock(
            Path(self.path + ".leases") / name,
            # A store is shared between threads, so a lease may be released on another
            # thread than the one that took it: a thread-local lock would ignore that release
            # and stay held until the garbage collector happened to finalize it.
            thread_local=False,
            # A file system without flock would otherwise get a marker file, which cannot tell
            # an engine that died on another host from a live one: refuse the lease instead.
            fallback_to_soft=False,
        )

    def hold_lease(self, instance_id: str) -> _HeldLease | None:
        if self.path is None:
            return None  # a private in-memory database: the process is the lease
        lock = self._lease_lock(instance_id)
        Path(lock.lock_file).parent.mkdir(exist_ok=True)
        lock.acquire(blocking=False)  # Timeout, an OSError, when another engine holds it
        return _HeldLease(lock)

    def lease_alive(self, instance_id: str) -> bool | None:
        """None when this backend cannot tell (in memory): the caller's registry knows."""
        if self.path is None:
            return None
        lock = self._lease_lock(instance_id)
        if not Path(lock.lock_file).exists():
            return False  # never held, or released on Windows (probing would create it)
        try:
            lock.acquire(blocking=False)
        except Timeout:
            return True
        lock.release()
        return False


class _HeldLease:
    """A held engine lease. The store releases every lease by closing its handle, as it
    closes a PostgreSQL lease's connection."""

    def __init__(self, lock: BaseFileLock) -> None:
        self._lock = lock

    def close(self) -> None:
        self._lock.release()
