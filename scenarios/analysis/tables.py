"""The report's numbers as a reader takes them in: one analysis of the sources, then tables
of text with readable column names and units — the same text in the terminal (Rich) and
in the HTML page.

Numbers are written out, never in scientific notation: pips and bps with two decimals,
milliseconds as whole numbers with thousands separators, rates as percentages, money with
two decimals. A missing value is a dash.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from scenarios.analysis.compare import MEASURES, across_seeds, compare
from scenarios.analysis.quality import MARKOUT_HORIZONS, breakdown, enrich, quality_summary
from scenarios.analysis.sources import Source, combined, parameters_in
from scenarios.model.evaluation import estimate_vs_realised

DASH = "–"
CONFIDENCE = 0.95
CI = f"[{CONFIDENCE:.0%} CI]"
BREAKDOWN_TITLES = {
    "symbol": "Symbol",
    "hour_utc": "Hour (UTC)",
    "size_bucket": "Size",
    "fill_time_bucket": "Fill time",
}
MEASURE_TITLES = {
    "slippage_pips": "Slippage (pips, + adverse)",
    "shortfall_pips": "Shortfall (pips, + adverse)",
    "fill_time_ms": "Fill time mean (ms)",
    "fill_time_p95_ms": "Fill time p95 (ms)",
}


@dataclass(frozen=True)
class Analysis:
    """Everything the report shows, computed once for the terminal and the page."""

    sources: list[Source]
    enriched: pd.DataFrame
    exits: pd.DataFrame
    comparison: pd.DataFrame  # compare(): one row per (label, measure)
    seeds: pd.DataFrame  # across_seeds(): a sweep's run-level numbers over its seeds
    parameters: list[str]
    baseline: str | None


def analyse(sources: Sequence[Source], baseline: str | None = None, *, seed: int = 0) -> Analysis:
    """Measure every source, compare the labels (ValueError for an unknown baseline) and,
    for a sweep, its points across seeds."""
    executions, quotes, exits = combined(sources)
    enriched = enrich(executions, quotes)
    parameters = parameters_in(sources)
    comparison = compare(
        enriched, baseline, seed=seed, confidence=CONFIDENCE, parameters=parameters
    )
    points = pd.DataFrame([s.run_level for s in sources if s.run_level])
    seeds = across_seeds(points, parameters, seed=seed, confidence=CONFIDENCE)
    used = baseline if baseline is not None or comparison.empty else comparison["label"].iloc[0]
    return Analysis(list(sources), enriched, exits, comparison, seeds, parameters, used)


# -- formatting ---------------------------------------------------------------------------


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def count(value: Any) -> str:
    return DASH if _missing(value) else f"{int(value):,d}"


def rate(value: Any) -> str:
    return DASH if _missing(value) else f"{value:.1%}"


def pips(value: Any) -> str:  # also bps and money: two decimals
    # + 0.0 turns the -0.0 a tiny negative rounds to into 0.0: no "-0.00".
    return DASH if _missing(value) else f"{round(value, 2) + 0.0:,.2f}"


def ms(value: Any) -> str:
    return DASH if _missing(value) else f"{round(value) + 0:,d}"


def signed(number: Callable[[Any], str]) -> Callable[[Any], str]:
    """`number` with a + on what is not negative: a difference says its direction."""

    def written(value: Any) -> str:
        shown = number(value)
        return shown if shown.startswith(("-", DASH)) else "+" + shown

    return written


def with_interval(value: Any, low: Any, high: Any, number: Callable[[Any], str]) -> str:
    """ "0.42 [0.38, 0.47]"."""
    if _missing(value):
        return DASH
    return f"{number(value)} [{number(low)}, {number(high)}]"


def text(value: Any) -> str:
    return DASH if _missing(value) or value == "" else str(value)


# -- tables -------------------------------------------------------------------------------


def comparison_title(analysis: Analysis) -> str:
    return f"means {CI}, + adverse; Δ: difference from the baseline ({analysis.baseline}) {CI}"


def comparison_table(analysis: Analysis) -> pd.DataFrame:
    """One row per label: what was executed, the means with their intervals and the
    differences from the baseline with theirs (comparison_title says so)."""
    if analysis.comparison.empty:
        return pd.DataFrame()
    stats = analysis.comparison.set_index(["label", "measure"])
    groups = dict(tuple(analysis.enriched.groupby("label", sort=False)))
    rows = []
    for label in pd.unique(analysis.comparison["label"]):
        summary = quality_summary(groups[label])
        slip, short, fill = (stats.loc[(label, m)] for m in MEASURES)
        row = {"Label": label} | {name: text(slip[name]) for name in analysis.parameters}
        row |= {
            "Executions": count(summary["approved"]),
            "Fill rate": rate(summary["fill_rate"]),
            "Slippage (pips)": _mean(slip, pips),
            "Shortfall (pips)": _mean(short, pips),
            "Fill p50 (ms)": ms(summary["fill_time_p50_ms"]),
            "Fill mean (ms)": _mean(fill, ms),
        }
        for title, s, number in (
            ("Δ slippage (pips)", slip, pips),
            ("Δ shortfall (pips)", short, pips),
            ("Δ fill mean (ms)", fill, ms),
        ):
            row[title] = "baseline" if label == analysis.baseline else _diff(s, number)
        rows.append(row)
    return pd.DataFrame(rows)


def _mean(stats: pd.Series, number: Callable[[Any], str]) -> str:
    return with_interval(stats["mean"], stats["low"], stats["high"], number)


def _diff(stats: pd.Series, number: Callable[[Any], str]) -> str:
    return with_interval(stats["diff"], stats["diff_low"], stats["diff_high"], signed(number))


def _per_label(
    analysis: Analysis, columns: Callable[[dict[str, Any], str], dict[str, str]]
) -> pd.DataFrame:
    """One row per label of `columns(quality_summary, account currency)`."""
    currency = {s.label: s.header.account_currency for s in analysis.sources}
    return pd.DataFrame(
        [
            {"Label": label} | columns(quality_summary(group), currency.get(label, "USD"))
            for label, group in analysis.enriched.groupby("label", sort=False)
        ]
    )


def decisions_table(analysis: Analysis) -> pd.DataFrame:
    """Every decision counted, unapproved ones too, and what became of the approved."""
    return _per_label(
        analysis,
        lambda s, _: {
            "Decisions": count(s["decisions"]),
            "Approved": count(s["approved"]),
            "Unapproved": count(s["unapproved"]),
            "Rejected": count(s["rejected"]),
            "Fill rate": rate(s["fill_rate"]),
            "Reject rate": rate(s["reject_rate"]),
            "Requote rate": rate(s["requote_rate"]),
            "Partial fill rate": rate(s["partial_fill_rate"]),
        },
    )


def costs_table(analysis: Analysis) -> pd.DataFrame:
    """What execution cost, in pips, bps and the account currency (+ = cost), in total;
    the executions whose cost could not be converted are counted, not dropped silently."""
    return _per_label(
        analysis,
        lambda s, ccy: {
            "Spread at arrival (pips)": pips(s["spread_mean_pips"]),
            "Slippage (pips)": pips(s["slippage_mean_pips"]),
            "Slippage (bps)": pips(s["slippage_mean_bps"]),
            "Shortfall (bps)": pips(s["shortfall_mean_bps"]),
            "Slippage cost, total": f"{pips(s['slippage_cost'])} {ccy}",
            "Shortfall cost, total": f"{pips(s['shortfall_cost'])} {ccy}",
            "Not converted": count(s["cost_not_converted"]),
        },
    )


def markouts_table(analysis: Analysis) -> pd.DataFrame:
    """Mean markouts (pips, + adverse: the mid moved against the trade after the fill)."""
    return _per_label(
        analysis,
        lambda s, _: {
            f"{horizon} s": pips(s[f"markout_{horizon}s_mean_pips"]) for horizon in MARKOUT_HORIZONS
        },
    )


def estimates_table(analysis: Analysis) -> pd.DataFrame:
    """The pre-trade cost model's estimates, as the engine recorded them at validation,
    against the slippage the fills realised; empty when no run carried a model."""
    table = estimate_vs_realised(analysis.enriched)
    return pd.DataFrame(
        [
            {
                "Label": row["label"],
                "Fills estimated": count(row["n"]),
                "Estimated p10 / p50 / p90 (pips)": " / ".join(
                    pips(row[f"estimated_p{q}_mean_pips"]) for q in (10, 50, 90)
                ),
                "Realised mean (pips)": pips(row["realised_mean_pips"]),
                "Below p10 / p50 / p90": " / ".join(rate(row[f"below_p{q}"]) for q in (10, 50, 90)),
                "Inside p10–p90": rate(row["interval_coverage"]),
            }
            for _, row in table.iterrows()
        ]
    )


def breakdown_table(analysis: Analysis, by: str) -> pd.DataFrame:
    """The headline numbers per label and per value of `by`, in the dimension's order."""
    rows = []
    for label, group in analysis.enriched.groupby("label", sort=False):
        for _, s in breakdown(group, by).iterrows():
            rows.append(
                {
                    "Label": label,
                    BREAKDOWN_TITLES[by]: text(s[by]),
                    "Executions": count(s["approved"]),
                    "Fill rate": rate(s["fill_rate"]),
                    "Slippage (pips)": pips(s["slippage_mean_pips"]),
                    "Slippage (bps)": pips(s["slippage_mean_bps"]),
                    "Shortfall (pips)": pips(s["shortfall_mean_pips"]),
                    "Fill time p50 (ms)": ms(s["fill_time_p50_ms"]),
                    "Fill time p95 (ms)": ms(s["fill_time_p95_ms"]),
                }
            )
    return pd.DataFrame(rows)


