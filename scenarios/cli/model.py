"""`arbitrex model`: fit the pre-trade cost model on runs, and judge it on runs it never saw."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from scenarios.cli.common import console, fail

model_app = typer.Typer(
    help="Fit and evaluate the pre-trade cost model: quantiles of slippage.",
    no_args_is_help=True,
)

Sources = Annotated[
    list[str],
    typer.Argument(
        help="Run folders, sweep outputs or audit databases (paths or URLs) to learn from "
        "or judge on"
    ),
]
TARGET_COVERAGE, TOLERANCE = 0.80, 0.05


@model_app.command("fit")
def model_fit(
    sources: Sources,
    out: Annotated[Path, typer.Option(help="The model file to write")] = Path("cost.model"),
    seed: Annotated[int, typer.Option(min=0, help="Seed of the calibration split")] = 0,
) -> None:
    """Learn the 10/50/90 % quantiles of slippage (pips vs the quoted side, + adverse) from
    the sources' filled executions, calibrated on a held-out quarter. A model file is code:
    load only your own."""
    from scenarios.model import CostModelError, fit_cost_model, save_cost_model
    from scenarios.model.inputs import enriched_executions

    try:
        model = fit_cost_model(
            enriched_executions(sources), tuple(str(s) for s in sources), seed=seed
        )
        save_cost_model(model, out)
    except CostModelError as error:
        fail(2, error)
    header = model.header
    low, mid, high = header.adjustments_pips
    console.print(
        f"cost model {header.model_id} learnt from {header.rows} filled executions "
        f"({header.calibration_rows} held out to calibrate; conformal moves of p10/p50/p90: "
        f"{low:+.3f}/{mid:+.3f}/{high:+.3f} pips) written to {out}"
    )


@model_app.command("evaluate")
def model_evaluate(
    sources: Sources,
    model: Annotated[Path, typer.Option(help="A model file from arbitrex model fit")] = Path(
        "cost.model"
    ),
) -> None:
    """Coverage of each predicted quantile, of the 10-90 % interval, pinball loss and
    interval width on the sources, for the model and the naive baseline (each symbol's
    unconditional quantiles), overall and per symbol."""
    from scenarios.model import CostModelError, evaluate, load_cost_model
    from scenarios.model.inputs import enriched_executions

    try:
        fitted = load_cost_model(model)
        scores = evaluate(fitted, enriched_executions(sources))
    except (CostModelError, ValueError) as error:
        fail(2, error)
    unseen = set(map(str, sources)) & set(fitted.header.sources)
    if unseen:
        console.print(f"warning: the model learnt from {', '.join(sorted(unseen))}: not unseen")
    _print_scores(scores, fitted.header.model_id)


def _print_scores(scores: pd.DataFrame, model_id: str) -> None:
    overall = scores[scores["symbol"] == "all"].set_index("predictor")
    n = int(overall.loc["model", "n"])
    console.print(
        f"cost model {model_id} on {n:,} filled executions: slippage vs the quoted side, pips, "
        "+ adverse; shares are of slippage spread across its point, 'raw' of slippage as "
        "measured, bounds included"
    )
    _table(
        scores,
        "calibration: share below each quantile, and inside the 10-90 % interval",
        {"n": "n", "below_p10": "< p10", "below_p50": "< p50", "below_p90": "< p90",
         "interval_coverage": "in p10-p90", "interval_coverage_raw": "raw"},
    )  # fmt: skip
    _table(
        scores,
        "accuracy: pinball loss per quantile (lower is better), interval width",
        {"pinball_p10": "p10", "pinball_p50": "p50", "pinball_p90": "p90",
         "pinball_mean": "mean", "width_pips": "width (pips)"},
    )  # fmt: skip
    coverage = overall.loc["model", "interval_coverage"]
    held = abs(coverage - TARGET_COVERAGE) <= TOLERANCE
    ours, naive = overall.loc["model", "pinball_mean"], overall.loc["baseline", "pinball_mean"]
    console.print(
        f"10-90 % interval covers {coverage:.1%} (target {TARGET_COVERAGE:.0%} ± "
        f"{TOLERANCE:.0%}: {'held' if held else 'MISSED'}); mean pinball loss {ours:.4f} vs "
        f"the baseline's {naive:.4f} ({'better' if ours < naive else 'NOT better'})"
    )


def _table(scores: pd.DataFrame, title: str, headings: dict[str, str]) -> None:
    table = Table(title=title)
    table.add_column("predictor")
    table.add_column("symbol")
    for heading in headings.values():
        table.add_column(heading, justify="right")
    for _, row in scores.iterrows():
        cells = (_cell(column, row[column]) for column in headings)
        table.add_row(str(row["predictor"]), str(row["symbol"]), *cells)
    console.print(table)


def _cell(column: str, value: float) -> str:
    if column == "n":
        return f"{int(value):,}"
    if column.startswith(("below", "interval")):
        return f"{value:.1%}"
    return f"{value:.4f}"
