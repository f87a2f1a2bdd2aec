"""The pre-trade cost model: quantiles of slippage learnt from runs and audit databases.

`fit_cost_model` learns it from enriched executions (features replayed through the engine's
own fold, `engine.core.costing`), `save_cost_model` / `load_cost_model` keep it in a
`cost.model` file (a model file is code: load only your own), `evaluate` judges it on unseen
executions against a naive baseline, and `estimate_vs_realised` compares the estimates an
engine recorded with what was realised. scikit-learn (the `model` extra) is imported only
when a model is fitted or loaded.
"""

from scenarios.model.errors import CostModelError
from scenarios.model.evaluation import estimate_vs_realised, evaluate
from scenarios.model.features import replayed_features
from scenarios.model.persist import (
    CostModel,
    CostModelHeader,
    fit_cost_model,
    load_cost_model,
    save_cost_model,
)

__all__ = [
    "CostModel",
    "CostModelError",
    "CostModelHeader",
    "estimate_vs_realised",
    "evaluate",
    "fit_cost_model",
    "load_cost_model",
    "replayed_features",
    "save_cost_model",
]
