"""`arbitrex`: the kit's one command line."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from scenarios.demo import RunSummary, run_demo

app = typer.Typer(
    help="Arbitrex execution kit: simulate, run and audit FX executions.", no_args_is_help=True
)
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
) -> None:
    """Execute N approved trades against the simulated market and summarise the run."""
    real_start = time.perf_counter()
    with Progress(
        TextColumn("executing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    ) as progress:
        task = progress.add_task("orders", total=orders)
        summary, _ = run_demo(
            orders, seed, on_progress=lambda done: progress.update(task, completed=done)
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


def main() -> None:
    app()
