"""Fitted gradient-boosted trees as flat arrays, walked for one row at a time.

scikit-learn's `predict` spends milliseconds checking and converting its input, which is
nothing beside a batch of thousands but everything beside one order waiting to be sent. The
engine asks about one order at a time, so its estimate walks the trees here instead: every
tree of every quantile at once, a level per numpy step, each tree's leaf value added in
sklearn's own order from its baseline, so the numbers are sklearn's to the last bit (tests
hold the two to equality). It reads the fitted regressors' trees (`_predictors`,
`_baseline_prediction`), which is why a model file names its scikit-learn version and is
refused by any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TreeWalk:
    """The trees of several regressors, their nodes in one set of arrays."""

    baselines: np.ndarray  # per regressor
    roots: np.ndarray  # per tree, its root's node index
    owner: np.ndarray  # per tree, the regressor it belongs to
    feature: np.ndarray  # per node
    threshold: np.ndarray
    missing_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    leaf: np.ndarray
    value: np.ndarray

    @classmethod
    def of(cls, regressors: Sequence[Any]) -> TreeWalk:
        """Regressors fitted without declared categorical features (numbers only)."""
        tables, roots, owner, offset = [], [], [], 0
        for index, regressor in enumerate(regressors):
            if getattr(regressor, "_preprocessor", None) is not None:
                raise ValueError("trees with categorical splits are not walked here")
            for iteration in regressor._predictors:
                (tree,) = iteration  # one tree per iteration: a regressor has one output
                roots.append(offset)
                owner.append(index)
                tables.append((tree.nodes, offset))
                offset += len(tree.nodes)

        def column(name: str, dtype: Any, shift: bool = False) -> np.ndarray:
            parts = [nodes[name].astype(dtype) for nodes, _ in tables]
            if shift:  # a child's index within its tree, made one within the whole table
                parts = [part + at for part, (_, at) in zip(parts, tables, strict=True)]
            return np.concatenate(parts)

        return cls(
            baselines=np.asarray([float(r._baseline_prediction[0, 0]) for r in regressors]),
            roots=np.asarray(roots, dtype=np.intp),
            owner=np.asarray(owner, dtype=np.intp),
            feature=column("feature_idx", np.intp),
            threshold=column("num_threshold", float),
            missing_left=column("missing_go_to_left", bool),
            left=column("left", np.intp, shift=True),
            right=column("right", np.intp, shift=True),
            leaf=column("is_leaf", bool),
            value=column("value", float),
        )

    def predict_one(self, row: np.ndarray) -> np.ndarray:
        """Each regressor's prediction for one row of features."""
        node = self.roots.copy()
        walking = ~self.leaf[node]
        while walking.any():
            at = node[walking]
            x = row[self.feature[at]]
            left = np.where(np.isnan(x), self.missing_left[at], x <= self.threshold[at])
            node[walking] = np.where(left, self.left[at], self.right[at])
            walking[walking] = ~self.leaf[node[walking]]
        leaves = self.value[node]
        # Added one tree after another from the baseline, as sklearn adds them.
        return np.asarray(
            [
                np.cumsum(np.concatenate(([base], leaves[self.owner == i])))[-1]
                for i, base in enumerate(self.baselines)
            ]
        )
