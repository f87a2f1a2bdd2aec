"""Execution quality as a desk measures it, from simulated runs or a live audit database.

One row per execution (the same columns whichever the source), then:
- signed slippage in the symbol's pips against the quoted side on arrival and against the
  arrival mid (positive = adverse: a buy paid more, a sell received less);
- implementation shortfall (Perold) per execution: execution cost on the units that
  filled plus opportunity cost on those that did not, against the arrival mid;
- markouts: how the mid moved 1 s … 5 min after the fill, in the trade's favour (+) or
  against it (-); missing when no quote exists that long after the fill;
- fill-time percentiles, reject / requote / partial-fill rates, slippage asymmetry;
- each broken down by symbol, hour of day (UTC), size bucket, latency bucket, scenario.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from engine.core.instruments import is_jpy_quoted
from engine.store import ExecutionDatabase

MARKOUT_HORIZONS = (1, 5, 30, 60, 300)  # seconds
SIZE_BUCKETS = (0.0, 0.1, 0.5, 1.0, 2.0, np.inf)  # lots
LATENCY_BUCKETS_MS = (0.0, 25.0, 50.0, 100.0, 250.0, 1000.0, np.inf)
BREAKDOWNS = ("symbol", "hour_utc", "size_bucket", "latency_bucket", "scenario")
FILLED = ("FILLED", "PARTIALLY_FILLED", "EXPIRED")


def pip_of(symbol: str) -> float:
    return 0.01 if is_jpy_quoted(symbol) else 0.0001


# -- loading ------------------------------------------------------------------------------


def load_run(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(executions, quotes) of one `arbitrex run --out` directory, tagged with its scenario."""
    executions = pd.read_parquet(run_dir / "executions.parquet")
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    executions["scenario"] = summary.get("scenario", run_dir.name)
    executions["seed"] = summary.get("seed")
    quotes_path = run_dir / "quotes.parquet"
    quotes = pd.read_parquet(quotes_path) if quotes_path.exists() else empty_quotes()
    return executions, quotes


