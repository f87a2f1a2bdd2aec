"""Slippage against what might drive it: fill time, size, spread, the time of day and the
run's own course."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from scenarios.analysis.figures.common import (
    SLIPPAGE,
    SLIPPAGE_AXIS,
    colours,
    empty,
    fills,
    labels,
    mean_interval,
    note,
    padded,
    robust_range,
    sample,
    styled,
)

TREND_BINS = 10  # the mean line of a scatter: one point per tenth of the fills
TIME_BINS = 40  # slippage over time: equal-count bins per label
MIN_PER_TIME_BIN = 20


@dataclass(frozen=True)
class Driver:
    """A measure slippage may depend on, as a scatter's x-axis."""

    column: str
    name: str
    unit: str
    log: bool = False

    @property
    def title(self) -> str:
        return f"Slippage against {self.name}"

    @property
    def axis(self) -> str:
        return f"{self.name} ({self.unit}, log scale)" if self.log else f"{self.name} ({self.unit})"


DRIVERS = (
    Driver("fill_time_ms", "fill time", "ms", log=True),
    Driver("lots", "size", "lots"),
    Driver("spread_pips", "the spread on arrival", "pips"),
)


def _trend(x: pd.Series, y: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Mean slippage in each tenth of the fills by x (all fills, not the drawn sample)."""
    bins = pd.qcut(x.rank(method="first"), min(TREND_BINS, len(x)), labels=False)
    grouped = pd.DataFrame({"x": x, "y": y}).groupby(bins)
    return grouped["x"].mean().to_numpy(), grouped["y"].mean().to_numpy()


def slippage_against(enriched: pd.DataFrame, driver: Driver) -> go.Figure:
    """Every fill as a point (hover: execution id, symbol), and each label's mean line."""
    filled = fills(enriched)
    filled = filled[filled[driver.column] > 0 if driver.log else filled[driver.column].notna()]
    if filled.empty:
        return empty(driver.title, f"No filled executions with {driver.name} known.")
    drawn, sampled = sample(filled)
    palette = colours(labels(enriched))
    figure = go.Figure()
    for label, group in drawn.groupby("label", sort=False):
        marker = {"color": palette[str(label)], "size": 4, "opacity": 0.45}
        figure.add_trace(
            go.Scatter(
                x=group[driver.column], y=group[SLIPPAGE], mode="markers", name=str(label),
                legendgroup=str(label), marker=marker,
                customdata=group[["execution_id", "symbol"]].to_numpy(),
                hovertemplate=f"{label} · %{{customdata[1]}}<br>%{{customdata[0]}}<br>"
                f"{driver.name} %{{x:.4g}} {driver.unit}<br>slippage %{{y:.2f}} pips"
                "<extra></extra>",
            )
        )  # fmt: skip
    for label, group in filled.groupby("label", sort=False):
        x, y = _trend(group[driver.column], group[SLIPPAGE])
        figure.add_trace(
            go.Scatter(
                x=x, y=y, mode="lines+markers", name=f"{label}: mean per tenth of fills",
                legendgroup=str(label), line={"color": palette[str(label)], "width": 2.5},
                hovertemplate=f"{label}: mean %{{y:.3f}} pips near %{{x:.4g}} {driver.unit}"
                "<extra></extra>",
            )
        )  # fmt: skip
    styled(figure, driver.title, driver.axis, SLIPPAGE_AXIS)
    if driver.log:
        figure.update_xaxes(type="log")
    low, high = robust_range(filled[SLIPPAGE])
    figure.update_yaxes(range=padded(low, high))
    outside = int(((filled[SLIPPAGE] < low) | (filled[SLIPPAGE] > high)).sum())
    clipped = f"{outside} fills beyond the 0.5 %-99.5 % view (double-click to autoscale)"
    return note(figure, "; ".join(text for text in (clipped, sampled) if text))


def _band(label: str, colour: str, x: list, low: list, high: list) -> go.Scatter:
    return go.Scatter(
        x=[*x, *x[::-1]], y=[*high, *low[::-1]], fill="toself", fillcolor=colour,
        opacity=0.2, line={"width": 0}, hoverinfo="skip", legendgroup=label, showlegend=False,
    )  # fmt: skip


def _elapsed_unit(span_seconds: float) -> tuple[str, float]:
    """Minutes for a run of a couple of hours, hours for a few days, days beyond."""
    if span_seconds <= 2 * 3600:
        return "minutes", 60.0
    if span_seconds <= 3 * 86400:
        return "hours", 3600.0
    return "days", 86400.0


def slippage_over_time(enriched: pd.DataFrame) -> go.Figure:
    """Mean slippage in equal-count bins of each label's fills, with the mean's 95 % band,
    against the time since the label's first order: runs of other days line up."""
    title = "Slippage over time"
    filled = fills(enriched)
    if filled.empty:
        return empty(title, "No filled executions: there is no slippage to show.")
    start = filled.groupby("label")["created_at"].transform("min")
    unit, seconds = _elapsed_unit(float((filled["created_at"] - start).max()))
    filled = filled.assign(elapsed=(filled["created_at"] - start) / seconds)
    palette, figure = colours(labels(enriched)), go.Figure()
    by_label = dict(list(filled.sort_values("created_at").groupby("label", sort=False)))
    for label in (name for name in labels(enriched) if name in by_label):
        group = by_label[label]
        count = max(1, min(TIME_BINS, len(group) // MIN_PER_TIME_BIN))
        bins = np.arange(len(group)) * count // len(group)
        rows = [
            (part["elapsed"].mean(), len(part), _utc(part["created_at"].mean()),
             *mean_interval(part[SLIPPAGE]))
            for _, part in group.groupby(bins)
        ]  # fmt: skip
        when, n, utc, mean, low, high = (list(column) for column in zip(*rows, strict=True))
        figure.add_trace(_band(str(label), palette[str(label)], when, low, high))
        figure.add_trace(
            go.Scatter(
                x=when, y=mean, mode="lines+markers", name=str(label), legendgroup=str(label),
                line={"color": palette[str(label)]}, customdata=list(zip(n, utc, strict=True)),
                hovertemplate=f"{label}, %{{customdata[1]}}: mean %{{y:.3f}} pips over "
                "%{customdata[0]} fills<extra></extra>",
            )
        )  # fmt: skip
    axis = f"time since the label's first order ({unit})"
    styled(figure, title, axis, f"mean {SLIPPAGE_AXIS}")
    return note(figure, "each point: one of up to 40 equal-count bins; band: 95 % interval")


def _utc(epoch_seconds: float) -> str:
    return pd.Timestamp(epoch_seconds, unit="s", tz="UTC").strftime("%Y-%m-%d %H:%M:%S UTC")


def slippage_by_hour(enriched: pd.DataFrame) -> go.Figure:
    title = "Slippage by hour of the day"
    filled = fills(enriched)
    if filled.empty:
        return empty(title, "No filled executions: there is no slippage to show.")
    palette, figure = colours(labels(enriched)), go.Figure()
    for label, group in filled.groupby("label", sort=False):
        rows = [(hour, len(part), *mean_interval(part[SLIPPAGE]))
                for hour, part in group.groupby("hour_utc")]  # fmt: skip
        hour, n, mean, low, high = (np.array(column) for column in zip(*rows, strict=True))
        figure.add_trace(
            go.Scatter(
                x=hour, y=mean, mode="markers+lines", name=str(label),
                marker={"color": palette[str(label)]}, customdata=n,
                error_y={"type": "data", "array": np.nan_to_num(high - mean),
                         "arrayminus": np.nan_to_num(mean - low)},
                hovertemplate=f"{label}, %{{x}}:00 UTC: mean %{{y:.3f}} pips over "
                "%{customdata} fills<extra></extra>",
            )
        )  # fmt: skip
    styled(figure, title, "hour the order was created (UTC)", f"mean {SLIPPAGE_AXIS}")
    figure.update_xaxes(range=[-0.5, 23.5], dtick=2)
    return note(figure, "bars: 95 % interval of the hour's mean")
