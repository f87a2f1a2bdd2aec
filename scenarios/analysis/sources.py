"""Where executions come from, each with a label and a header saying what it is.

A source is a run folder (`arbitrex run --out`), a point of a sweep (`arbitrex sweep --out
DIR` writes a run folder per point; a bare sweep table holds only each point's run-level
numbers), or an audit database (a live engine's, or a run's): `load_sources` reads any mix
of them into the same frames, so simulated and live trades are measured alike.

Default labels: scenario and seed for a run ("calm s1"), parameter values and seed for a
sweep's point ("faults.reply_loss=0.05 s3"), the file (or database) name for a database.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlsplit

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from engine.core.lifecycle import Execution
from engine.store import ExecutionDatabase, open_database
from engine.store.postgres import _without_password as without_password
from scenarios.analysis.exits import empty_exits
from scenarios.analysis.quality import empty_quotes, enrich
from scenarios.provenance import UNKNOWN, DecisionCounts, invariant_verdict, iso_utc
from scenarios.run_outputs import execution_rows
from scenarios.sweep import TABLE, parameters_of

DATABASE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
# What enrich and the measures read: a table without them is not an executions table.
NEEDED = (
    "execution_id", "symbol", "direction", "intended_units", "executed_units", "status",
    "outcome_reason", "arrival_bid", "arrival_ask", "average_fill_price", "created_at",
    "last_fill_at", "completed_at", "fill_time_seconds",
)  # fmt: skip
SWEEP_NEEDS = ("scenario", "seed", "results_hash")
EXPECTED = (
    "a run folder (arbitrex run --out), a sweep output (arbitrex sweep --out: its folder or "
    "its .parquet table) or an audit database (a .db/.sqlite file, sqlite:///path or "
    "postgresql://... URL)"
)


class SourceError(ValueError):
    """A source that cannot be read: one line naming it and what was expected."""


class RunHeader(BaseModel):
    """A tear sheet's header: what the source is, where it came from, what it holds."""

    model_config = ConfigDict(frozen=True)

    source: str  # the folder, file or URL it was read from (no password)
    scenario: str
    description: str = ""
    seed: int | None = None
    results_hash: str | None = None
    invariants: str = "not checked"  # "passed", "failed: names", "not checked"
    engine_version: str = UNKNOWN
    config_version: str = UNKNOWN
    broker: str = UNKNOWN
    account_currency: str = "USD"
    period_start: str | None = None  # the first decision's time, ISO 8601 UTC
    period_end: str | None = None
    counts: DecisionCounts = DecisionCounts()


@dataclass(frozen=True)
class Source:
    label: str
    header: RunHeader
    executions: pd.DataFrame
    quotes: pd.DataFrame
    exits: pd.DataFrame
    parameters: dict[str, Any] = field(default_factory=dict)
    # A sweep point's run-level numbers as its table row holds them (empty otherwise): all
    # a bare sweep table offers, its executions being elsewhere or gone.
    run_level: dict[str, Any] = field(default_factory=dict)


def load_sources(specs: Sequence[str | Path], labels: Sequence[str] | None = None) -> list[Source]:
    """Read each spec (a path or a database URL); `labels`, one per spec, replace the
    default labels (a sweep's points keep theirs after it: "fast: ... s1")."""
    if not specs:
        raise SourceError(f"no sources given: expected {EXPECTED}")
    if labels and len(labels) != len(specs):
        raise SourceError(f"{len(labels)} labels for {len(specs)} sources: give one per source")
    sources: list[Source] = []
    for index, spec in enumerate(specs):
        found = _read(spec)
        if labels:
            given = labels[index]
            found = [
                replace(s, label=given if len(found) == 1 else f"{given}: {s.label}") for s in found
            ]
        sources.extend(found)
    _check_unique(sources)
    return sources


def parameters_in(sources: Iterable[Source]) -> list[str]:
    """The sweep parameters any source carries, in first-seen order."""
    return list(dict.fromkeys(name for s in sources for name in s.parameters))


