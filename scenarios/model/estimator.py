"""The cost model: gradient-boosted quantile regression of slippage, its 10-90 % interval
conformalised on held-out executions, and the naive baseline it must beat.

Three `HistGradientBoostingRegressor(loss="quantile")` learn the 10 %, 50 % and 90 %
quantiles of slippage vs the quoted side (pips, + adverse) from `engine.core.costing`'s
features, symbol and execution policy one-hot: a handful of categories each, and numbers
only keep the one-row estimate the engine asks for a tree walk (`scenarios.model.trees`).
A quarter of the training executions is held out to calibrate them (conformalized quantile
regression, Romano, Patterson & Candès 2019, each tail on its own): the lower quantile is
moved down by the 90th percentile of how far calibration slippage fell below it, the upper
one up likewise, so that on executions exchangeable with those each tail holds about 10 %
out of sample; the median is moved by its calibration residuals' median. The baseline is
each symbol's unconditional quantiles of the training slippage.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from engine.core.costing import CATEGORICAL_FEATURES, FEATURE_NAMES, CostEstimate, CostFeatures
from scenarios.model.errors import INSTALL_HINT, CostModelError
from scenarios.model.features import feature_matrix, filled, replayed_features, target
from scenarios.model.trees import TreeWalk

QUANTILES = (0.1, 0.5, 0.9)
CALIBRATION_SHARE = 0.25
MIN_ROWS = 100  # filled executions below which there is nothing to learn a tail from
ALL_SYMBOLS = "*"  # the baseline's quantiles for a symbol it never saw
# Fixed, not tuned per data set: early stopping would draw a validation split and make the
# number of trees depend on it.
BOOSTING = {
    "max_iter": 100,
    "learning_rate": 0.1,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 80,
    "early_stopping": False,
}


@dataclass(frozen=True)
class TrainingData:
    """Filled executions with their replayed features and (spread) target."""

    features: pd.DataFrame
    target: np.ndarray
    symbols: np.ndarray


def training_data(enriched: pd.DataFrame) -> TrainingData:
    """The executions a model learns from or is judged on: filled, validated, measured."""
    features = replayed_features(enriched)
    slippage = target(enriched)
    usable = filled(enriched) & features["symbol"].notna() & slippage.notna()
    usable &= np.isfinite(slippage.to_numpy(dtype=float, na_value=np.nan))
    rows = features[usable]
    return TrainingData(
        rows, slippage[usable].to_numpy(dtype=float), rows["symbol"].to_numpy(dtype=object)
    )


@dataclass(frozen=True)
class QuantileCostModel:
    """The fitted model, as the engine carries it (`engine.core.costing.CostEstimator`)."""

    regressors: tuple[Any, Any, Any]  # the 10 %, 50 %, 90 % HistGradientBoostingRegressors
    features: tuple[str, ...]  # those the training data knew something of, in order
    categories: Mapping[str, tuple[str, ...]]
    adjustments_pips: tuple[float, float, float]  # conformal moves of p10, p50, p90
    model_id: str = ""
    walk: TreeWalk = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "walk", TreeWalk.of(self.regressors))

    def predict(self, columns: Mapping[str, Sequence[Any]]) -> np.ndarray:
        """(p10, p50, p90) per row of features, pips, + adverse, never crossing."""
        matrix = feature_matrix(columns, self.features, self.categories)
        raw = np.column_stack([regressor.predict(matrix) for regressor in self.regressors])
        return self._final(raw)

    def predict_frame(self, features: pd.DataFrame) -> np.ndarray:
        return self.predict({name: features[name].tolist() for name in self.features})

    def estimate(self, features: CostFeatures) -> CostEstimate:
        """One order's estimate, as `predict` would give it, in a fraction of its time."""
        values = features.as_dict()
        columns = {name: [values[name]] for name in self.features}
        row = feature_matrix(columns, self.features, self.categories)
        p10, p50, p90 = self._final(self.walk.predict_one(row[0])[np.newaxis, :])[0]
        return CostEstimate(float(p10), float(p50), float(p90), self.model_id)

    def _final(self, raw: np.ndarray) -> np.ndarray:
        return np.sort(raw + np.asarray(self.adjustments_pips), axis=1)


