"""`arbitrex`: the kit's one command line."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine.store import (
    StoreUnavailable,
    export_audit_trail_to,
    open_database,
    verify_audit_chain,
)
from scenarios.demo import RunSummary, run_demo

app = typer.Typer(
    help="Arbitrex execution kit: simulate, run and audit FX executions.", no_args_is_help=True
)
audit = typer.Typer(help="Verify and export the audit trail.", no_args_is_help=True)
app.add_typer(audit, name="audit")
out = Console()
err = Console(stderr=True)


@app.callback()
def _root() -> None:
    """Arbitrex execution kit."""


@app.command()
def demo(
    orders: Annotated[
        int, typer.Option(min=1, max=1_000_000, help="Approved trades to execute")
    ] = 1_000,
    seed: Annotated[
        int, typer.Option(min=0, help="Seed of the market, network and order flow")
    ] = 7,
    db: Annotated[
        str, typer.Option(help="Audit store URL: memory://, sqlite:///file.db, postgresql://...")
    ] = "memory://",
) -> None:
    """Execute N approved trades against the simulated market and summarise the run."""
    # Simulation commits in groups: a million-order run is not bound by per-row commits.
    database = _open(db, durability="batched")
    real_start = time.perf_counter()
    with (
        database,
        Progress(
            TextColumn("executing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
        ) as progress,
    ):
        task = progress.add_task("orders", total=orders)
        summary, _ = run_demo(
            orders,
            seed,
            database=database,
            on_progress=lambda done: progress.update(task, completed=done),
        )
    real_seconds = time.perf_counter() - real_start
    _print_summary(summary)
    # Timing goes to stderr: stdout holds only results, identical for the same seed.
    err.print(
        f"virtual {summary.virtual_seconds:.1f}s in real {real_seconds:.2f}s "
        f"({summary.orders / real_seconds:,.0f} executions/s)"
    )


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _print_summary(summary: RunSummary) -> None:
    statuses = Table(title=f"{summary.orders} executions")
    statuses.add_column("status")
    statuses.add_column("count", justify="right")
    for status, count in summary.by_status.items():
        statuses.add_row(status, str(count))
    out.print(statuses)

    quality = Table(title="execution quality")
    quality.add_column("measure")
    for column in ("p50", "p95", "p99"):
        quality.add_column(column, justify="right")
    s, f = summary.slippage_pips, summary.fill_time_seconds
    quality.add_row("slippage (pips, + adverse)", _fmt(s.p50, 2), _fmt(s.p95, 2), _fmt(s.p99, 2))
    quality.add_row("fill time (s)", _fmt(f.p50), _fmt(f.p95), _fmt(f.p99))
    out.print(quality)

    if summary.rejections_by_reason:
        reasons = Table(title="not filled, by reason")
        reasons.add_column("reason")
        reasons.add_column("count", justify="right")
        for reason, count in summary.rejections_by_reason.items():
            reasons.add_row(reason, str(count))
        out.print(reasons)
    out.print(f"broker orders: {summary.broker_orders}")
    out.print(f"virtual duration: {summary.virtual_seconds:.3f}s")
    out.print(f"results hash: {summary.results_hash}")


def _open(url: str, durability: str = "sync"):
    try:
        return open_database(url, durability=durability)  # type: ignore[arg-type]
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--db") from error
    except StoreUnavailable as error:
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from error


def _moment(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise typer.BadParameter(f"not an ISO 8601 time: {text!r}", param_hint=name) from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@audit.command("verify")
def audit_verify(
    db: Annotated[str, typer.Option(help="Audit store URL")],
) -> None:
    """Walk the hash chain: name the first bad record, or say how many verified."""
    with _open(db) as database:
        try:
            result = verify_audit_chain(database)
        except TypeError as error:
            raise typer.BadParameter(str(error), param_hint="--db") from error
    if result.ok:
        out.print(f"OK: {result.records_verified} records verified; head {result.head_hash}")
        return
    where = (
        f"execution {result.first_bad_execution_id}" if result.first_bad_execution_id else "missing"
    )
    out.print(
        f"[red]TAMPERED[/red]: record {result.first_bad_seq} ({where}): {result.problem}; "
        f"{result.records_verified} records before it verified"
    )
    raise typer.Exit(1)


@audit.command("export")
def audit_export(
    db: Annotated[str, typer.Option(help="Audit store URL")],
    out_path: Annotated[Path, typer.Option("--out", help="File to write")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv, jsonl or parquet (default: from --out)")
    ] = None,
    start: Annotated[str | None, typer.Option(help="ISO 8601; default: the beginning")] = None,
    end: Annotated[str | None, typer.Option(help="ISO 8601; default: no end")] = None,
) -> None:
    """Export the audit records stamped in [start, end) for compliance review."""
    chosen = fmt or out_path.suffix.lstrip(".")
    if chosen not in ("csv", "jsonl", "parquet"):
        raise typer.BadParameter(f"{chosen!r}: use csv, jsonl or parquet", param_hint="--format")
    lo = _moment(start, "--start") or datetime(1970, 1, 1, tzinfo=UTC)
    hi = _moment(end, "--end") or datetime(9999, 1, 1, tzinfo=UTC)
    with _open(db) as database:
        written = export_audit_trail_to(database, out_path, chosen, lo, hi)  # type: ignore[arg-type]
    out.print(f"{written} records written to {out_path}")


def main() -> None:
    app()
