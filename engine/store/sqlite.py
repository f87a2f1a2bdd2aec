"""SQLite, the embedded default: one file in WAL mode, fsynced on every commit."""

from __future__ import annotations

import fcntl
import hashlib
import sqlite3
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from engine.store.backend import DEFAULT_TIMEOUT_SECONDS, parse_timeout
from engine.store.base import StoreUnavailable

_WAL_ATTEMPTS = 20
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
        conn.execute("PRAGMA synchronous=FULL")
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