def fit_quantile_model(data: TrainingData, seed: int = 0) -> QuantileCostModel:
    """Fit on three quarters of `data`, calibrate on the rest (a seeded split)."""
    n = len(data.target)
    if n < MIN_ROWS:
        raise CostModelError(
            f"{n} filled executions to learn from; the cost model needs at least {MIN_ROWS}"
        )
    regressor_class = _hist_gradient_boosting()
    order = np.random.default_rng(seed).permutation(n)
    held = order[: calibration_size(n)]
    kept = order[len(held) :]
    categories = {
        name: tuple(sorted(str(v) for v in data.features[name].dropna().unique()))
        for name in CATEGORICAL_FEATURES
    }
    # A feature never known in training (a policy no decision set) teaches nothing, and the
    # trees cannot bin a column with no value at all.
    names = tuple(name for name in FEATURE_NAMES if data.features[name].notna().any())
    columns = {name: data.features[name].tolist() for name in names}
    matrix = feature_matrix(columns, names, categories)
    regressors = tuple(
        regressor_class(loss="quantile", quantile=q, random_state=seed, **BOOSTING).fit(
            matrix[kept], data.target[kept]
        )
        for q in QUANTILES
    )
    raw = np.column_stack([r.predict(matrix[held]) for r in regressors])
    adjustments = conformal_adjustments(raw, data.target[held])
    return QuantileCostModel(regressors, names, categories, adjustments)  # type: ignore[arg-type]


def calibration_size(rows: int) -> int:
    """How many of `rows` training executions are held out to calibrate the model."""
    return math.ceil(rows * CALIBRATION_SHARE)


def conformal_adjustments(raw: np.ndarray, realised: np.ndarray) -> tuple[float, float, float]:
    """How far to move each raw quantile, from held-out (p10, p50, p90) and slippage:
    CQR's finite-sample quantile of each tail's scores, the median's residual median."""
    n = len(realised)
    level = min(math.ceil((n + 1) * (1 - QUANTILES[0])), n)  # the k-th smallest score
    below = np.sort(raw[:, 0] - realised)[level - 1]  # how far slippage fell below p10
    above = np.sort(realised - raw[:, 2])[level - 1]  # how far it rose above p90
    median = float(np.median(realised - raw[:, 1]))
    return (-float(below), median, float(above))


def naive_baseline(data: TrainingData) -> dict[str, tuple[float, float, float]]:
    """Each symbol's unconditional (p10, p50, p90) of the training slippage, and all
    symbols' under ALL_SYMBOLS."""
    frame = pd.DataFrame({"symbol": data.symbols, "slippage": data.target})
    baseline = {
        str(symbol): _quantiles(group["slippage"].to_numpy())
        for symbol, group in frame.groupby("symbol", sort=True)
    }
    baseline[ALL_SYMBOLS] = _quantiles(data.target)
    return baseline


def baseline_predict(baseline: Mapping[str, Sequence[float]], symbols: Sequence[Any]) -> np.ndarray:
    fallback = baseline[ALL_SYMBOLS]
    return np.asarray([baseline.get(str(symbol), fallback) for symbol in symbols], dtype=float)


def _quantiles(values: np.ndarray) -> tuple[float, float, float]:
    low, mid, high = np.quantile(values, QUANTILES)
    return (float(low), float(mid), float(high))


def sklearn_version() -> str:
    try:
        import sklearn
    except ImportError:
        raise CostModelError(INSTALL_HINT) from None
    return str(sklearn.__version__)


def _hist_gradient_boosting() -> Any:
    try:
        from sklearn.ensemble import HistGradientBoostingRegressor
    except ImportError:
        raise CostModelError(INSTALL_HINT) from None
    return HistGradientBoostingRegressor
