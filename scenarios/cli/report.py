"""`arbitrex report`: compare runs, sweep points and audit databases, in the terminal and in
a self-contained HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from engine.store import StoreUnavailable
from scenarios.cli.common import console, fail

UNBOUNDED = 10_000  # columns: the width a table would take if nothing constrained it

if TYPE_CHECKING:
    import pandas as pd

    from scenarios.analysis.tables import Analysis


def report(
    sources: Annotated[
        list[str],
        typer.Argument(
            help="Run folders (arbitrex run --out), sweep outputs (arbitrex sweep --out: the "
            "folder, or a .parquet table), audit databases (a .db file, sqlite:///path, "
            "postgresql://...)",
            show_default=False,
        ),
    ],
    label: Annotated[
        list[str] | None,
        typer.Option(
            help="A label for each source, in order (repeat it); default: scenario "
            "and seed, a sweep point's parameters and seed, a database's name"
        ),
    ] = None,
    baseline: Annotated[
        str | None, typer.Option(help="The label the others are compared with; default the first")
    ] = None,
    out: Annotated[Path, typer.Option(help="The HTML file to write")] = Path("report.html"),
) -> None:
    """A self-contained HTML report of execution quality for one or more runs. Sources of
    any kind, each labelled, side by side: means with bootstrap intervals and differences
    from a baseline, printed here and written to the page with each source's header,
    costs, figures and breakdowns."""
    # Imported here: the analysis loads pandas and plotly, which other commands skip.
    from scenarios.analysis.report import build_report
    from scenarios.analysis.sources import load_sources
    from scenarios.analysis.tables import analyse

    try:
        analysis = analyse(load_sources(sources, label), baseline)
    except ValueError as error:  # SourceError among them, and an unknown baseline
        fail(2, error)
    except StoreUnavailable as error:
        fail(1, error)
    _print(analysis)
    try:
        build_report(analysis, out)
    except OSError as error:
        fail(2, f"{out}: cannot write the report: {error.strerror}")
    console.print(f"report written to {out}")


def _print(analysis: Analysis) -> None:
    from scenarios.analysis.tables import (
        comparison_table,
        comparison_title,
        estimates_table,
        header_fields,
        seeds_table,
    )

    for source in analysis.sources:
        fields = header_fields(source)
        console.print(
            f"{source.label}: {fields['Source']}; seed {fields['Seed']}; results hash "
            f"{fields['Results hash']}; invariants {fields['Invariants']}; "
            f"decisions {fields['Decisions']}",
            soft_wrap=True,
        )
    comparison = comparison_table(analysis)
    if not comparison.empty:
        _rich(comparison, f"execution quality by label: {comparison_title(analysis)}")
    seeds = seeds_table(analysis)
    if not seeds.empty:
        _rich(seeds, "sweep points across seeds")
    estimates = estimates_table(analysis)
    if not estimates.empty:
        _rich(estimates, "pre-trade cost estimate against realised slippage (pips, + adverse)")


def _rich(frame: pd.DataFrame, title: str) -> None:
    """A table whose cells stay whole ("0.42 [0.38, 0.47]" on one line): wider than the
    terminal if need be, rather than squeezed into unreadable fragments."""
    table = Table(title=title)
    for number, column in enumerate(frame.columns):
        table.add_column(column, justify="left" if number == 0 else "right", no_wrap=True)
    for row in frame.itertuples(index=False):
        table.add_row(*map(str, row))
    width = Measurement.get(console, console.options.update_width(UNBOUNDED), table).maximum
    if width <= console.width:
        console.print(table)
    else:  # the shared console clips to its width: this one is as wide as the table
        Console(width=width, file=console.file, markup=False, emoji=False).print(table)
