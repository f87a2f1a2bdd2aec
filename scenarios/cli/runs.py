"""The scenario commands: demo, run and sweep. A module of their own so that running one
imports neither the API nor the calibration (`scenarios.cli.root` loads only this module for
them): a sweep's start-up is serial time that its workers cannot share."""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from engine.core.costing import CostEstimator
from engine.store import StoreUnavailable
from scenarios.batch_gc import batch_gc
from scenarios.cli.common import OneLineErrors, console, cost_estimator, err, fail, open_store
from scenarios.crash import KillPhase, crash_run
from scenarios.demo import demo_scenario
from scenarios.invariants import Violation
from scenarios.limits import MAX_ORDERS, MAX_SEED
from scenarios.runner import RunSummary, read_inputs, run_scenario
from scenarios.spec import Scenario, ScenarioError, load_scenario
from scenarios.sweep import TABLE, parse_seeds, parse_values, write_table
from scenarios.sweep import sweep as run_sweep

runs_app = typer.Typer(cls=OneLineErrors, no_args_is_help=True)


@runs_app.command()
def demo(
    orders: Annotated[
        int, typer.Option(min=1, max=MAX_ORDERS, help="Approved trades to execute")
    ] = 1_000,
    seed: Annotated[
        int, typer.Option(min=0, max=MAX_SEED, help="Seed of the market, network and order flow")
    ] = 7,
    db: Annotated[
        str | None,
        typer.Option(
            help="Audit store URL: sqlite:///file.db, postgresql://... (an empty one); "
            "default: a temporary SQLite file, removed after the run"
        ),
    ] = None,
) -> None:
    """Execute N approved trades against the simulated market and summarise the run."""
    if db is not None:
        open_store(db).close()  # a bad URL is refused before the run starts
    _run_and_report(demo_scenario(orders, seed), Path.cwd(), seed, None, db)


@runs_app.command()
def run(
    scenario_file: Annotated[
        Path, typer.Argument(help="A scenario file, e.g. scenarios/calm.toml")
    ],
    seed: Annotated[
        int | None, typer.Option(min=0, max=MAX_SEED, help="Override the file's seed")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write audit.db, executions.parquet, summary.json here")
    ] = None,
    crash: Annotated[
        bool, typer.Option(help="Crash chaos: SIGKILL the engine process mid-run and restart it")
    ] = False,
    kills: Annotated[int, typer.Option(min=1, max=50, help="Crash mode: how many kills")] = 4,
    cost_model: Annotated[
        Path | None,
        typer.Option(
            help="A model file (arbitrex model fit; a model file is code: only your own): "
            "the engine records its slippage estimate for each order, as evidence only"
        ),
    ] = None,
) -> None:
    """Run a scenario and check its invariants; exit 1 if any is violated."""
    scenario = _load(scenario_file)
    if crash:
        _crash_and_report(scenario, scenario_file, seed, out, kills)
        return
    estimator = cost_estimator(cost_model) if cost_model is not None else None
    _run_and_report(scenario, scenario_file.parent, seed, out, None, estimator)


@runs_app.command()
def sweep(
    scenario_file: Annotated[Path, typer.Argument(help="A scenario file")],
    seeds: Annotated[str, typer.Option(help="Seeds: 1-8 or 1,5,9")] = "1-4",
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="A parameter grid: orders.rate_per_second=5,10 (repeatable)"),
    ] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Local processes")] = None,
    dask: Annotated[
        str | None, typer.Option(help="Run on a Dask cluster at this address (dask extra)")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help=f"A folder: the table ({TABLE}) and each point's run folder (points/), "
            "which arbitrex report reads (with --dask, a folder every worker shares); "
            "a .parquet file: the table alone"
        ),
    ] = None,
) -> None:
    """Run a scenario over parameter grids and seeds, in parallel; gather one table."""
    _load(scenario_file)
    out_dir = out if out is not None and out.suffix != ".parquet" else None
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise typer.BadParameter(f"{out_dir} is a file, not a folder", param_hint="--out")
    try:
        seed_list = parse_seeds(seeds)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--seeds") from error
    grid: dict[str, list[object]] = {}
    for item in set_ or []:
        name, equals, values = item.partition("=")
        if not equals or not name or not values:
            raise typer.BadParameter(f"{item!r}: use name=value1,value2", param_hint="--set")
        grid[name] = parse_values(values)
    try:
        frame = run_sweep(
            scenario_file, grid, seed_list, workers=workers, dask_address=dask, out_dir=out_dir
        )
    except ValueError as error:  # a bad scenario, --set value or input file, from any run
        fail(2, error)
    table = Table(title=f"sweep of {scenario_file.name}: {len(frame)} runs")
    shown = [c for c in frame.columns if not c.startswith("status_")][:12]
    for column in shown:
        table.add_column(column)
    for _, row in frame.iterrows():
        table.add_row(*(_cell(row[c]) for c in shown))
    console.print(table)
    if out_dir is not None:
        console.print(f"results written to {out_dir / TABLE}, runs to {out_dir}/points/")
    elif out is not None:
        write_table(frame, out)
        console.print(f"results written to {out}")
    if int(frame["violations"].sum()):
        raise typer.Exit(1)


