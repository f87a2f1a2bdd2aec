"""How slippage and fill time are distributed: histograms on shared bins, ECDFs per symbol,
and what became of every execution."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from scenarios.analysis.figures.common import (
    HEIGHT,
    SLIPPAGE,
    SLIPPAGE_AXIS,
    colours,
    empty,
    fills,
    labels,
    note,
    padded,
    robust_range,
    styled,
)
from scenarios.analysis.quality import FILLED

# Quotes have five (JPY: three) digits, so fill prices and slippage move in tenths of a pip.
PRICE_STEP_PIPS = 0.1
TARGET_BINS = 40
# Above this share of a label's fills in one bin, counts go on a log axis: otherwise that
# bar is the whole picture and every other bin is a pixel high.
DOMINANT_BIN_SHARE = 0.5
# An ECDF of many distinct values is drawn through this many quantiles: the same curve to
# the eye, a fraction of the bytes.
ECDF_POINTS = 2_000
ECDF_COLUMNS = 3
# Outcomes that traded in greens, the ways of failing in colours that stand out from them.
TRADED_COLOURS = {"FILLED": "#4c9f70", "PARTIALLY_FILLED": "#98d09d", "EXPIRED": "#c7e9c0"}
FAILURE_COLOURS = qualitative.Set1[:2] + qualitative.Set1[3:] + qualitative.Dark2


def shared_edges(low: float, high: float) -> np.ndarray:
    """Bins every label shares, centred on the price grid: each an odd number of tenths of a
    pip wide, so a slippage on the grid can never sit on an edge and flip bins on noise."""
    steps = max(1, math.ceil((high - low) / TARGET_BINS / PRICE_STEP_PIPS))
    width = (steps + 1 - steps % 2) * PRICE_STEP_PIPS
    centres = low + width * np.arange(math.ceil((high - low) / width - 0.5) + 1)
    return np.append(centres - width / 2, centres[-1] + width / 2)


def slippage_distribution(enriched: pd.DataFrame) -> go.Figure:
    title = "Slippage against the quoted side: distribution"
    filled = fills(enriched)
    if filled.empty:
        return empty(title, "No filled executions: there is no slippage to show.")
    edges = shared_edges(*robust_range(filled[SLIPPAGE]))
    centres = (edges[:-1] + edges[1:]) / 2
    names, palette = labels(enriched), colours(labels(enriched))
    figure, log_scale, tails = go.Figure(), False, {"below": [], "above": []}
    for label in names:
        own = filled.loc[filled["label"] == label, SLIPPAGE].to_numpy()
        below, above = int((own < edges[0]).sum()), int((own > edges[-1]).sum())
        tails["below"].append(f"{label} {below}")
        tails["above"].append(f"{label} {above}")
        counts, _ = np.histogram(own, edges)
        inside = counts.sum()
        log_scale |= bool(inside and counts.max() >= DOMINANT_BIN_SHARE * inside)
        share = counts / max(len(own), 1)
        figure.add_trace(
            go.Bar(
                x=centres, y=counts, name=label, marker={"color": palette[label]},
                customdata=share,
                hovertemplate="%{x:.2f} pips: %{y} fills (%{customdata:.1%})",
            )
        )  # fmt: skip
    figure.update_layout(barmode="group", bargap=0.15, bargroupgap=0.0)
    if log_scale:
        figure.update_yaxes(type="log")
    styled(figure, title, SLIPPAGE_AXIS, "fills (log scale)" if log_scale else "fills")
    figure.update_xaxes(range=padded(edges[0], edges[-1]))
    scale = "; counts on a log scale: one bin holds half a label's fills" if log_scale else ""
    return note(
        figure,
        f"axis cut at the pooled 0.5 %-99.5 % quantiles{scale}<br>"
        f"fills below {edges[0]:.2f}: {', '.join(tails['below'])}; "
        f"above {edges[-1]:.2f}: {', '.join(tails['above'])}",
    )


def ecdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(value, share of values at or below it) at each distinct value, or at ECDF_POINTS
    quantiles when there are more distinct values than that."""
    distinct, counts = np.unique(values, return_counts=True)
    if len(distinct) <= ECDF_POINTS:
        return distinct, np.cumsum(counts) / len(values)
    shares = np.linspace(0.0, 1.0, ECDF_POINTS)
    return np.quantile(values, shares, method="inverted_cdf"), shares