def combined(sources: Sequence[Source]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(executions, quotes, exits) of all sources in one frame each, tagged with `label`,
    `run` (the source's position), scenario, seed, account currency and the parameters; a
    source's quotes and exits stay with its own executions."""
    frames, tapes, exits = [], [], []
    for run, source in enumerate(sources):
        if source.executions.empty:  # a bare sweep table's point: run-level numbers only
            continue
        tags = {
            "label": source.label,
            "run": run,
            "scenario": source.header.scenario,
            "seed": source.header.seed,
            "account_currency": source.header.account_currency,
            **source.parameters,
        }
        frames.append(source.executions.assign(**tags))
        tapes.append(source.quotes.assign(run=run))
        exits.append(source.exits.assign(label=source.label, scenario=tags["scenario"], run=run))
    if not frames:
        untagged = {"label": "", "scenario": "", "run": 0}
        return (
            pd.DataFrame(columns=[*NEEDED, *untagged]),
            empty_quotes().assign(run=0),
            empty_exits().assign(**untagged),
        )
    return (
        pd.concat(frames, ignore_index=True),
        pd.concat(tapes, ignore_index=True),
        pd.concat(exits, ignore_index=True),
    )


def enriched(sources: Sequence[Source]) -> pd.DataFrame:
    """Every execution of every source with every measure (`enrich`)."""
    executions, quotes, _ = combined(sources)
    return enrich(executions, quotes)


# -- one spec -----------------------------------------------------------------------------


def _read(spec: str | Path) -> list[Source]:
    text = str(spec)
    if "://" in text:
        return [_database(text)]
    path = Path(spec)
    if path.is_dir():
        if (path / TABLE).is_file():
            return _sweep(path / TABLE, path)
        if (path / "executions.parquet").is_file():
            return [_run_folder(path)]
        raise SourceError(
            f"{path}: a folder with neither executions.parquet nor {TABLE}: expected {EXPECTED}"
        )
    if path.is_file():
        if path.suffix == ".parquet":
            return _sweep(path, None)
        if path.suffix in DATABASE_SUFFIXES:
            return [_database(f"sqlite:///{path.resolve()}", shown=str(path))]
    what = "no such file or folder" if not path.exists() else "not a source"
    raise SourceError(f"{path}: {what}: expected {EXPECTED}")


def _run_folder(
    folder: Path,
    parameters: dict[str, Any] | None = None,
    run_level: dict[str, Any] | None = None,
) -> Source:
    executions = _parquet(folder / "executions.parquet")
    missing = [c for c in NEEDED if c not in executions]
    if missing:
        raise SourceError(f"{folder / 'executions.parquet'}: no column {', '.join(missing)}")
    summary = _summary(folder / "summary.json")
    quotes = _parquet(folder / "quotes.parquet") if (folder / "quotes.parquet").exists() else None
    exits = _parquet(folder / "exits.parquet") if (folder / "exits.parquet").exists() else None
    header = RunHeader(
        source=str(folder),
        scenario=str(summary.get("scenario", folder.name)),
        description=summary.get("description", ""),
        seed=summary.get("seed"),
        results_hash=summary.get("results_hash"),
        invariants=_verdict(summary),
        engine_version=summary.get("engine_version", UNKNOWN),
        config_version=summary.get("config_version", UNKNOWN),
        broker=summary.get("broker", UNKNOWN),
        account_currency=summary.get("account_currency", "USD"),
        **_counted(executions),
    )
    label = _point_label(header, parameters) if parameters is not None else _run_label(header)
    return Source(
        label,
        header,
        executions,
        quotes if quotes is not None else empty_quotes(),
        exits if exits is not None else empty_exits(),
        parameters or {},
        run_level or {},
    )


def _sweep(table_path: Path, folder: Path | None) -> list[Source]:
    """A sweep's points: run folders when the table names them (`run_dir`) under `folder`,
    else the table's run-level numbers alone."""
    table = _parquet(table_path)
    missing = [c for c in SWEEP_NEEDS if c not in table]
    if missing:
        hint = " (give the run folder it is in)" if table_path.name == "executions.parquet" else ""
        raise SourceError(f"{table_path}: not a sweep table, no column {', '.join(missing)}{hint}")
    names = parameters_of(table)
    sources = []
    for number, row in enumerate(table.to_dict("records")):
        parameters = {name: row[name] for name in names}
        run_dir = row.get("run_dir")
        if folder is not None and isinstance(run_dir, str):
            point = folder / run_dir
            if not (point / "executions.parquet").is_file():
                raise SourceError(f"{point}: the sweep's point folder holds no executions.parquet")
            sources.append(_run_folder(point, parameters, row))
        else:
            sources.append(_table_point(table_path, number, row, parameters))
    return sources


def _table_point(
    table_path: Path, number: int, row: dict[str, Any], parameters: dict[str, Any]
) -> Source:
    orders, unapproved = int(row.get("orders", 0)), int(row.get("unapproved", 0))
    violations = int(row.get("violations", 0))
    header = RunHeader(
        source=f"{table_path} row {number}",
        scenario=str(row["scenario"]),
        seed=int(row["seed"]),
        results_hash=str(row["results_hash"]),
        invariants=f"failed ({violations} violations)" if violations else "passed",
        counts=DecisionCounts(
            decisions=orders,
            approved=orders - unapproved,
            unapproved=unapproved,
            rejected=int(row.get("rejected", row.get("status_REJECTED", 0))),
        ),
    )
    empty = pd.DataFrame(columns=list(NEEDED))
    return Source(
        _point_label(header, parameters),
        header,
        empty,
        empty_quotes(),
        empty_exits(),
        parameters,
        row,
    )


def _database(url: str, shown: str | None = None) -> Source:
    """An audit database named by a URL; opened only once it is known to be one."""
    shown = shown or without_password(url)
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        _check_sqlite_file(parts.path[1:], shown)
    try:
        database = open_database(url)
    except ValueError as error:
        raise SourceError(f"{shown}: {error}") from None
    with database:
        source = database_source(database, _database_name(parts), shown)
    if source.executions.empty:
        raise SourceError(f"{shown}: the audit database holds no executions")
    return source


def database_source(database: ExecutionDatabase, name: str, shown: str | None = None) -> Source:
    """An open audit database as a source: its executions as a run writes them, and its
    quote tape; labelled `name`."""
    versions: set[tuple[str, str]] = set()

    def noting_versions(executions: Iterator[Execution]) -> Iterator[Execution]:
        for execution in executions:
            if execution.request is not None:
                request = execution.request
                versions.add((request.engine_version, request.config_version))
            yield execution

    executions = execution_rows(noting_versions(database.executions()))
    counted = _counted(executions) if not executions.empty else {}
    header = RunHeader(
        source=shown or name,
        scenario=name,
        engine_version=", ".join(sorted({engine for engine, _ in versions})) or UNKNOWN,
        # The engine's configuration as recorded with each execution (a database keeps no
        # scenario, so this is the engine config's version, not a scenario digest).
        config_version=", ".join(sorted({config for _, config in versions})) or UNKNOWN,
        **counted,
    )
    return Source(name, header, executions, _quote_tape(database), empty_exits())


def _quote_tape(database: ExecutionDatabase) -> pd.DataFrame:
    samples = database.quote_tape()
    if not samples:
        return empty_quotes()
    return pd.DataFrame([asdict(sample) for sample in samples])


def _check_sqlite_file(path: str, shown: str) -> None:
    """Opening a store creates (and migrates) it: a mistyped path must not leave an empty
    database behind, nor an unrelated SQLite file gain the audit tables."""
    if path == ":memory:":
        raise SourceError(f"{shown}: an in-memory database holds nothing to report")
    if not Path(path).is_file():
        raise SourceError(f"{shown}: no such database file: expected {EXPECTED}")
    try:
        with sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True) as conn:
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_events'"
            ).fetchone()
    except sqlite3.DatabaseError as error:
        raise SourceError(f"{shown}: not an SQLite database ({error})") from None
    if found is None:
        raise SourceError(f"{shown}: an SQLite database without an audit trail (audit_events)")


