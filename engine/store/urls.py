"""Opening the audit store a URL names: memory://, sqlite:// or postgresql://."""

from __future__ import annotations

from engine.store.backend import DEFAULT_BATCH_SIZE, Backend, Durability, check_durability
from engine.store.base import ExecutionDatabase
from engine.store.memory import InMemoryExecutionDatabase
from engine.store.quotes import DEFAULT_QUOTE_RETENTION_SECONDS
from engine.store.sql import SQLExecutionDatabase

SUPPORTED_URLS = (
    "memory://, sqlite:///relative/path.db, sqlite:////absolute/path.db, sqlite:///:memory:, "
    "postgresql://user@host:port/dbname[?schema=name]"
)


def open_database(
    url: str,
    *,
    durability: Durability = "sync",
    batch_size: int = DEFAULT_BATCH_SIZE,
    schema: str | None = None,
    quote_retention_seconds: float = DEFAULT_QUOTE_RETENTION_SECONDS,
) -> ExecutionDatabase:
    """Open (and migrate) the store a URL names; see SUPPORTED_URLS for the forms.

    `schema` places a PostgreSQL store in its own schema (also `?schema=` in the URL);
    `?timeout=` bounds the wait for the write lock, in seconds, on either database.
    `quote_retention_seconds`: how much of each symbol's quote tape the store keeps.
    """
    check_durability(durability, batch_size)
    scheme, separator, rest = url.partition("://")
    if not separator:
        raise ValueError(f"malformed database URL {url!r}: expected one of {SUPPORTED_URLS}")
    if schema is not None and scheme not in ("postgresql", "postgres"):
        raise ValueError(f"a schema applies to PostgreSQL only, not to {scheme}:// stores")
    backend: Backend
    if scheme == "memory":
        if rest:
            raise ValueError(f"malformed database URL {url!r}: memory:// takes nothing more")
        return InMemoryExecutionDatabase(quote_retention_seconds=quote_retention_seconds)
    # The backends are imported on use: opening a store loads its own driver only.
    if scheme == "sqlite":
        from engine.store.sqlite import SQLiteBackend

        backend = SQLiteBackend.from_url(url)
    elif scheme in ("postgresql", "postgres"):
        from engine.store.postgres import PostgresBackend

        backend = PostgresBackend.from_url(url, schema)
    else:
        raise ValueError(
            f"unsupported database URL scheme {scheme!r}: expected one of {SUPPORTED_URLS}"
        )
    return SQLExecutionDatabase(
        backend,
        durability=durability,
        batch_size=batch_size,
        quote_retention_seconds=quote_retention_seconds,
    )
