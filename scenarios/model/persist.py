"""The `cost.model` file: a fitted cost model, with what it is written down beside it.

One line of JSON, the header (pydantic-validated: format and its version, the features and
their version, categories, conformal adjustments, the baseline, the training sources and
rows, the scikit-learn version, the payload's SHA-256), then the payload: the three fitted
regressors, pickled. Same data and seed, same bytes.

A model file is code: unpickling runs whatever the file says. Load only model files you
made yourself (`arbitrex model fit`); the checksum catches corruption, not malice.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from engine.core.costing import FEATURE_NAMES, FEATURES_VERSION
from scenarios.model.errors import CostModelError
from scenarios.model.estimator import (
    QUANTILES,
    QuantileCostModel,
    calibration_size,
    fit_quantile_model,
    naive_baseline,
    sklearn_version,
    training_data,
)

FORMAT = "arbitrex-cost-model"
FORMAT_VERSION = 1
MAX_HEADER_BYTES = 1 << 20


class CostModelHeader(BaseModel):
    """What a model file says of itself, readable without unpickling anything."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    format: Literal["arbitrex-cost-model"]
    format_version: Literal[1]
    model_id: str  # the payload's checksum, shortened: recorded with every estimate
    features_version: int
    features: tuple[str, ...]
    categories: dict[str, tuple[str, ...]]
    quantiles: tuple[float, float, float]
    adjustments_pips: tuple[float, float, float]
    baseline: dict[str, tuple[float, float, float]]
    sources: tuple[str, ...]
    rows: int  # filled executions learned from, calibration included
    calibration_rows: int
    seed: int
    sklearn_version: str
    payload_sha256: str


@dataclass(frozen=True)
class CostModel:
    """A fitted cost model: its header, its estimator (what the engine carries), and the
    payload as written."""

    header: CostModelHeader
    estimator: QuantileCostModel
    payload: bytes


def fit_cost_model(enriched: pd.DataFrame, sources: tuple[str, ...], seed: int = 0) -> CostModel:
    """Learn the model from enriched executions (their filled ones); `sources` names them."""
    data = training_data(enriched)
    fitted = fit_quantile_model(data, seed)
    payload = pickle.dumps(fitted.regressors, protocol=5)
    digest = hashlib.sha256(payload).hexdigest()
    estimator = replace(fitted, model_id=digest[:12])
    header = CostModelHeader(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        model_id=estimator.model_id,
        features_version=FEATURES_VERSION,
        features=estimator.features,
        categories=dict(estimator.categories),
        quantiles=QUANTILES,
        adjustments_pips=estimator.adjustments_pips,
        baseline=naive_baseline(data),
        sources=sources,
        rows=len(data.target),
        calibration_rows=calibration_size(len(data.target)),
        seed=seed,
        sklearn_version=sklearn_version(),
        payload_sha256=digest,
    )
    return CostModel(header, estimator, payload)


def save_cost_model(model: CostModel, path: Path) -> None:
    """Write the file whole or not at all (aside, then renamed into place)."""
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("wb") as out:
            out.write(model.header.model_dump_json().encode() + b"\n")
            out.write(model.payload)
        os.replace(partial, path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise CostModelError(f"{path}: cannot write the model: {error.strerror}") from None


def load_cost_model(path: Path) -> CostModel:
    """Read a model file this version wrote; anything else is a one-line CostModelError."""
    try:
        content = path.read_bytes()
    except OSError as error:
        raise CostModelError(f"{path}: cannot read the model: {error.strerror}") from None
    line, newline, payload = content.partition(b"\n")
    header = _header(path, line if newline and len(line) <= MAX_HEADER_BYTES else b"")
    if hashlib.sha256(payload).hexdigest() != header.payload_sha256:
        raise CostModelError(f"{path}: corrupt: the payload does not match its checksum")
    regressors = _unpickle(path, payload, header)
    estimator = QuantileCostModel(
        regressors,
        header.features,
        header.categories,
        header.adjustments_pips,
        header.model_id,
    )
    return CostModel(header, estimator, payload)


def _header(path: Path, line: bytes) -> CostModelHeader:
    try:
        fields: Any = json.loads(line)
    except ValueError:
        fields = None
    if not isinstance(fields, dict) or fields.get("format") != FORMAT:
        raise CostModelError(f"{path}: not an arbitrex cost model file")
    if fields.get("format_version") != FORMAT_VERSION:
        raise CostModelError(
            f"{path}: model format version {fields.get('format_version')!r}; this version "
            f"reads {FORMAT_VERSION}: fit the model again"
        )
    try:
        header = CostModelHeader.model_validate(fields)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise CostModelError(f"{path}: bad model header: {where}: {first['msg']}") from None
    if header.features_version != FEATURES_VERSION or not set(header.features) <= set(
        FEATURE_NAMES
    ):
        raise CostModelError(
            f"{path}: trained on features version {header.features_version}; the engine "
            f"computes version {FEATURES_VERSION}: fit the model again"
        )
    return header


def _unpickle(path: Path, payload: bytes, header: CostModelHeader) -> tuple[Any, Any, Any]:
    installed = sklearn_version()
    if installed != header.sklearn_version:
        raise CostModelError(
            f"{path}: fitted with scikit-learn {header.sklearn_version}, this is "
            f"{installed}: fit the model again"
        )
    try:
        regressors = pickle.loads(payload)  # a model file is code: see above
    except Exception as error:
        raise CostModelError(f"{path}: corrupt payload: {type(error).__name__}") from None
    if not (
        isinstance(regressors, tuple)
        and len(regressors) == len(QUANTILES)
        and all(hasattr(r, "predict") for r in regressors)
    ):
        raise CostModelError(f"{path}: corrupt payload: not three fitted regressors")
    return regressors
