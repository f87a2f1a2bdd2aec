"""Figures that compare: markouts by horizon, every label's mean against the baseline (the
comparison table as a forest plot) and a sweep's parameter on the x-axis."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from scenarios.analysis.compare import compare
from scenarios.analysis.figures.common import (
    HEIGHT,
    SLIPPAGE_AXIS,
    colours,
    empty,
    fills,
    labels,
    mean_interval,
    note,
    styled,
)
from scenarios.analysis.quality import MARKOUT_HORIZONS

MARKOUT_AXIS = "mean markout (pips, + adverse)"
MEASURE_AXES = {
    "slippage_pips": SLIPPAGE_AXIS,
    "shortfall_pips": "implementation shortfall (pips, + adverse)",
    "fill_time_ms": "fill time (ms)",
}
PER_SEED_RESAMPLES = 200  # the per-seed points draw only means; their intervals go unused


def _error(mean: np.ndarray, low: np.ndarray, high: np.ndarray) -> dict:
    return {"type": "data", "array": np.nan_to_num(np.asarray(high) - mean),
            "arrayminus": np.nan_to_num(mean - np.asarray(low))}  # fmt: skip


def markouts(enriched: pd.DataFrame) -> go.Figure:
    title = "Markouts: how the mid moved after the fill"
    columns = [f"markout_{h}s_pips" for h in MARKOUT_HORIZONS]
    filled = fills(enriched)
    if filled.empty or not filled[columns].notna().to_numpy().any():
        return empty(
            title, "No markouts: no quote after the fills (a run's quotes or a live quote tape)."
        )
    palette, figure, without = colours(labels(enriched)), go.Figure(), []
    for label, group in filled.groupby("label", sort=False):
        rows = [(group[c].notna().sum(), *mean_interval(group[c].dropna())) for c in columns]
        n, mean, low, high = (np.array(column, dtype=float) for column in zip(*rows, strict=True))
        if not n.any():
            without.append(str(label))
            continue
        figure.add_trace(
            go.Scatter(
                x=MARKOUT_HORIZONS, y=mean, mode="markers+lines", name=str(label),
                marker={"color": palette[str(label)]}, error_y=_error(mean, low, high),
                customdata=n, hovertemplate=f"{label}, %{{x}} s: mean %{{y:.3f}} pips over "
                "%{customdata} fills<extra></extra>",
            )
        )  # fmt: skip
    styled(figure, title, "seconds after the fill (log scale)", MARKOUT_AXIS)
    figure.update_xaxes(type="log", tickvals=MARKOUT_HORIZONS)
    figure.add_hline(y=0, line={"color": "grey", "width": 1})
    missing = f"; no quote after the fills of {', '.join(without)}" if without else ""
    return note(
        figure,
        "direction × (fill price − mid later) / pip: + when the mid moved against the trade; "
        f"bars: 95 % interval{missing}",
    )


def _baseline(comparison: pd.DataFrame) -> str:
    """The label compare() measured differences against: its differences are all zero."""
    zero = comparison[["diff", "diff_low", "diff_high"]].fillna(1.0).eq(0.0).all(axis=1)
    held = comparison[zero].groupby("label", sort=False).size()
    full = held[held == comparison["measure"].nunique()]
    return str(full.index[0]) if len(full) else "the baseline"


def comparison_forest(comparison: pd.DataFrame) -> go.Figure:
    """compare()'s table: per measure, each label's mean and its difference to the
    baseline, both with their bootstrap intervals."""
    title = "Comparison: each label's mean, and its difference to the baseline"
    if comparison.empty:
        return empty(title, "No comparison: no labelled executions to compare.")
    measures = list(pd.unique(comparison["measure"]))
    figure = make_subplots(
        rows=len(measures), cols=2, shared_yaxes=True, horizontal_spacing=0.08,
        vertical_spacing=0.45 / len(measures),
        column_titles=["mean, with its interval", f"difference to {_baseline(comparison)}"],
    )  # fmt: skip
    palette = colours([str(label) for label in pd.unique(comparison["label"])])
    for row, measure in enumerate(measures, start=1):
        table = comparison[comparison["measure"] == measure]
        for col, (value, low, high) in enumerate(
            (("mean", "low", "high"), ("diff", "diff_low", "diff_high")), start=1
        ):
            for label, line in table.groupby("label", sort=False):
                centre = line[value].to_numpy(dtype=float)
                figure.add_trace(
                    go.Scatter(
                        x=centre, y=line["label"].astype(str), mode="markers", name=str(label),
                        legendgroup=str(label), showlegend=row == col == 1,
                        marker={"color": palette[str(label)], "size": 9},
                        error_x=_error(centre, line[low], line[high]),
                        customdata=line[["n", low, high]].to_numpy(dtype=float),
                        hovertemplate=f"{label}: %{{x:.4g}} [%{{customdata[1]:.4g}}, "
                        "%{customdata[2]:.4g}] over %{customdata[0]} executions<extra></extra>",
                    ),
                    row=row, col=col,
                )  # fmt: skip
        figure.add_vline(x=0, row=row, col=2, line={"color": "grey", "width": 1})
        figure.update_xaxes(title_text=MEASURE_AXES.get(measure, measure), row=row)
    height = max(HEIGHT, len(measures) * (90 + 28 * comparison["label"].nunique()))
    figure.update_layout(height=height)
    styled(figure, title, None, None)
    figure.update_yaxes(autorange="reversed", type="category")
    return figure


def parameter_effect(
    enriched: pd.DataFrame, parameter: str, pooled: Sequence[str] = ()
) -> go.Figure:
    """A sweep parameter on the x-axis: per value, the mean and its bootstrap interval over
    all its fills; small points, each seed's mean at that value."""
    title = f"Effect of {parameter}"
    frame = enriched[enriched[parameter].notna()] if parameter in enriched else enriched[:0]
    if frame.empty:
        return empty(title, f"No execution carries the sweep parameter {parameter}.")
    values = sorted(pd.unique(frame[parameter]))
    by_value = {f"{parameter} = {value}": value for value in values}
    points = frame[[parameter, "seed"]].drop_duplicates().itertuples(index=False)
    by_seed = {f"{parameter} = {value}, seed {seed}": value for value, seed in points}
    name_of = {value: name for name, value in by_value.items()}
    pooled_table = compare(frame.assign(label=frame[parameter].map(name_of)))
    seed_names = frame[parameter].map(name_of) + ", seed " + frame["seed"].astype(str)
    seed_table = compare(frame.assign(label=seed_names), resamples=PER_SEED_RESAMPLES)
    measures = list(pd.unique(pooled_table["measure"]))
    figure = make_subplots(rows=1, cols=len(measures), horizontal_spacing=0.09)
    for col, measure in enumerate(measures, start=1):
        table = pooled_table[pooled_table["measure"] == measure]
        mean = table["mean"].to_numpy(dtype=float)
        figure.add_trace(
            go.Scatter(
                x=table["label"].map(by_value), y=mean, mode="markers+lines",
                name="mean over all seeds", legendgroup="mean", showlegend=col == 1,
                marker={"color": "#1f77b4", "size": 9}, line={"color": "#1f77b4"},
                error_y=_error(mean, table["low"], table["high"]), customdata=table["n"],
                hovertemplate="%{x}: mean %{y:.4g} over %{customdata} executions<extra></extra>",
            ),
            col=col, row=1,
        )  # fmt: skip
        seeds = seed_table[seed_table["measure"] == measure]
        figure.add_trace(
            go.Scatter(
                x=seeds["label"].map(by_seed), y=seeds["mean"], mode="markers",
                name="one seed's mean", legendgroup="seed", showlegend=col == 1,
                marker={"color": "#7f7f7f", "size": 5, "opacity": 0.7},
                customdata=seeds["label"], hovertemplate="%{customdata}: %{y:.4g}<extra></extra>",
            ),
            col=col, row=1,
        )  # fmt: skip
        figure.update_yaxes(title_text=MEASURE_AXES.get(measure, measure), col=col)
    styled(figure, title, parameter, None)
    figure.update_layout(legend={"title": {"text": ""}})
    if not pd.api.types.is_numeric_dtype(frame[parameter]):
        figure.update_xaxes(type="category")
    others = [other for other in pooled if other != parameter]
    pooled_note = f"; pooled over {', '.join(others)}" if others else ""
    return note(
        figure,
        f"bars: bootstrap interval of the mean of every fill at the value{pooled_note}; grey "
        "points spread wider than the bars<br>mean the seeds differ more than chance within "
        "one run: judge the effect by them",
    )