def seeds_table(analysis: Analysis) -> pd.DataFrame:
    """A sweep's run-level numbers per parameter value, over its seeds."""
    rows = []
    for _, s in analysis.seeds.iterrows():
        number = ms if s["measure"].startswith("fill_time") else pips
        rows.append(
            {name: text(s[name]) for name in analysis.parameters}
            | {
                "Measure (per run)": MEASURE_TITLES[s["measure"]],
                "Runs (seeds)": count(s["runs"]),
                f"Mean {CI}": with_interval(s["mean"], s["low"], s["high"], number),
            }
        )
    return pd.DataFrame(rows)


def header_fields(source: Source) -> dict[str, str]:
    """A source's tear-sheet header as (field, text) pairs."""
    h = source.header
    c = h.counts
    fields = {
        "Source": h.source,
        "Scenario": h.scenario,
        "Description": text(h.description),
        "Seed": text(h.seed),
        "Results hash": text(h.results_hash),
        "Invariants": h.invariants,
        "Engine version": h.engine_version,
        "Config version": h.config_version,
        "Broker": h.broker,
        "Account currency": h.account_currency,
        "Period (UTC)": f"{text(h.period_start)} to {text(h.period_end)}",
        "Decisions": f"{c.decisions:,d} ({c.approved:,d} approved, {c.unapproved:,d} "
        f"unapproved; {c.rejected:,d} approved but rejected)",
    }
    return fields | {name: text(value) for name, value in source.parameters.items()}