def load_runs(run_dirs: Iterable[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Several runs in one frame; a run's quotes stay with its own executions."""
    frames, tapes = [], []
    for index, run_dir in enumerate(run_dirs):
        executions, quotes = load_run(Path(run_dir))
        executions["run"] = index
        quotes = quotes.assign(run=index)
        frames.append(executions)
        tapes.append(quotes)
    if not frames:
        raise ValueError("no run directories given")
    return pd.concat(frames, ignore_index=True), pd.concat(tapes, ignore_index=True)


def load_database(database: ExecutionDatabase, scenario: str = "live") -> pd.DataFrame:
    """A live (or simulated) audit database as the same execution rows a run writes."""
    from scenarios.run_outputs import execution_rows

    executions = [e for i in database.execution_ids() if (e := database.get_execution(i))]
    frame = execution_rows(executions)
    frame["scenario"] = scenario
    frame["run"] = 0
    return frame


def empty_quotes() -> pd.DataFrame:
    return pd.DataFrame({"symbol": [], "time": [], "bid": [], "ask": []}).astype(
        {"symbol": object, "time": float, "bid": float, "ask": float}
    )


# -- per-execution measures ---------------------------------------------------------------


def enrich(executions: pd.DataFrame, quotes: pd.DataFrame | None = None) -> pd.DataFrame:
    """Add every per-execution measure as columns; NaN where a measure does not apply."""
    frame = executions.copy()
    if "run" not in frame:
        frame["run"] = 0
    if "scenario" not in frame:
        frame["scenario"] = "run"
    quotes = quotes if quotes is not None else empty_quotes()
    if "run" not in quotes:
        quotes = quotes.assign(run=0)
    frame["pip"] = frame["symbol"].map(lambda s: pip_of(s) if isinstance(s, str) else np.nan)
    direction = frame["direction"].astype(float)
    mid = (frame["arrival_bid"] + frame["arrival_ask"]) / 2.0
    side = np.where(direction > 0, frame["arrival_ask"], frame["arrival_bid"])
    price = frame["average_fill_price"]
    frame["arrival_mid"] = mid
    frame["slippage_vs_side_pips"] = direction * (price - side) / frame["pip"]
    frame["slippage_vs_mid_pips"] = direction * (price - mid) / frame["pip"]
    frame["lots"] = frame["intended_units"] / 100_000.0
    frame["size_bucket"] = pd.cut(frame["lots"], SIZE_BUCKETS, right=True).astype(str)
    frame["fill_time_ms"] = frame["fill_time_seconds"] * 1000.0
    frame["latency_bucket"] = pd.cut(frame["fill_time_ms"], LATENCY_BUCKETS_MS).astype(str)
    frame["hour_utc"] = pd.to_datetime(frame["created_at"], unit="s", utc=True).dt.hour
    end_mid = _mid_at(frame, quotes, frame["completed_at"])
    frame["completion_mid"] = end_mid
    frame["shortfall_pips"] = _shortfall(frame, direction, mid, end_mid)
    for horizon in MARKOUT_HORIZONS:
        later = _mid_at(frame, quotes, frame["last_fill_at"] + horizon, must_exist_after=True)
        frame[f"markout_{horizon}s_pips"] = direction * (later - price) / frame["pip"]
    return frame


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
    frame: pd.DataFrame, quotes: pd.DataFrame, when: pd.Series, must_exist_after: bool = False
) -> pd.Series:
    """The mid prevailing at each `when` (latest tape quote at or before it, same run and
    symbol); NaN if none — and, for markouts, NaN when the tape ends before `when`."""
    result = pd.Series(np.nan, index=frame.index)
    if quotes.empty:
        return result
    for (run, symbol), tape in quotes.groupby(["run", "symbol"]):
        rows = frame.index[(frame["run"] == run) & (frame["symbol"] == symbol) & when.notna()]
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


def quality_summary(enriched: pd.DataFrame) -> dict[str, float | int | None]:
    """The desk's headline numbers for one set of executions."""
    approved = enriched[enriched["outcome_reason"] != "DECISION_NOT_APPROVED"]
    filled = approved[approved["status"].isin(FILLED) & (approved["executed_units"] > 0)]
    n = len(approved)
    slip = filled["slippage_vs_side_pips"].dropna()
    fill_ms = filled["fill_time_ms"].dropna()

    def pct(series: pd.Series, q: float) -> float | None:
        return float(np.percentile(series, q)) if len(series) else None

    summary: dict[str, float | int | None] = {
        "executions": n,
        "fill_rate": len(filled) / n if n else None,
        "reject_rate": float((approved["status"] == "REJECTED").mean()) if n else None,
        "requote_rate": float((approved["outcome_reason"] == "REQUOTE").mean()) if n else None,
        "partial_fill_rate": float((approved["status"] == "PARTIALLY_FILLED").mean())
        if n
        else None,
        "slippage_mean_pips": float(slip.mean()) if len(slip) else None,
        "slippage_vs_mid_mean_pips": float(filled["slippage_vs_mid_pips"].mean())
        if len(filled)
        else None,
        "shortfall_mean_pips": float(approved["shortfall_pips"].mean()) if n else None,
        "fill_time_p50_ms": pct(fill_ms, 50),
        "fill_time_p95_ms": pct(fill_ms, 95),
        "fill_time_p99_ms": pct(fill_ms, 99),
    }
    summary.update(asymmetry(slip))
    for horizon in MARKOUT_HORIZONS:
        markout = filled[f"markout_{horizon}s_pips"].dropna()
        summary[f"markout_{horizon}s_mean_pips"] = float(markout.mean()) if len(markout) else None
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
    """The headline numbers per value of one dimension (symbol, hour_utc, ...)."""
    if by not in BREAKDOWNS:
        raise ValueError(f"breakdown by {by!r}: choose one of {BREAKDOWNS}")
    rows = []
    for key, group in enriched.groupby(by, sort=True, dropna=False):
        rows.append({by: key, **quality_summary(group)})
    return pd.DataFrame(rows)
