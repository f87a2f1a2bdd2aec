"""The quote tape: market data kept beside the audit trail, so that live trades have markouts.

A sample is one symbol's bid and ask at one instant (POSIX seconds, UTC): the live engine
samples the broker's quote of each traded symbol once a second (`engine.tape`), and with MT5
the tape can be fetched after the fact from the terminal's tick history (`brokers.mt5.ticks`).

The tape is market data, not evidence: it stays out of the hash chain. It is sampled (what
was not sampled is not there) and pruned as it grows, while the chain must hold every record
it ever held, or `audit verify` could not tell a pruned tape from a tampered trail.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from engine.store.backend import Backend

# What the tape keeps, per symbol: the last week of samples before its newest. Markouts look
# 300 s past a fill, so a day would do for them; a week covers the period a report of live
# trading usually spans, and bounds the table at 604,800 rows per symbol sampled all week
# (about 60 MB in SQLite with its index), rather than letting it grow with the deployment.
DEFAULT_QUOTE_RETENTION_SECONDS = 7 * 86_400.0


@dataclass(frozen=True, slots=True)
class QuoteSample:
    """One symbol's quote at one instant."""

    symbol: str
    time: float  # POSIX seconds, UTC
    bid: float
    ask: float


def check_retention(seconds: float) -> float:
    if not seconds > 0:
        raise ValueError(f"quote_retention_seconds must be positive, not {seconds!r}")
    return float(seconds)


def check_period(start: float, end: float, retention: float) -> None:
    """Refuse (ValueError) a period to record at once that is empty, or longer than the tape
    keeps: its end would prune its beginning as it is recorded."""
    if not start < end:
        raise ValueError(f"the period must end after it starts: {start} to {end}")
    if end - start > retention:
        raise ValueError(
            f"the period spans {(end - start) / 86_400:.3g} days; the quote tape keeps "
            f"{retention / 86_400:.3g} days of a symbol: take a shorter one"
        )


def retention_cutoffs(samples: Iterable[QuoteSample], retention: float) -> dict[str, float]:
    """Per symbol, the time before which its samples are pruned: `retention` before its newest
    in this batch. Judged on the samples' own times, not a clock: recording a past period (a
    fetch after the fact) never prunes what is newer than it."""
    newest: dict[str, float] = {}
    for sample in samples:
        newest[sample.symbol] = max(newest.get(sample.symbol, sample.time), sample.time)
    return {symbol: time - retention for symbol, time in newest.items()}


def in_window(time: float, start: float | None, end: float | None) -> bool:
    """Whether `time` lies in [start, end) (an open side when None)."""
    return (start is None or time >= start) and (end is None or time < end)


def ordered(samples: Sequence[QuoteSample]) -> list[QuoteSample]:
    """The tape's order: by time, then symbol."""
    return sorted(samples, key=lambda sample: (sample.time, sample.symbol))


# -- the quote_tape table (engine.store.migrations), written once for both dialects -------

_INSERT = (
    "INSERT INTO quote_tape (symbol, time, bid, ask) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
_PRUNE = "DELETE FROM quote_tape WHERE symbol = ? AND time < ?"


def write_quotes(
    conn: Any, backend: Backend, samples: Sequence[QuoteSample], retention: float
) -> None:
    """Insert the samples and prune what retention lets go, in one short transaction of its
    own: under a lock of its own on PostgreSQL, so a tape write never waits for the chain."""
    rows = [(q.symbol, float(q.time), float(q.bid), float(q.ask)) for q in samples]
    cutoffs = sorted(retention_cutoffs(samples, retention).items())
    backend.begin_exclusive(conn, "quote-tape")
    try:
        conn.cursor().executemany(backend.sql(_INSERT), rows)
        conn.cursor().executemany(backend.sql(_PRUNE), cutoffs)
        conn.execute("COMMIT")
    except BaseException:
        with suppress(*backend.driver_errors):
            conn.execute("ROLLBACK")
        raise


def read_quotes(
    conn: Any, backend: Backend, start: float | None, end: float | None
) -> list[QuoteSample]:
    bounds = (("time >= ?", start), ("time < ?", end))
    given = [(clause, float(value)) for clause, value in bounds if value is not None]
    where = " AND ".join(clause for clause, _ in given) or "1 = 1"
    query = backend.sql(
        f"SELECT symbol, time, bid, ask FROM quote_tape WHERE {where} ORDER BY time, symbol"
    )
    rows = conn.execute(query, tuple(value for _, value in given)).fetchall()
    return [QuoteSample(*row) for row in rows]
