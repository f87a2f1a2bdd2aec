"""What every figure shares: which executions count as fills, the labels and their colours,
the robust axis range, intervals of a mean, and the layout that states units and signs."""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from scenarios.analysis.quality import MARKOUT_HORIZONS, filled_of

SLIPPAGE = "slippage_vs_side_pips"
SLIPPAGE_AXIS = "slippage vs quoted side (pips, + adverse)"
# The axis is cut at these quantiles of every label's fills pooled, so one outlier cannot
# squash the rest into a line; what falls outside is counted on the figure, never dropped.
TAIL_QUANTILES = (0.005, 0.995)
# Above this many points a scatter shows a fixed-seed sample (and says so): SVG scatters
# of more points make the report slow to open and the points an unreadable blot.
MAX_POINTS = 20_000
SAMPLE_SEED = 0
Z95 = NormalDist().inv_cdf(0.975)  # a 95 % two-sided normal interval: mean ± Z95 x se
HEIGHT = 420
PALETTE = qualitative.D3 + qualitative.Set2 + qualitative.Pastel1
# The enriched frame's columns the figures read (contract: enrich()'s output).
REQUIRED = (
    "label", "seed", "execution_id", "symbol", "status", "outcome_reason", "executed_units",
    "lots", "spread_pips", "created_at", "hour_utc", SLIPPAGE, "shortfall_pips", "fill_time_ms",
    *(f"markout_{horizon}s_pips" for horizon in MARKOUT_HORIZONS),
)  # fmt: skip


def check_columns(enriched: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED if c not in enriched.columns]
    if missing:
        raise ValueError(
            f"the execution frame lacks {', '.join(missing)}: figures take enrich()'s output"
        )


def labels(enriched: pd.DataFrame) -> list[str]:
    """Labels in the order the sources were given (the baseline first), not sorted."""
    return [str(label) for label in pd.unique(enriched["label"])]


def colours(names: Sequence[str]) -> dict[str, str]:
    return {name: PALETTE[index % len(PALETTE)] for index, name in enumerate(names)}


def fills(enriched: pd.DataFrame) -> pd.DataFrame:
    """Approved executions that traded and have a slippage: what the figures draw."""
    filled = filled_of(enriched)
    return filled[filled[SLIPPAGE].notna()]


def robust_range(values: pd.Series | np.ndarray) -> tuple[float, float]:
    """The pooled 0.5 %-99.5 % quantiles, as values that occur (no interpolation)."""
    array = np.asarray(values, dtype=float)
    low = float(np.quantile(array, TAIL_QUANTILES[0], method="lower"))
    high = float(np.quantile(array, TAIL_QUANTILES[1], method="higher"))
    return low, high


def padded(low: float, high: float) -> list[float]:
    margin = max((high - low) * 0.05, 0.05)
    return [low - margin, high + margin]


def mean_interval(values: pd.Series) -> tuple[float, float, float]:
    """Mean and its 95 % normal interval: enough to show where a mean is uncertain (one
    hour, one time bin); the comparison's own intervals are compare()'s bootstrap."""
    n = len(values)
    mean = float(values.mean()) if n else np.nan
    half = Z95 * float(values.std(ddof=1)) / np.sqrt(n) if n > 1 else np.nan
    return mean, mean - half, mean + half


def sample(frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """At most MAX_POINTS rows, chosen by a fixed seed, and the note that says so."""
    if len(frame) <= MAX_POINTS:
        return frame, ""
    rng = np.random.default_rng(SAMPLE_SEED)
    rows = np.sort(rng.choice(len(frame), MAX_POINTS, replace=False))
    return frame.iloc[rows], f"showing {MAX_POINTS:,} of {len(frame):,} fills (fixed-seed sample)"


def styled(figure: go.Figure, title: str, x_title: str | None, y_title: str | None) -> go.Figure:
    """The common look; axis titles given as None are left as the figure set them."""
    figure.update_layout(
        template="plotly_white",
        title={"text": title, "font": {"size": 15}},
        height=figure.layout.height or HEIGHT,
        margin={"l": 70, "r": 30, "t": 80, "b": 60},
        legend={"title": {"text": "label"}},
        hoverlabel={"namelength": -1},
    )
    if x_title is not None:
        figure.update_xaxes(title_text=x_title)
    if y_title is not None:
        figure.update_yaxes(title_text=y_title)
    return figure


def note(figure: go.Figure, text: str, above_subplot_titles: bool = False) -> go.Figure:
    """Small print over the plot: what was clipped, sampled or missing."""
    if text:
        figure.add_annotation(
            text=text, xref="paper", yref="paper", x=0, y=1.0, xanchor="left", align="left",
            yanchor="bottom", yshift=28 if above_subplot_titles else 6, showarrow=False,
            font={"size": 11, "color": "#555"},
        )  # fmt: skip
    return figure


def empty(title: str, message: str) -> go.Figure:
    """A figure that says why there is nothing to draw, instead of failing or lying blank."""
    figure = go.Figure()
    figure.add_annotation(
        text=message, xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False,
        font={"size": 14},
    )  # fmt: skip
    figure.update_layout(
        template="plotly_white", title={"text": title, "font": {"size": 15}}, height=220,
        xaxis={"visible": False}, yaxis={"visible": False},
    )  # fmt: skip
    return figure
