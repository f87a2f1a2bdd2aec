"""The HTML report: one self-contained page comparing any mix of runs, sweep points and
audit databases — each source's tear-sheet header, the comparison with its intervals, costs,
interactive figures (`scenarios.analysis.figures`: plotly.js inlined once) and breakdowns.
Nothing is loaded from anywhere: the page works offline and as an e-mail attachment."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from scenarios.analysis.exits import limit_order_summary, slippage_by_kind
from scenarios.analysis.figures import figures_html, report_figures
from scenarios.analysis.tables import (
    BREAKDOWN_TITLES,
    CI,
    Analysis,
    breakdown_table,
    comparison_table,
    costs_table,
    decisions_table,
    estimates_table,
    header_fields,
    markouts_table,
    seeds_table,
)
from scenarios.run_outputs import write_text_atomically


def _table(frame: pd.DataFrame) -> str:
    """A table of text (`scenarios.analysis.tables`), escaped; scrolled sideways within
    the page when wider than it."""
    if frame.empty:
        return ""
    return f"<div class='wide'>{frame.to_html(index=False, border=0, na_rep='–')}</div>"


def _section(title: str, body: str) -> str:
    return f"<h2>{html.escape(title)}</h2>{body}" if body else ""


def _headers(analysis: Analysis) -> str:
    """A card per source: its tear-sheet header."""
    cards = []
    for source in analysis.sources:
        rows = "".join(
            f"<tr><th>{html.escape(name)}</th><td>{html.escape(value)}</td></tr>"
            for name, value in header_fields(source).items()
        )
        cards.append(
            f"<div class='card'><h3>{html.escape(source.label)}</h3><table>{rows}</table></div>"
        )
    return f"<div class='cards'>{''.join(cards)}</div>"


def _exits_and_limits(analysis: Analysis) -> str:
    """Entry against exit slippage, per label; limit orders' fills, where there are any."""
    enriched, exits = analysis.enriched, analysis.exits
    parts = []
    for label, group in enriched.groupby("label", sort=False):
        table = slippage_by_kind(group, exits[exits["label"] == label])
        if table["fills"].iloc[1:].sum():  # any exit: else the summary says it all
            parts.append(
                f"<h2>Entry and exit slippage: {html.escape(str(label))}</h2>"
                + table.to_html(index=False, border=0, float_format=lambda v: f"{v:,.2f}")
            )
    limits = [
        {"label": label, **limit_order_summary(g)}
        for label, g in enriched.groupby("label", sort=False)
    ]
    limits = [row for row in limits if row["limit_orders"]]
    if limits:
        frame = pd.DataFrame(limits)
        parts.append(
            "<h2>Limit orders</h2>"
            + frame.to_html(index=False, border=0, float_format=lambda v: f"{v:,.2f}")
        )
    return "".join(parts)


def _figures(analysis: Analysis) -> str:
    if analysis.enriched.empty:
        return ""
    comparison = analysis.comparison
    figures = report_figures(analysis.enriched, comparison, analysis.parameters)
    return figures_html(figures)


STYLE = """body{font-family:sans-serif;margin:2em;max-width:80em}
table{border-collapse:collapse;font-size:0.85em;margin-bottom:1em}
td,th{padding:2px 8px;text-align:right;white-space:nowrap}th{border-bottom:1px solid #999}
td:first-child,th:first-child{text-align:left}
.cards{display:flex;flex-wrap:wrap;gap:1em}.card{border:1px solid #ccc;padding:0.5em 1em}
.card th{text-align:left;border:0;font-weight:normal;color:#555}.card td{text-align:left}
.card td{white-space:normal;max-width:28em}.wide{overflow-x:auto}"""


ESTIMATES = "Pre-trade cost estimate against realised slippage (pips, + adverse)"
MARKOUTS = "Markouts: mean, pips, + adverse (the mid moved against the trade after the fill)"


def report_page(analysis: Analysis) -> str:
    """The whole page, as text: self-contained (nothing loaded from anywhere)."""
    baseline = html.escape(str(analysis.baseline))
    comparison = _table(comparison_table(analysis))
    if comparison:
        comparison = (
            f"<p>Means with their {CI[1:-1]} (percentile bootstrap), positive when "
            f"adverse; Δ is the difference from the baseline, <b>{baseline}</b>, with its "
            f"interval.</p>{comparison}"
        )
    seeds = seeds_table(analysis)
    breakdowns = "".join(
        _section(f"By {title.lower()}", _table(breakdown_table(analysis, by)))
        for by, title in BREAKDOWN_TITLES.items()
        if not analysis.enriched.empty
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Execution quality report</title>
<style>{STYLE}</style></head>
<body><h1>Execution quality report</h1>
{_section("Sources", _headers(analysis))}
{_section("Comparison", comparison)}
{_section("Sweep points across seeds", _table(seeds) if not seeds.empty else "")}
{_section("Decisions", _table(decisions_table(analysis)) if comparison else "")}
{_section("Cost", _table(costs_table(analysis)) if comparison else "")}
{_section(MARKOUTS, _table(markouts_table(analysis)) if comparison else "")}
{_section(ESTIMATES, _table(estimates_table(analysis)))}
{_figures(analysis)}{breakdowns}{_exits_and_limits(analysis)}
<p>One sign convention throughout: slippage, shortfall and markouts are positive when
adverse (a cost to us). Slippage is against the quoted side on arrival, in the symbol's pips,
in basis points of the arrival mid and in the account currency (on the units filled, at the
rate when the decision came in); a markout is where the mid went after the fill, positive
when it moved against the trade; implementation shortfall counts unfilled units at the mid
when the execution ended. A stop-loss or take-profit is measured against its level, not an
arrival quote: positive when it filled beyond it (a gap). A limit order's time to fill runs
from its placing to its last fill. Rates are of the approved decisions; unapproved ones are
counted apart.</p></body></html>
"""


def build_report(analysis: Analysis, out: Path) -> Path:
    """Write the page to `out`, whole or not at all."""
    write_text_atomically(out, report_page(analysis))
    return out
