"""How good a cost model is on executions it never saw, against the naive baseline; and how
the estimates the engine recorded compare with what was realised.

Every share is of slippage spread across its point (`scenarios.model.features`), so that a
calibrated 10 % quantile has 10 % below it even where most fills slip exactly zero; the
interval's coverage of the raw slippage, bounds included, is given beside it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scenarios.model.estimator import QUANTILES, baseline_predict, training_data
from scenarios.model.features import TARGET, filled, target
from scenarios.model.persist import CostModel

ALL = "all"
ESTIMATE_COLUMNS = tuple(f"estimated_slippage_p{round(q * 100)}_pips" for q in QUANTILES)


def evaluate(model: CostModel, enriched: pd.DataFrame) -> pd.DataFrame:
    """One row per (predictor, symbol): the model and the baseline, all symbols first.

    Columns: predictor, symbol, n, below_p10, below_p50, below_p90, interval_coverage,
    interval_coverage_raw, pinball_p10, pinball_p50, pinball_p90, pinball_mean, width_pips."""
    data = training_data(enriched)
    if len(data.target) == 0:
        raise ValueError("no filled executions to evaluate the cost model on")
    raw = enriched.loc[data.features.index, TARGET].to_numpy(dtype=float)
    predictions = {
        "model": model.estimator.predict_frame(data.features),
        "baseline": baseline_predict(model.header.baseline, data.symbols),
    }
    rows = []
    for predictor, predicted in predictions.items():
        rows.append({"predictor": predictor, "symbol": ALL, **scores(data.target, raw, predicted)})
        for symbol in sorted(set(data.symbols)):
            mine = data.symbols == symbol
            rows.append(
                {
                    "predictor": predictor,
                    "symbol": symbol,
                    **scores(data.target[mine], raw[mine], predicted[mine]),
                }
            )
    return pd.DataFrame(rows)


def scores(realised: np.ndarray, raw: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Calibration and accuracy of (p10, p50, p90) predictions of `realised` (spread across
    its point; `raw`: as measured)."""
    low, high = predicted[:, 0], predicted[:, 2]
    result: dict[str, float] = {"n": float(len(realised))}
    for j, q in enumerate(QUANTILES):
        result[f"below_p{round(q * 100)}"] = float(np.mean(realised < predicted[:, j]))
    result["interval_coverage"] = float(np.mean((realised >= low) & (realised <= high)))
    result["interval_coverage_raw"] = float(np.mean((raw >= low) & (raw <= high)))
    losses = [pinball(realised, predicted[:, j], q) for j, q in enumerate(QUANTILES)]
    for q, loss in zip(QUANTILES, losses, strict=True):
        result[f"pinball_p{round(q * 100)}"] = loss
    result["pinball_mean"] = float(np.mean(losses))
    result["width_pips"] = float(np.mean(high - low))
    return result


def pinball(realised: np.ndarray, predicted: np.ndarray, q: float) -> float:
    """The quantile (pinball) loss of predicting the q-quantile, mean over rows."""
    error = realised - predicted
    return float(np.mean(np.maximum(q * error, (q - 1.0) * error)))


def estimate_vs_realised(enriched: pd.DataFrame) -> pd.DataFrame:
    """Per label (or scenario), the engine's recorded estimates against realised slippage of
    the filled executions that carry one: n, mean estimated p10/p50/p90, mean realised,
    shares below each estimate and the interval's coverage (slippage spread across its
    point). Empty when no execution carries an estimate."""
    columns = [
        "n", "estimated_p10_mean_pips", "estimated_p50_mean_pips", "estimated_p90_mean_pips",
        "realised_mean_pips", "below_p10", "below_p50", "below_p90", "interval_coverage",
    ]  # fmt: skip
    by = "label" if "label" in enriched else "scenario"
    present = all(column in enriched for column in ESTIMATE_COLUMNS)
    if not present:
        return pd.DataFrame(columns=[by, *columns])
    rows = enriched[filled(enriched) & enriched[list(ESTIMATE_COLUMNS)].notna().all(axis=1)]
    rows = rows[rows[TARGET].notna()]
    realised = target(rows)
    result = []
    for key, group in rows.groupby(by, sort=False):
        estimates = group[list(ESTIMATE_COLUMNS)].to_numpy(dtype=float)
        actual = realised.loc[group.index].to_numpy(dtype=float)
        result.append(
            {
                by: key,
                "n": len(group),
                **{name: float(estimates[:, j].mean()) for j, name in enumerate(columns[1:4])},
                "realised_mean_pips": float(group[TARGET].mean()),
                **{
                    f"below_p{round(q * 100)}": float(np.mean(actual < estimates[:, j]))
                    for j, q in enumerate(QUANTILES)
                },
                "interval_coverage": float(
                    np.mean((actual >= estimates[:, 0]) & (actual <= estimates[:, 2]))
                ),
            }
        )
    return pd.DataFrame(result, columns=[by, *columns])
