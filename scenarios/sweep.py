"""Sweeps: one scenario over a grid of parameters and seeds, in parallel.

Local processes by default; a Dask cluster (`--dask ADDRESS`, the `dask` extra) for users
who outgrow one machine. Each point is a whole run, so points are independent and the
results are the same whichever executes them: gathered into one DataFrame in grid order.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from scenarios.limits import MAX_SEED, MAX_SWEEP_SEEDS
from scenarios.runner import RunSummary, run_scenario
from scenarios.spec import ScenarioError, load_scenario


def grid(parameters: dict[str, list[Any]], seeds: list[int]) -> list[tuple[dict[str, Any], int]]:
    """Every combination of the parameters' values, for every seed, in a stable order."""
    names = sorted(parameters)
    combos = itertools.product(*(parameters[name] for name in names)) if names else [()]
    return [(dict(zip(names, values, strict=True)), seed) for values in combos for seed in seeds]


def run_point(scenario_path: str, overrides: dict[str, Any], seed: int) -> dict[str, Any]:
    """One run of the sweep, as a flat row (a top-level function: it travels to workers)."""
    path = Path(scenario_path)
    scenario = load_scenario(path).with_overrides(overrides)
    return summary_row(run_scenario(scenario, path.parent, seed=seed), overrides)


def summary_row(summary: RunSummary, overrides: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"scenario": summary.scenario, "seed": summary.seed, **overrides}
    row["orders"] = summary.orders
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


def sweep(
    scenario_path: Path,
    parameters: dict[str, list[Any]],
    seeds: list[int],
    workers: int | None = None,
    dask_address: str | None = None,
) -> pd.DataFrame:
    scenario = load_scenario(scenario_path)
    points = grid(parameters, seeds)
    for overrides, _ in points[:1]:
        scenario.with_overrides(overrides)  # a bad --set fails here, before any run
    path = str(scenario_path.resolve())
    if dask_address is not None:
        rows = _on_dask(dask_address, path, points)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(run_point, path, overrides, seed) for overrides, seed in points]
            rows = [future.result() for future in futures]
    frame = pd.DataFrame(rows)
    return frame.fillna({c: 0 for c in frame.columns if c.startswith("status_")})


def _on_dask(
    address: str, path: str, points: list[tuple[dict[str, Any], int]]
) -> list[dict[str, Any]]:
    try:
        from distributed import Client
    except ImportError as error:
        raise ScenarioError(
            'a Dask sweep needs the dask extra: pip install -e ".[dask]"'
        ) from error
    with Client(address) as client:
        futures = [
            client.submit(run_point, path, overrides, seed, pure=False)
            for overrides, seed in points
        ]
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