def _cell(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _load(path: Path) -> Scenario:
    try:
        return load_scenario(path)
    except ScenarioError as error:
        fail(2, f"invalid scenario {error}")


@contextmanager
def _progress_bar(name: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr that appears with the run's first progress: a run refused
    before then prints its one line of error and nothing else. On leaving, the bar draws its
    last line, so an error printed after it is not drawn over."""
    progress = Progress(
        TextColumn(name, markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    )

    def update(done: int, total: int) -> None:
        if not progress.tasks:
            progress.start()
            progress.add_task("orders", total=total)
        progress.update(progress.task_ids[0], completed=done, total=total)

    try:
        yield update
    finally:
        if progress.live.is_started:  # stopping an unstarted bar still prints a blank line
            progress.stop()


def _run_and_report(
    scenario: Scenario,
    base_dir: Path,
    seed: int | None,
    out_dir: Path | None,
    db_url: str | None,
    cost_estimator: CostEstimator | None = None,
) -> None:
    real_start = time.perf_counter()
    try:
        with _progress_bar(scenario.name) as on_progress, batch_gc():
            summary = run_scenario(
                scenario,
                base_dir,
                seed=seed,
                out_dir=out_dir,
                db_url=db_url,
                on_progress=on_progress,
                cost_estimator=cost_estimator,
            )
    except (ScenarioError, ValueError) as error:
        fail(2, error)
    except StoreUnavailable as error:
        fail(1, error)
    real_seconds = time.perf_counter() - real_start
    _print_summary(summary)
    if out_dir is not None:
        written = sorted(
            p.name for p in out_dir.iterdir() if p.suffix in (".db", ".parquet", ".json")
        )
        console.print(f"outputs in {out_dir}: {', '.join(written)}")
    # Timing goes to stderr: stdout holds only results, identical for the same seed.
    err.print(
        f"virtual {summary.virtual_seconds:.1f}s in real {real_seconds:.2f}s "
        f"({summary.orders / real_seconds:,.0f} executions/s)"
    )
    if not summary.ok:
        raise typer.Exit(1)


def _crash_and_report(
    scenario: Scenario, path: Path, seed: int | None, out_dir: Path | None, kills: int
) -> None:
    try:
        # The engine processes read the inputs again; a bad one is named before any starts.
        read_inputs(scenario, scenario.seed if seed is None else seed, path.parent)
        outcome = crash_run(
            path, out_dir or Path(tempfile.mkdtemp(prefix="arbitrex-crash-")), kills, seed
        )
    except ValueError as error:  # ScenarioError among them
        fail(2, error)
    phases = Counter(point.phase for point in outcome.kills)
    before_stops = (
        f", {phases[KillPhase.BEFORE_STOPS]} with the fill on record and its stops on their way"
        if phases[KillPhase.BEFORE_STOPS]
        else ""
    )
    console.print(
        f"{scenario.name} under crash chaos: {len(outcome.kills)} engine processes killed "
        f"mid-order ({phases[KillPhase.IN_TRANSIT]} with the request on its way, "
        f"{phases[KillPhase.AT_BROKER]} with the order at the broker{before_stops}), "
        f"{outcome.executions} executions, {outcome.broker_orders} broker orders"
    )
    recovery = outcome.recovery
    protected = (
        f", {recovery.protected} given their stops (filled before the kill)"
        if recovery.protected
        else ""
    )
    console.print(
        f"recovery: {recovery.adopted} executions adopted (found at the broker and "
        f"followed), {recovery.abandoned} abandoned (never reached the broker){protected}"
    )
    _print_violations(outcome.violations, outcome.invariants_checked)
    if outcome.violations:
        raise typer.Exit(1)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _print_summary(summary: RunSummary) -> None:
    console.print(f"{summary.scenario}: {summary.orders} executions (seed {summary.seed})")
    statuses = Table(title="by status")
    statuses.add_column("status")
    statuses.add_column("count", justify="right")
    for status, count in summary.by_status.items():
        statuses.add_row(status, str(count))
    console.print(statuses)

    quality = Table(title="execution quality")
    quality.add_column("measure")
    for column in ("mean", "p50", "p95", "p99"):
        quality.add_column(column, justify="right")
    s, f = summary.slippage_pips, summary.fill_time_seconds
    quality.add_row(
        "slippage (pips, + adverse)",
        _fmt(s.mean, 3),
        _fmt(s.p50, 2),
        _fmt(s.p95, 2),
        _fmt(s.p99, 2),
    )
    quality.add_row("fill time (s)", _fmt(f.mean), _fmt(f.p50), _fmt(f.p95), _fmt(f.p99))
    console.print(quality)

    for title, counts in (
        ("not filled, by reason", summary.rejections_by_reason),
        ("faults injected", summary.faults_injected),
        ("positions closed, by how", summary.exits_by_reason),
    ):
        if counts:
            table = Table(title=title)
            table.add_column("what")
            table.add_column("count", justify="right")
            for name, count in counts.items():
                table.add_row(name, str(count))
            console.print(table)
    console.print(f"broker orders: {summary.broker_orders}")
    console.print(f"virtual duration: {summary.virtual_seconds:.3f}s")
    _print_violations(list(summary.violations), summary.invariants_checked)
    console.print(f"results hash: {summary.results_hash}")


def _print_violations(violations: list[Violation], checked: tuple[str, ...]) -> None:
    if not violations:
        console.print(f"invariants: all {len(checked)} hold")
        return
    table = Table(title=Text("INVARIANTS VIOLATED", style="red"))
    table.add_column("invariant")
    table.add_column("detail")
    for violation in violations:
        table.add_row(violation.invariant, violation.detail)
    console.print(table)
