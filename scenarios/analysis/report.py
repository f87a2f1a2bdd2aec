"""A self-contained static HTML report of one or more runs: the notebooks' figures for people
who do not use Jupyter. Figures are PNG embedded as data URIs; no script, no network."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

# Figures built without pyplot: no global backend to choose, no window, safe in a server
# and shown inline by Jupyter when displayed.
from matplotlib.figure import Figure

from scenarios.analysis.exits import limit_order_summary, load_exits, slippage_by_kind
from scenarios.analysis.quality import (
    MARKOUT_HORIZONS,
    breakdown,
    enrich,
    load_runs,
    quality_summary,
)


def slippage_histogram(enriched: pd.DataFrame) -> Figure:
    figure = Figure(figsize=(7, 3.5))
    axes = figure.subplots()
    for scenario, group in enriched.groupby("scenario"):
        values = group["slippage_vs_side_pips"].dropna()
        if len(values):
            axes.hist(values, bins=40, alpha=0.5, label=str(scenario))
    axes.set_xlabel("slippage vs quoted side (pips, + adverse)")
    axes.set_ylabel("fills")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def markout_curve(enriched: pd.DataFrame) -> Figure:
    figure = Figure(figsize=(7, 3.5))
    axes = figure.subplots()
    for scenario, group in enriched.groupby("scenario"):
        means = [group[f"markout_{h}s_pips"].mean() for h in MARKOUT_HORIZONS]
        axes.plot(MARKOUT_HORIZONS, means, marker="o", label=str(scenario))
    axes.set_xscale("log")
    axes.axhline(0.0, color="grey", linewidth=0.8)
    axes.set_xlabel("seconds after the fill")
    axes.set_ylabel("mean markout (pips, + favourable)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def fill_time_cdf(enriched: pd.DataFrame) -> Figure:
    figure = Figure(figsize=(7, 3.5))
    axes = figure.subplots()
    for scenario, group in enriched.groupby("scenario"):
        values = np.sort(group["fill_time_ms"].dropna().to_numpy())
        if len(values):
            axes.step(values, np.arange(1, len(values) + 1) / len(values), label=str(scenario))
    axes.set_xscale("log")
    axes.set_xlabel("fill time (ms)")
    axes.set_ylabel("share of fills")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def slippage_by(enriched: pd.DataFrame, by: str) -> Figure:
    table = breakdown(enriched, by)
    figure = Figure(figsize=(7, 3.5))
    axes = figure.subplots()
    axes.bar(table[by].astype(str), table["slippage_mean_pips"].fillna(0.0))
    axes.set_xlabel(by)
    axes.set_ylabel("mean slippage (pips)")
    axes.tick_params(axis="x", labelrotation=30)
    figure.tight_layout()
    return figure


def png_bytes(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _png(figure: Figure) -> str:
    return base64.b64encode(png_bytes(figure)).decode()


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-", border=0)


def _exits_and_limits(enriched: pd.DataFrame, exits: pd.DataFrame) -> str:
    """Entry against exit slippage, per scenario; limit orders' fills, where there are any."""
    parts = []
    for scenario, group in enriched.groupby("scenario"):
        table = slippage_by_kind(group, exits[exits["scenario"] == scenario])
        if table["fills"].iloc[1:].sum():  # any exit: else the summary says it all
            parts.append(
                f"<h2>Entry and exit slippage: {html.escape(str(scenario))}</h2>{_table(table)}"
            )
    limits = [{"scenario": s, **limit_order_summary(g)} for s, g in enriched.groupby("scenario")]
    limits = [row for row in limits if row["limit_orders"]]
    if limits:
        parts.append(f"<h2>Limit orders</h2>{_table(pd.DataFrame(limits))}")
    return "".join(parts)


def build_report(run_dirs: Sequence[Path], out: Path) -> Path:
    executions, quotes = load_runs(run_dirs)
    enriched = enrich(executions, quotes)
    per_scenario = pd.DataFrame(
        [{"scenario": s, **quality_summary(g)} for s, g in enriched.groupby("scenario")]
    )
    figures = [
        ("Slippage against the quoted side", slippage_histogram(enriched)),
        ("Markouts: the mid after the fill", markout_curve(enriched)),
        ("Fill time", fill_time_cdf(enriched)),
        ("Slippage by symbol", slippage_by(enriched, "symbol")),
        ("Slippage by size", slippage_by(enriched, "size_bucket")),
    ]
    sections = [
        f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' "
        f"src='data:image/png;base64,{_png(figure)}'>"
        for title, figure in figures
    ]
    tables = "".join(
        f"<h2>By {html.escape(by)}</h2>{_table(breakdown(enriched, by))}"
        for by in ("symbol", "hour_utc", "size_bucket", "latency_bucket")
    )
    tables += _exits_and_limits(enriched, load_exits(run_dirs))
    runs = ", ".join(html.escape(str(Path(d))) for d in run_dirs)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Execution quality report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}}
table{{border-collapse:collapse;font-size:0.85em}}td,th{{padding:2px 8px;text-align:right}}
th{{border-bottom:1px solid #999}}img{{max-width:100%}}</style></head>
<body><h1>Execution quality report</h1><p>Runs: {runs}</p>
<h2>Summary by scenario</h2>{_table(per_scenario)}
{"".join(sections)}{tables}
<p>Slippage is signed in the symbol's pips, positive when adverse; markouts are positive
when the mid moved in the trade's favour after the fill; implementation shortfall counts
unfilled units at the mid when the execution ended. A stop-loss or take-profit is measured
against its level, not an arrival quote: positive when it filled beyond it (a gap). A limit
order's time to fill runs from its placing to its last fill.</p></body></html>
"""
    out.write_text(page, encoding="utf-8")
    return out
