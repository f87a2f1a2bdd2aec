"""Sweeps: one scenario over a grid of parameters and seeds, in parallel.

Local processes by default; a Dask cluster (`--dask ADDRESS`, the `dask` extra) for users
who outgrow one machine. Each point is a whole run, so points are independent and the
results are the same whichever executes them: gathered into one DataFrame in grid order.

With an output folder, each point writes its own run folder (`points/NNN-seedS/`, as
`arbitrex run --out` does) and the table, `sweep.parquet`, names it in `run_dir` (relative
to the folder, so it can be moved): a sweep is then reported like runs, point by point.
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from scenarios.batch_gc import tune_for_batch
from scenarios.limits import MAX_SEED, MAX_SWEEP_SEEDS
from scenarios.runner import RunSummary, run_scenario
from scenarios.spec import ScenarioError, load_scenario


def grid(parameters: dict[str, list[Any]], seeds: list[int]) -> list[tuple[dict[str, Any], int]]:
    """Every combination of the parameters' values, for every seed, in a stable order."""
    names = sorted(parameters)
    combos = itertools.product(*(parameters[name] for name in names)) if names else [()]
    return [(dict(zip(names, values, strict=True)), seed) for values in combos for seed in seeds]


TABLE = "sweep.parquet"
POINTS = "points"
# The table's columns that are not parameters: the run-level numbers of each point.
RUN_LEVEL = ("scenario", "seed", "orders", "unapproved", "rejected", "rejections", "violations")
RUN_LEVEL_PREFIXES = ("status_", "slippage_pips_", "fill_time_s_")
PROVENANCE = ("results_hash", "run_dir")


def run_point(
    scenario_path: str, overrides: dict[str, Any], seed: int, out_dir: str | None = None
) -> dict[str, Any]:
    """One run of the sweep, as a flat row (a top-level function: it travels to workers);
    with `out_dir`, the run's folder is written there, by the worker that ran it."""
    path = Path(scenario_path)
    scenario = load_scenario(path).with_overrides(overrides)
    folder = Path(out_dir) if out_dir is not None else None
    return summary_row(run_scenario(scenario, path.parent, seed=seed, out_dir=folder), overrides)


def summary_row(summary: RunSummary, overrides: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"scenario": summary.scenario, "seed": summary.seed, **overrides}
    row["orders"] = summary.orders
    row["unapproved"] = summary.counts.unapproved
    row["rejected"] = summary.counts.rejected
    for status, count in summary.by_status.items():
        row[f"status_{status}"] = count
    for name, measure in (
        ("slippage_pips", summary.slippage_pips),
        ("fill_time_s", summary.fill_time_seconds),
    ):
        for stat in ("mean", "p50", "p95", "p99"):
            row[f"{name}_{stat}"] = getattr(measure, stat)
    row["rejections"] = sum(summary.rejections_by_reason.values())
    row["violations"] = len(summary.violations)
    row["results_hash"] = summary.results_hash
    return row


def parameters_of(table: pd.DataFrame) -> list[str]:
    """The columns of a sweep table that are parameters (`orders.rate_per_second`), in
    the table's order: all but the run-level numbers and the provenance."""
    return [
        column
        for column in table.columns
        if column not in RUN_LEVEL + PROVENANCE and not column.startswith(RUN_LEVEL_PREFIXES)
    ]


def point_folder(index: int, seed: int, points: int) -> str:
    """`points/007-seed3`: the grid position first, so folders list in the table's order."""
    width = max(3, len(str(points - 1)))
    return f"{POINTS}/{index:0{width}d}-seed{seed}"


Point = tuple[str, dict[str, Any], int, str | None]  # run_point's arguments


def sweep(
    scenario_path: Path,
    parameters: dict[str, list[Any]],
    seeds: list[int],
    workers: int | None = None,
    dask_address: str | None = None,
    out_dir: Path | None = None,
) -> pd.DataFrame:
    """The table of the sweep's runs, in grid order; with `out_dir`, also each point's run
    folder and the table as `out_dir/sweep.parquet`, with the folders in `run_dir`."""
    scenario = load_scenario(scenario_path)
    grid_points = grid(parameters, seeds)
    for overrides, _ in grid_points[:1]:
        scenario.with_overrides(overrides)  # a bad --set fails here, before any run
    path = str(scenario_path.resolve())
    folders = [point_folder(i, seed, len(grid_points)) for i, (_, seed) in enumerate(grid_points)]
    points: list[Point] = [
        (path, overrides, seed, str(out_dir / folder) if out_dir is not None else None)
        for (overrides, seed), folder in zip(grid_points, folders, strict=True)
    ]
    if dask_address is not None:
        rows = _on_dask(dask_address, points)
    else:
        # The workers are the sweep's own processes, each running points only.
        with ProcessPoolExecutor(max_workers=workers, initializer=tune_for_batch) as pool:
            futures = [pool.submit(run_point, *point) for point in points]
            rows = [future.result() for future in futures]
    frame = pd.DataFrame(rows)
    frame = frame.fillna({c: 0 for c in frame.columns if c.startswith("status_")})
    if out_dir is not None:
        frame["run_dir"] = folders
        write_table(frame, out_dir / TABLE)
    return frame


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """The table whole or not at all: written aside, then renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    frame.to_parquet(partial, index=False)
    os.replace(partial, path)


def _on_dask(address: str, points: list[Point]) -> list[dict[str, Any]]:
    try:
        from distributed import Client
    except ImportError as error:
        raise ScenarioError(
            'a Dask sweep needs the dask extra: pip install -e ".[dask]"'
        ) from error
    with Client(address) as client:
        futures = [client.submit(run_point, *point, pure=False) for point in points]
        return client.gather(futures)


def parse_values(text: str) -> list[Any]:
    """`--set name=1,2,3`: numbers become numbers, the rest stay text."""
    values: list[Any] = []
    for item in text.split(","):
        item = item.strip()
        for cast in (int, float):
            try:
                values.append(cast(item))
                break
            except ValueError:
                continue
        else:
            values.append({"true": True, "false": False}.get(item.lower(), item))
    return values


def parse_seeds(text: str) -> list[int]:
    """`1-8` or `1,5,9`: at most MAX_SWEEP_SEEDS seeds, each from 0 to MAX_SEED."""
    refused = ValueError(
        f"seeds {text!r}: give at most {MAX_SWEEP_SEEDS} integers from 0 to {MAX_SEED}, "
        "like 1-8 or 1,5,9"
    )
    seeds: list[int] = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        try:
            span = range(int(first), int(last if dash else first) + 1)
        except ValueError:
            raise refused from None
        # Measured before it is spelt out: 1-99999999999 would fill the memory first.
        if len(seeds) + len(span) > MAX_SWEEP_SEEDS:
            raise refused
        seeds.extend(span)
    if not seeds or min(seeds) < 0 or max(seeds) > MAX_SEED:
        raise refused
    return seeds