def _database_name(parts: SplitResult) -> str:
    """The file's name, or the PostgreSQL database's (and schema's, if one is named)."""
    if parts.scheme == "sqlite":
        return Path(parts.path).name
    schema = dict(parse_qsl(parts.query)).get("schema")
    database = parts.path.lstrip("/") or parts.hostname or "postgresql"
    return f"{database}/{schema}" if schema else database


# -- helpers ------------------------------------------------------------------------------


def _parquet(path: Path) -> pd.DataFrame:
    try:
        return pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowException) as error:
        raise SourceError(f"{path}: not a readable Parquet table ({error})") from None


def _summary(path: Path) -> dict[str, Any]:
    """summary.json, or {} for a folder without one: its header then says "unknown"."""
    if not path.exists():
        return {}
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SourceError(f"{path}: not a readable summary ({error})") from None
    if not isinstance(summary, dict):
        raise SourceError(f"{path}: not a run summary (a JSON object expected)")
    return summary


def _verdict(summary: dict[str, Any]) -> str:
    """From the invariants checked and violated, which every summary.json has held."""
    violations = summary.get("violations") or ()
    failed = (v.get("invariant", "?") for v in violations if isinstance(v, dict))
    return invariant_verdict(summary.get("invariants_checked") or (), failed)


def _counted(executions: pd.DataFrame) -> dict[str, Any]:
    """Counts and period from the executions themselves: the same for every kind of source."""
    created = executions["created_at"].dropna()
    return {
        "counts": DecisionCounts.of(
            executions["status"].value_counts().to_dict(),
            executions["outcome_reason"].value_counts().to_dict(),
        ),
        "period_start": iso_utc(float(created.min())) if len(created) else None,
        "period_end": iso_utc(float(created.max())) if len(created) else None,
    }


def _run_label(header: RunHeader) -> str:
    return header.scenario if header.seed is None else f"{header.scenario} s{header.seed}"


def _point_label(header: RunHeader, parameters: dict[str, Any]) -> str:
    if not parameters:
        return _run_label(header)
    values = " ".join(f"{name}={value}" for name, value in parameters.items())
    return f"{values} s{header.seed}"


def _check_unique(sources: list[Source]) -> None:
    seen: dict[str, str] = {}
    for source in sources:
        if source.label in seen:
            raise SourceError(
                f"two sources are labelled {source.label!r} ({seen[source.label]} and "
                f"{source.header.source}): give each its own --label"
            )
        seen[source.label] = source.header.source