def _ecdf_trace(label: str, values: np.ndarray, colour: str, unit: str, first: bool) -> go.Scatter:
    x, y = ecdf(values)
    return go.Scatter(
        x=x, y=y, mode="lines", line={"shape": "hv", "color": colour}, name=label,
        legendgroup=label, showlegend=first,
        hovertemplate=f"{label}<br>%{{y:.1%}} at or below %{{x:.2f}} {unit}<extra></extra>",
    )  # fmt: skip


def slippage_by_symbol(enriched: pd.DataFrame) -> go.Figure:
    """One ECDF per label in a panel per symbol: the jump at zero is the share filled at the
    quoted price; the curve's height at the axis ends is the clipped tails."""
    title = "Slippage by symbol: share of fills at or below each slippage"
    filled = fills(enriched)
    if filled.empty:
        return empty(title, "No filled executions: there is no slippage to show.")
    symbols = sorted(filled["symbol"].unique())
    columns = min(len(symbols), ECDF_COLUMNS)
    rows = math.ceil(len(symbols) / columns)
    figure = make_subplots(
        rows=rows, cols=columns, subplot_titles=symbols, shared_yaxes=True,
        horizontal_spacing=0.05, vertical_spacing=0.5 / rows,
    )  # fmt: skip
    palette, shown = colours(labels(enriched)), set()
    for index, symbol in enumerate(symbols):
        of_symbol = filled[filled["symbol"] == symbol]
        for label, group in of_symbol.groupby("label", sort=False):
            trace = _ecdf_trace(
                str(label), group[SLIPPAGE].to_numpy(), palette[str(label)], "pips",
                first=label not in shown,
            )  # fmt: skip
            shown.add(label)
            figure.add_trace(trace, row=index // columns + 1, col=index % columns + 1)
    figure.update_layout(height=max(HEIGHT, 300 * rows))
    styled(figure, title, None, None)
    figure.update_xaxes(range=padded(*robust_range(filled[SLIPPAGE])))
    figure.update_yaxes(range=[0, 1.02], tickformat=".0%")
    figure.update_xaxes(title_text=SLIPPAGE_AXIS, row=rows)
    figure.update_yaxes(title_text="share of fills", col=1)
    return note(
        figure, "x-axis cut at the pooled 0.5 %-99.5 % quantiles (zoom out for the tails)",
        above_subplot_titles=True,
    )  # fmt: skip


def fill_time_distribution(enriched: pd.DataFrame) -> go.Figure:
    title = "Fill time: share of fills done within each time"
    filled = fills(enriched)
    filled = filled[filled["fill_time_ms"] > 0]
    if filled.empty:
        return empty(title, "No fill times: no execution traded.")
    figure, palette = go.Figure(), colours(labels(enriched))
    for label, group in filled.groupby("label", sort=False):
        values = group["fill_time_ms"].to_numpy()
        figure.add_trace(_ecdf_trace(str(label), values, palette[str(label)], "ms", first=True))
    styled(figure, title, "fill time, order created to last fill (ms, log scale)", "share of fills")
    figure.update_xaxes(type="log")
    figure.update_yaxes(range=[0, 1.02], tickformat=".0%")
    return figure


def outcomes(enriched: pd.DataFrame) -> go.Figure:
    """Every execution, the unapproved and rejected included, by how it ended."""
    title = "How executions ended: share by outcome"
    if enriched.empty:
        return empty(title, "No executions.")
    outcome = enriched["outcome_reason"].fillna(enriched["status"]).fillna("UNKNOWN")
    table = pd.crosstab(enriched["label"].astype(str), outcome).reindex(labels(enriched))
    traded = [status for status in FILLED if status in table.columns]
    others = table.drop(columns=traded).sum().sort_values(ascending=False, kind="stable")
    figure = go.Figure()
    for index, reason in enumerate([*traded, *others.index]):
        counts = table[reason]
        colour = TRADED_COLOURS.get(reason, FAILURE_COLOURS[index % len(FAILURE_COLOURS)])
        figure.add_trace(
            go.Bar(
                y=table.index, x=counts / table.sum(axis=1), name=str(reason), orientation="h",
                marker={"color": colour}, customdata=counts,
                hovertemplate=f"%{{y}}, {reason}: %{{customdata}} (%{{x:.1%}})<extra></extra>",
            )
        )  # fmt: skip
    figure.update_layout(barmode="stack")
    styled(figure, title, "share of executions", "label")
    figure.update_layout(legend={"title": {"text": "outcome"}, "traceorder": "normal"})
    figure.update_xaxes(tickformat=".0%")
    figure.update_yaxes(autorange="reversed")
    return figure
