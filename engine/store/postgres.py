"""PostgreSQL, the production backend, over psycopg 3 (the `postgres` extra).

psycopg is imported only when a PostgreSQL store is opened, so the engine and the SQLite
store never load a server driver.
"""

from __future__ import annotations

import hashlib
import re
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from engine.store.backend import DEFAULT_TIMEOUT_SECONDS, Durability, parse_timeout

SCHEMA_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
DEFAULT_CONNECT_TIMEOUT_SECONDS = 10


def import_psycopg() -> ModuleType:
    try:
        import psycopg
    except ImportError as exc:
        raise ImportError(
            "a postgresql:// store needs psycopg 3, which comes with the postgres extra: "
            'pip install "arbitrex-execution[postgres]"'
        ) from exc
    return psycopg


class PostgresBackend:
    dialect = "postgresql"

    def __init__(
        self,
        conninfo: str,
        label: str,
        schema: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self._psycopg = import_psycopg()
        self.driver_errors: tuple[type[Exception], ...] = (self._psycopg.Error,)
        self.conninfo = conninfo
        self.schema = schema
        self.timeout = timeout
        self.label = label

    @classmethod
    def from_url(cls, url: str, schema: str | None = None) -> PostgresBackend:
        """`schema` (argument or `?schema=` in the URL) isolates one store in its own schema."""
        psycopg = import_psycopg()
        parts = urlsplit(url)
        shown = _without_password(url)
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"PostgreSQL URL {shown!r} has a malformed port") from None
        timeout = DEFAULT_TIMEOUT_SECONDS
        libpq_params = []
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name == "schema":
                if schema is not None and schema != value:
                    raise ValueError(
                        f"PostgreSQL URL {shown!r} names schema {value!r} but the "
                        f"schema argument is {schema!r}: give one"
                    )
                schema = value
            elif name == "timeout":
                timeout = parse_timeout(value, shown)
            else:
                libpq_params.append((name, value))
        if schema is not None and not SCHEMA_PATTERN.match(schema):
            raise ValueError(
                f"schema {schema!r} is not a plain lower-case SQL identifier "
                "(letters, digits, underscores; not starting with a digit; at most 63)"
            )
        if not any(name == "connect_timeout" for name, _ in libpq_params):
            libpq_params.append(("connect_timeout", str(DEFAULT_CONNECT_TIMEOUT_SECONDS)))
        conninfo = urlunsplit(parts._replace(query=urlencode(libpq_params, quote_via=quote)))
        try:
            psycopg.conninfo.conninfo_to_dict(conninfo)
        except psycopg.ProgrammingError as exc:
            raise ValueError(f"malformed PostgreSQL URL {shown!r}: {exc}") from None
        database = parts.path.lstrip("/") or "(default database)"
        where = f"{parts.hostname or 'local socket'}:{port or 5432}"
        label = f"PostgreSQL database {database} at {where}" + (
            f", schema {schema}" if schema else ""
        )
        return cls(conninfo, label, schema, timeout)

    def connect(self, durability: Durability = "sync") -> Any:
        """Every commit is durable whatever the store's durability: the server's own
        synchronous_commit decides, which the store leaves alone."""
        sql = self._psycopg.sql
        # Autocommit at the driver level: the store issues BEGIN / COMMIT itself.
        conn = self._psycopg.connect(self.conninfo, autocommit=True)
        if self.schema:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        # Waiting on the chain lock is bounded: a stuck writer makes us fail safe, not hang.
        conn.execute(f"SET lock_timeout = {round(self.timeout * 1000)}")
        return conn

    def begin_exclusive(self, conn: Any, lock: str, lazy: bool | None = None) -> None:
        conn.execute("BEGIN")
        if lazy:
            # Asynchronous commit for this transaction only: the server may lose it in its
            # own crash, never half of it, and only with every later one (the WAL is flushed
            # in order; PostgreSQL manual, "Asynchronous Commit"), which is what `lazy` allows.
            conn.execute("SET LOCAL synchronous_commit TO OFF")
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key(lock),))

    def create_namespace(self, conn: Any) -> None:
        if self.schema:
            sql = self._psycopg.sql
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            )

    def table_exists(self, conn: Any, table: str) -> bool:
        return conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is not None

    def is_broken(self, conn: Any) -> bool:
        return bool(conn.closed or conn.broken)

    def sql(self, query: str) -> str:
        # The store writes its queries with ? placeholders and no literal question marks.
        return query.replace("?", "%s")

    # -- engine leases: a session-level advisory lock on a connection of its own, which
    # the server drops when the holding process (and so its connection) dies.

    def hold_lease(self, instance_id: str) -> Any:
        conn = self._psycopg.connect(self.conninfo, autocommit=True)
        conn.execute("SELECT pg_advisory_lock(%s)", (self._lock_key(f"lease:{instance_id}"),))
        return conn

    def lease_alive(self, instance_id: str) -> bool | None:
        key = self._lock_key(f"lease:{instance_id}")
        with self._psycopg.connect(self.conninfo, autocommit=True) as probe:
            (free,) = probe.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            if free:
                probe.execute("SELECT pg_advisory_unlock(%s)", (key,))
            return not free

    def _lock_key(self, lock: str) -> int:
        # Advisory locks are database-wide: the key carries the schema so that stores in
        # different schemas (one chain each) never wait for one another.
        name = f"arbitrex:{lock}:{self.schema or 'public'}".encode()
        return int.from_bytes(hashlib.sha256(name).digest()[:8], "big", signed=True)


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))
