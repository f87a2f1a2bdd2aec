"""What a position cost on the way out, apart from what it cost on the way in; and how
resting limit orders fared.

Entry slippage is an opening execution's fill against the quoted side on arrival (what
`enrich` measures). Exit slippage is of two kinds that must not be mixed with it: a close
decision is a market order like any other, measured the same way, but a stop-loss or
take-profit the server triggered is measured against its level (exits.parquet), since a
gap fills it beyond the level and no arrival quote was ever the reference. Adverse is
positive in both.

A limit order is measured by whether it filled at all and how long it waited: its fill
rate (orders with any fill, and units filled of units intended) and its time to fill.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scenarios.run_outputs import EXIT_COLUMNS

CLOSING_INTENTS = ("close", "reduce")


def empty_exits() -> pd.DataFrame:
    return EXIT_COLUMNS.empty_table().to_pandas()


def _describe(kind: str, values: pd.Series) -> dict[str, object]:
    values = values.dropna()
    n = len(values)
    return {
        "kind": kind,
        "fills": n,
        "mean_pips": float(values.mean()) if n else None,
        "p50_pips": float(np.percentile(values, 50)) if n else None,
        "p95_pips": float(np.percentile(values, 95)) if n else None,
        "worst_pips": float(values.max()) if n else None,
        "beyond_level_share": None,
    }


def slippage_by_kind(enriched: pd.DataFrame, exits: pd.DataFrame) -> pd.DataFrame:
    """Slippage in pips (+ adverse) per kind of fill: entries, close decisions, and each
    kind of triggered exit. An entry or close against the quoted side on arrival; a stop
    or target against its level, with the share that filled beyond it (a gap)."""
    intent = enriched["intent"] if "intent" in enriched else pd.Series("open", enriched.index)
    filled = enriched[enriched["executed_units"] > 0]
    closing = intent.loc[filled.index].isin(CLOSING_INTENTS)
    rows = [
        _describe("entry", filled.loc[~closing, "slippage_vs_side_pips"]),
        _describe("close decision", filled.loc[closing, "slippage_vs_side_pips"]),
    ]
    for reason in ("stop_loss", "take_profit", "stop_out"):
        slip = exits.loc[exits["reason"] == reason, "slippage_pips"]
        row = _describe(reason, slip)
        if len(slip.dropna()):
            row["beyond_level_share"] = float((slip.dropna() > 0).mean())
        rows.append(row)
    return pd.DataFrame(rows)


def limit_order_summary(executions: pd.DataFrame) -> dict[str, float | int | None]:
    """How resting limit orders fared: how many filled whole, in part or not at all, the
    fill rates, and the time from placing to the last fill (time to fill)."""
    if "order_type" not in executions:
        limits = executions.iloc[0:0]
    else:
        limits = executions[executions["order_type"] == "limit"]
    placed = limits[limits["submitted_at"].notna()]
    n = len(placed)
    executed, intended = placed["executed_units"], placed["intended_units"]
    some = placed[executed > 0]
    waits = some["fill_time_seconds"].dropna()

    def pct(q: float) -> float | None:
        return float(np.percentile(waits, q)) if len(waits) else None

    return {
        "limit_orders": len(limits),
        "placed": n,
        "filled_whole": int((executed >= intended).sum()),
        "filled_in_part": int(((executed > 0) & (executed < intended)).sum()),
        "unfilled": int((executed == 0).sum()),
        "fill_rate": len(some) / n if n else None,
        "unit_fill_rate": float(executed.sum() / intended.sum()) if n else None,
        "time_to_fill_p50_s": pct(50),
        "time_to_fill_p95_s": pct(95),
        "time_to_fill_mean_s": float(waits.mean()) if len(waits) else None,
    }
