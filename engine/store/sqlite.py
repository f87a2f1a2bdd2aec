"""SQLite, the embedded default: one file in WAL mode, fsynced on every commit."""

from __future__ import annotations

import fcntl
import hashlib
import os
import sqlite3
import threading
from contextlib import suppress
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from engine.store.base import StoreUnavailable
from engine.store.sql import DEFAULT_TIMEOUT_SECONDS, parse_timeout

_WAL_ATTEMPTS = 20
CHECKPOINT_INTERVAL_SECONDS = 0.25
# A log this large means writes never paused long enough for it to be restarted.
WAL_RESTART_BYTES = 64 * 1024 * 1024
_USAGE = "use sqlite:///relative/path.db, sqlite:////absolute/path.db or sqlite:///:memory:"


class SQLiteBackend:
    dialect = "sqlite"
    driver_errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self, path: str | None, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        """`path` None is a private in-memory database that lives as long as its connection."""
        self.path = path
        self.timeout = timeout
        self.label = f"SQLite database {path}" if path else "SQLite in-memory database"
        self._checkpointer: _Checkpointer | None = None

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

    def connect(self) -> sqlite3.Connection:
        # Autocommit at the driver level: the store issues BEGIN IMMEDIATE / COMMIT itself.
        conn = sqlite3.connect(
            self.path or ":memory:",
            timeout=self.timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        if self.path:
            self._use_wal(conn)
            # No commit of ours copies the log into the database file: the checkpointer does.
            conn.execute("PRAGMA wal_autocheckpoint=0")
            if self._checkpointer is None:
                self._checkpointer = _Checkpointer(self.path, self.timeout)
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def after_commit(self, conn: sqlite3.Connection) -> None:
        """Bound the log. SQLite writes it again from its start only when a write begins
        after a complete checkpoint; under a steady stream of commits (a simulation, a busy
        day) the checkpointer never completes one in time, and the log would grow by every
        record ever written. Past WAL_RESTART_BYTES the writer finishes the checkpoint
        itself (little is left: the checkpointer copied the rest) and restarts the log."""
        if self.path is None:
            return
        try:
            size = os.stat(self.path + "-wal").st_size
        except FileNotFoundError:
            return
        if size > WAL_RESTART_BYTES:
            conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()

    def close(self) -> None:
        """Stop the checkpointer; the writer's connection, closed last, checkpoints the rest."""
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None

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

    def begin_exclusive(self, conn: sqlite3.Connection, lock: str) -> None:
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

    # -- engine leases: an flock on a file beside the database, released by the OS when
    # the holding process dies, however it dies.

    def _lease_file(self, instance_id: str) -> Path:
        assert self.path is not None
        name = hashlib.sha256(instance_id.encode()).hexdigest()[:32]
        return Path(self.path + ".leases") / name

    def hold_lease(self, instance_id: str) -> IO[bytes] | None:
        if self.path is None:
            return None  # a private in-memory database: the process is the lease
        path = self._lease_file(instance_id)
        path.parent.mkdir(exist_ok=True)
        handle = path.open("wb")
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return handle

    def lease_alive(self, instance_id: str) -> bool | None:
        """None when this backend cannot tell (in memory): the caller's registry knows."""
        if self.path is None:
            return None
        path = self._lease_file(instance_id)
        if not path.exists():
            return False
        with path.open("rb") as probe:
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(probe, fcntl.LOCK_UN)
            return False


class _Checkpointer:
    """Copies the write-ahead log into the database file, on a thread of its own.

    SQLite's automatic checkpoint runs inside whichever commit crosses its threshold, so
    one commit in a few hundred would also write and fsync the database file — the live
    path's p99, measured at several milliseconds. The writer's connection turns it off and
    this thread checkpoints in PASSIVE mode instead, which never waits for (or blocks) the
    writer; the writer's commits stay as durable as before (synchronous=FULL on the log).
    """

    def __init__(self, path: str, timeout: float) -> None:
        self._path, self._timeout = path, timeout
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"checkpoint {path}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, timeout=self._timeout, isolation_level=None)
        try:
            while not self._stopped.wait(CHECKPOINT_INTERVAL_SECONDS):
                # A busy or failing checkpoint is retried next round; the log only grows.
                with suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            conn.close()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
