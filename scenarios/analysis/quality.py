"""Execution quality as a desk measures it, from simulated runs or a live audit database.

One row per execution (the same columns whichever the source), then, with one sign
convention throughout — **positive = adverse, a cost to us**:
- slippage in the symbol's pips against the quoted side on arrival and against the arrival
  mid (a buy paid more, a sell received less), and in bps of the arrival mid and in the
  account currency (`scenarios.analysis.costs`);
- implementation shortfall (Perold) per execution: execution cost on the units that
  filled plus opportunity cost on those that did not, against the arrival mid;
- markouts: how the mid moved 1 s … 5 min after the fill, positive when it moved against
  the trade (we paid above where the market went: adverse selection); missing when no
  quote exists that long after the fill;
- fill-time percentiles, reject / requote / partial-fill rates, slippage asymmetry, and
  every decision counted, unapproved ones too;
- each broken down by symbol, hour of day (UTC), size, fill time, label and scenario.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from engine.core.costing import conventional_pip as pip_of
from scenarios.analysis.costs import DEFAULT_ACCOUNT_CURRENCY, add_costs
from scenarios.provenance import NOT_APPROVED, DecisionCounts

MARKOUT_HORIZONS = (1, 5, 30, 60, 300)  # seconds
SIZE_BUCKETS_LOTS = (0.0, 0.1, 0.5, 1.0, 2.0, np.inf)
FILL_TIME_BUCKETS_MS = (0.0, 25.0, 50.0, 100.0, 250.0, 1000.0, np.inf)
NOT_FILLED = "not filled"
BREAKDOWNS = ("symbol", "hour_utc", "size_bucket", "fill_time_bucket", "label", "scenario")
FILLED = ("FILLED", "PARTIALLY_FILLED", "EXPIRED")
UNITS_PER_LOT = 100_000.0


def empty_quotes() -> pd.DataFrame:
    return pd.DataFrame({"symbol": [], "time": [], "bid": [], "ask": []}).astype(
        {"symbol": object, "time": float, "bid": float, "ask": float}
    )


def bucket_labels(edges: tuple[float, ...], unit: str) -> list[str]:
    """Labels like "0–25 ms", "25–50 ms", ..., "over 1,000 ms", in numeric order."""
    *closed, last = itertools.pairwise(edges)
    return [*(f"{low:,g}–{high:,g} {unit}" for low, high in closed), f"over {last[0]:,g} {unit}"]


def _buckets(values: pd.Series, edges: tuple[float, ...], unit: str, missing: str) -> pd.Series:
    """Ordered categories, so tables and figures sort them by size rather than as text; a
    missing value is `missing`, the last category."""
    cut = pd.cut(values, edges, labels=bucket_labels(edges, unit), include_lowest=True)
    return cut.cat.add_categories(missing).fillna(missing)


# -- per-execution measures ---------------------------------------------------------------


def enrich(executions: pd.DataFrame, quotes: pd.DataFrame | None = None) -> pd.DataFrame:
    """Add every per-execution measure as columns; NaN where a measure does not apply.

    `quotes` is the tape (symbol, time, bid, ask, and `run` when several runs share the
    frame); a frame without `label`, `run`, `scenario`, `seed` or `account_currency` is one
    run of its own, in USD."""
    frame = executions.copy()
    defaults = {
        "run": 0,
        "scenario": "run",
        "seed": None,
        "account_currency": DEFAULT_ACCOUNT_CURRENCY,
    }
    for column, value in defaults.items():
        if column not in frame:
            frame[column] = value
    if "label" not in frame:
        frame["label"] = frame["scenario"].astype(str)
    quotes = quotes if quotes is not None else empty_quotes()
    if "run" not in quotes:
        quotes = quotes.assign(run=0)
    symbols = frame["symbol"].dropna().unique()
    frame["pip"] = frame["symbol"].map({s: pip_of(s) for s in symbols})  # per symbol, not row
    direction = frame["direction"].astype(float)
    mid = (frame["arrival_bid"] + frame["arrival_ask"]) / 2.0
    side = np.where(direction > 0, frame["arrival_ask"], frame["arrival_bid"])
    price = frame["average_fill_price"]
    frame["arrival_mid"] = mid
    frame["slippage_vs_side_pips"] = direction * (price - side) / frame["pip"]
    frame["slippage_vs_mid_pips"] = direction * (price - mid) / frame["pip"]
    frame["lots"] = frame["intended_units"] / UNITS_PER_LOT
    frame["size_bucket"] = _buckets(frame["lots"], SIZE_BUCKETS_LOTS, "lots", "unknown")
    frame["fill_time_ms"] = frame["fill_time_seconds"] * 1000.0
    frame["fill_time_bucket"] = _buckets(
        frame["fill_time_ms"], FILL_TIME_BUCKETS_MS, "ms", NOT_FILLED
    )
    frame["hour_utc"] = pd.to_datetime(frame["created_at"], unit="s", utc=True).dt.hour
    end_mid = _mid_at(frame, quotes, frame["completed_at"])
    frame["completion_mid"] = end_mid
    frame["shortfall_pips"] = _shortfall(frame, direction, mid, end_mid)
    for horizon in MARKOUT_HORIZONS:
        later = _mid_at(frame, quotes, frame["last_fill_at"] + horizon, must_exist_after=True)
        frame[f"markout_{horizon}s_pips"] = direction * (price - later) / frame["pip"]

    def leg_mid(symbols: pd.Series) -> pd.Series:
        rows = frame.loc[symbols.index]
        return _mid_at(rows, quotes, rows["created_at"], symbols=symbols)

    return add_costs(frame, leg_mid)


def _shortfall(
    frame: pd.DataFrame, direction: pd.Series, mid: pd.Series, end_mid: pd.Series
) -> pd.Series:
    """Perold: (filled x cost vs decision mid + unfilled x move to completion) per intended
    unit, in pips. An unfilled remainder with no later quote leaves the shortfall unknown."""
    intended = frame["intended_units"].astype(float)
    filled = frame["executed_units"].astype(float)
    execution_cost = filled * direction * (frame["average_fill_price"].fillna(mid) - mid)
    unfilled = intended - filled
    opportunity = unfilled * direction * (end_mid - mid)
    opportunity = opportunity.where(unfilled > 0, 0.0)
    total = (execution_cost + opportunity) / intended.where(intended > 0) / frame["pip"]
    return total.where(mid.notna())


def _mid_at(
    frame: pd.DataFrame,
    quotes: pd.DataFrame,
    when: pd.Series,
    must_exist_after: bool = False,
    symbols: pd.Series | None = None,
) -> pd.Series:
    """The mid prevailing at each `when` (latest tape quote at or before it, same run and
    symbol — the row's own, or `symbols`); NaN if none — and, for markouts, NaN when the
    tape ends before `when`."""
    result = pd.Series(np.nan, index=frame.index)
    if quotes.empty:
        return result
    symbols = frame["symbol"] if symbols is None else symbols
    for (run, symbol), tape in quotes.groupby(["run", "symbol"]):
        rows = frame.index[(frame["run"] == run) & (symbols == symbol) & when.notna()]
        if len(rows) == 0:
            continue
        tape = tape.sort_values("time")
        times = tape["time"].to_numpy()
        mids = ((tape["bid"] + tape["ask"]) / 2.0).to_numpy()
        targets = when.loc[rows].to_numpy()
        position = np.searchsorted(times, targets, side="right") - 1
        values = np.where(position >= 0, mids[np.clip(position, 0, None)], np.nan)
        if must_exist_after:
            values = np.where(targets <= times[-1], values, np.nan)
        result.loc[rows] = values
    return result


# -- aggregates ---------------------------------------------------------------------------


def filled_of(enriched: pd.DataFrame) -> pd.DataFrame:
    """The approved executions that filled, in whole or in part: what slippage is of."""
    approved = enriched[enriched["outcome_reason"] != NOT_APPROVED]
    return approved[approved["status"].isin(FILLED) & (approved["executed_units"] > 0)]


def quality_summary(enriched: pd.DataFrame) -> dict[str, float | int | None]:
    """The desk's headline numbers for one set of executions; rates are of the approved
    decisions (an unapproved decision is counted, not executed)."""
    counts = DecisionCounts.of(
        enriched["status"].value_counts().to_dict(),
        enriched["outcome_reason"].value_counts().to_dict(),
    )
    approved = enriched[enriched["outcome_reason"] != NOT_APPROVED]
    filled = filled_of(enriched)
    n = len(approved)
    slip = filled["slippage_vs_side_pips"].dropna()
    fill_ms = filled["fill_time_ms"].dropna()

    def mean(series: pd.Series) -> float | None:
        series = series.dropna()
        return float(series.mean()) if len(series) else None

    def pct(series: pd.Series, q: float) -> float | None:
        return float(np.percentile(series, q)) if len(series) else None

    def rate(matches: pd.Series) -> float | None:
        return float(matches.mean()) if n else None

    summary: dict[str, float | int | None] = {
        **counts.model_dump(),
        "fill_rate": len(filled) / n if n else None,
        "reject_rate": rate(approved["status"] == "REJECTED"),
        "requote_rate": rate(approved["outcome_reason"] == "REQUOTE"),
        "partial_fill_rate": rate(approved["status"] == "PARTIALLY_FILLED"),
        "spread_mean_pips": mean(filled["spread_pips"]),
        "slippage_mean_pips": mean(slip),
        "slippage_vs_mid_mean_pips": mean(filled["slippage_vs_mid_pips"]),
        "slippage_mean_bps": mean(filled["slippage_bps"]),
        "shortfall_mean_pips": mean(approved["shortfall_pips"]),
        "shortfall_mean_bps": mean(approved["shortfall_bps"]),
        # Totals in the account currency, + = cost; what could not be converted is counted.
        "slippage_cost": float(filled["slippage_account"].sum()),
        "shortfall_cost": float(approved["shortfall_account"].sum()),
        "cost_not_converted": int(approved["account_cost_note"].notna().sum()),
        "fill_time_mean_ms": mean(fill_ms),
        "fill_time_p50_ms": pct(fill_ms, 50),
        "fill_time_p95_ms": pct(fill_ms, 95),
        "fill_time_p99_ms": pct(fill_ms, 99),
    }
    summary.update(asymmetry(slip))
    for horizon in MARKOUT_HORIZONS:
        summary[f"markout_{horizon}s_mean_pips"] = mean(filled[f"markout_{horizon}s_pips"])
    return summary


def asymmetry(slippage: pd.Series) -> dict[str, float | None]:
    """Share and mean size of favourable (< 0) and adverse (> 0) slippage."""
    n = len(slippage)
    favourable, adverse = slippage[slippage < 0], slippage[slippage > 0]
    return {
        "favourable_share": len(favourable) / n if n else None,
        "adverse_share": len(adverse) / n if n else None,
        "favourable_mean_pips": float(favourable.mean()) if len(favourable) else None,
        "adverse_mean_pips": float(adverse.mean()) if len(adverse) else None,
    }


def breakdown(enriched: pd.DataFrame, by: str) -> pd.DataFrame:
    """The headline numbers per value of one dimension (symbol, hour_utc, ...), in the
    dimension's order (buckets by size, hours by the clock); empty buckets left out."""
    if by not in BREAKDOWNS:
        raise ValueError(f"breakdown by {by!r}: choose one of {BREAKDOWNS}")
    rows = []
    for key, group in enriched.groupby(by, sort=True, dropna=False, observed=True):
        rows.append({by: key, **quality_summary(group)})
    return pd.DataFrame(rows)
