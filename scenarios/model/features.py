"""A run's executions table replayed through the engine's own feature fold, and the target.

The features are `engine.core.costing`'s: each run is replayed on its own (one engine, one
memory), rows in the table's order, so a model is trained on the features the engine
computes at validation. The target is slippage against the quoted side, + adverse, of the
executions that filled.

Slippage lives on the price grid (whole points, a tenth of a pip), and most fills of a calm
market slip exactly zero: the quantiles of such a variable are flat steps, and "share below
the 10 % quantile" is then not 10 % of anything. So the target is spread uniformly across
its point — the randomized probability integral transform of count data (Czado, Gneiting &
Held 2009). The spread is a hash of the execution, not a draw: the same execution has the
same target wherever it is read.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from engine.core.costing import (
    CATEGORICAL_FEATURES,
    FEATURE_NAMES,
    ExecutionFacts,
    FillFacts,
    TradeFacts,
    replay_features,
)
from scenarios.analysis.quality import FILLED
from scenarios.model.errors import CostModelError

POINT_PIPS = 0.1  # a point: prices of 5- and 3-digit quotes move in tenths of a pip
TARGET = "slippage_vs_side_pips"
# What the replay reads of a run's table; policy columns older tables lack are defaulted.
REQUIRED = (
    "execution_id", "symbol", "direction", "created_at", "arrival_bid", "arrival_ask",
    "intended_units", "order_type", "intent", "completed_at", "fill_time_seconds",
    "average_fill_price", "status", "executed_units",
)  # fmt: skip
POLICY_DEFAULTS = {"partial_fills": "accept", "max_slippage_pips": None}


def replayed_features(executions: pd.DataFrame) -> pd.DataFrame:
    """One row of features per execution (its index), NaN for those never validated."""
    missing = [column for column in REQUIRED if column not in executions]
    if missing:
        raise CostModelError(f"the executions lack the columns {', '.join(missing)}")
    groups = [column for column in ("label", "run") if column in executions]
    rows: list[dict[str, Any]] = []
    index: list[Any] = []
    runs = executions.groupby(groups, sort=False, dropna=False) if groups else [(0, executions)]
    for _, run in runs:
        facts = [_facts(row) for row in run.to_dict("records")]
        for key, features in zip(run.index, replay_features(facts), strict=True):
            index.append(key)
            rows.append(features.as_dict() if features is not None else {})
    frame = pd.DataFrame(rows, index=index, columns=list(FEATURE_NAMES))
    return frame.reindex(executions.index)


def _facts(row: Mapping[str, Any]) -> ExecutionFacts:
    """A row as the engine knew it: the same floats, None where the table has nothing."""
    if not (
        _known(row["arrival_bid"]) and _known(row["arrival_ask"]) and _known(row["direction"])
    ) or not isinstance(row["symbol"], str):
        return ExecutionFacts(None, None)
    policy = {name: row.get(name, default) for name, default in POLICY_DEFAULTS.items()}
    trade = TradeFacts(
        execution_id=str(row["execution_id"]),
        symbol=row["symbol"],
        direction=int(row["direction"]),
        created_at=float(row["created_at"]),
        arrival_bid=float(row["arrival_bid"]),
        arrival_ask=float(row["arrival_ask"]),
        units=int(row["intended_units"]),
        order_type=str(row["order_type"]),
        intent=str(row["intent"]),
        partial_fills=str(policy["partial_fills"] or "accept"),
        max_slippage_pips=_number(policy["max_slippage_pips"]),
    )
    completed, fill_time = _number(row["completed_at"]), _number(row["fill_time_seconds"])
    price = _number(row["average_fill_price"])
    if completed is None or fill_time is None or price is None:
        return ExecutionFacts(trade, None)
    return ExecutionFacts(trade, FillFacts(completed, fill_time, price))


def _known(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _number(value: Any) -> float | None:
    return float(value) if _known(value) else None


def filled(enriched: pd.DataFrame) -> pd.Series:
    """The executions whose slippage is the target: filled, at least in part."""
    return enriched["status"].isin(FILLED) & (enriched["executed_units"] > 0)


def spread_within_point(enriched: pd.DataFrame) -> np.ndarray:
    """Each execution's place within its point, in pips, in [-0.05, 0.05): from a hash of
    its id and request time."""
    keys = zip(enriched["execution_id"], enriched["created_at"], strict=True)
    unit = [
        int.from_bytes(hashlib.blake2b(f"{eid}|{at!r}".encode(), digest_size=8).digest()) / 2.0**64
        for eid, at in keys
    ]
    return (np.asarray(unit, dtype=float) - 0.5) * POINT_PIPS


def target(enriched: pd.DataFrame) -> pd.Series:
    """Slippage vs the quoted side, + adverse, spread across its point."""
    return enriched[TARGET] + spread_within_point(enriched)


def feature_matrix(
    columns: Mapping[str, Sequence[Any]],
    names: Sequence[str],
    categories: Mapping[str, Sequence[str]],
) -> np.ndarray:
    """The features `names` as the estimator reads them: numbers as floats (None: NaN, which
    the trees treat as missing), each category of the training vocabulary as a column of its
    own, 1 where the row has it (a category never seen in training has no column)."""
    rows = len(columns[names[0]])
    blocks: list[np.ndarray] = []
    for name in names:
        values = columns[name]
        if name in CATEGORICAL_FEATURES:
            present = np.asarray([[value == c for c in categories[name]] for value in values])
            blocks.append(present.reshape(rows, len(categories[name])).astype(float))
        else:
            numbers = [np.nan if value is None else value for value in values]
            blocks.append(np.asarray(numbers, dtype=float).reshape(rows, 1))
    return np.hstack(blocks)
