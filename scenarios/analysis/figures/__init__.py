"""Interactive figures of execution quality, from the enriched execution frame (one row per
execution, a `label` per source): the report's and the notebooks' figures alike.

Signs are the report's one convention: positive = adverse (a cost to us) for slippage,
shortfall and markouts, and every axis says so. Axes are cut at robust quantiles with the
cut-off tails counted on the figure; a scatter of many fills shows a fixed-seed sample and
says so. `figures_html` makes one self-contained HTML fragment: plotly.js inlined once,
nothing fetched from the network, the same bytes for the same input.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from scenarios.analysis.figures.common import check_columns
from scenarios.analysis.figures.comparison import comparison_forest, markouts, parameter_effect
from scenarios.analysis.figures.distributions import (
    fill_time_distribution,
    outcomes,
    slippage_by_symbol,
    slippage_distribution,
)
from scenarios.analysis.figures.relations import (
    DRIVERS,
    slippage_against,
    slippage_by_hour,
    slippage_over_time,
)

__all__ = [
    "DRIVERS",
    "comparison_forest",
    "figure_html",
    "figures_html",
    "fill_time_distribution",
    "markouts",
    "outcomes",
    "parameter_effect",
    "plotly_script",
    "report_figures",
    "slippage_against",
    "slippage_by_hour",
    "slippage_by_symbol",
    "slippage_distribution",
    "slippage_over_time",
]

# No logo link and no "send to cloud": nothing in the toolbar leaves the page. No MathJax
# typesetting: the report loads no MathJax. (plotly.js 3 dropped showLink and sendData.)
CONFIG = {"displaylogo": False, "showSendToCloud": False, "typesetMath": False, "responsive": True}


def report_figures(
    enriched: pd.DataFrame,
    comparison: pd.DataFrame | None = None,
    parameters: Sequence[str] = (),
) -> list[tuple[str, go.Figure]]:
    """(title, figure) in reading order: the comparison first when there is one, then each
    sweep parameter's effect, then the distributions and what drives them."""
    check_columns(enriched)
    figures: list[go.Figure] = []
    if comparison is not None:
        figures.append(comparison_forest(comparison))
    figures += [parameter_effect(enriched, name, pooled=parameters) for name in parameters]
    figures += [
        slippage_distribution(enriched),
        slippage_by_symbol(enriched),
        *(slippage_against(enriched, driver) for driver in DRIVERS),
        slippage_over_time(enriched),
        slippage_by_hour(enriched),
        markouts(enriched),
        fill_time_distribution(enriched),
        outcomes(enriched),
    ]
    return [(figure.layout.title.text, figure) for figure in figures]


def plotly_script() -> str:
    """plotly.js inlined, as plotly's own inline mode writes it (MathJax, if a page has it,
    stays local): once per page, ahead of the figures."""
    return (
        '<script type="text/javascript">window.PlotlyConfig = {MathJaxConfig: "local"};</script>\n'
        f'<script type="text/javascript">{get_plotlyjs()}</script>'
    )


def figure_html(figure: go.Figure, div_id: str) -> str:
    """One figure's <div> and the call that draws it, for a page that has plotly_script();
    the id is given, not plotly's random one, so the same figure gives the same bytes."""
    return figure.to_html(
        full_html=False, include_plotlyjs=False, include_mathjax=False, div_id=div_id,
        config=CONFIG,
    )  # fmt: skip


def figures_html(figures: Sequence[tuple[str, go.Figure]]) -> str:
    """The figures as one HTML fragment for a page's body: plotly.js inlined once ahead of
    them, one titled <section> each, element ids numbered so the bytes are reproducible."""
    sections = [
        f'<section class="figure"><h2>{html.escape(title)}</h2>\n'
        # The section's heading is the title: the figure keeps only its small print.
        + figure_html(go.Figure(figure).update_layout(title=None), f"figure-{index}")
        + "\n</section>"
        for index, (title, figure) in enumerate(figures, start=1)
    ]
    return "\n".join([plotly_script(), *sections]) + "\n"
