"""Labels side by side: each one's mean slippage, shortfall and fill time with a bootstrap
confidence interval, and its difference from a baseline with the interval of that.

Percentile bootstrap of the mean. The values are resampled through multinomial counts over
blocks of the sorted values: with at most BLOCKS values each block is one value and this is
the ordinary bootstrap, exactly; above that, a block's share of a resample is drawn exactly
and the sum of its draws from the block's own mean and spread (normal, by the central limit
theorem: a block holds hundreds of close values). A million fills then cost a few hundred
milliseconds and bounded memory, not a 2,000 x 1,000,000 matrix of indices.

Each (label, measure) draws from a generator seeded by the seed, the label and the measure:
the same numbers every time, and a label's interval does not move when sources are added.
The difference's interval comes from independent bootstraps of the label and the baseline.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from scenarios.analysis.quality import filled_of
from scenarios.provenance import NOT_APPROVED

BLOCKS = 2048
RESAMPLES_PER_CHUNK = 256  # bounds memory: a chunk holds this many x BLOCKS counts
COLUMNS = ["label", "measure", "n", "mean", "low", "high", "diff", "diff_low", "diff_high"]
MEASURES = ("slippage_pips", "shortfall_pips", "fill_time_ms")
# A sweep table's run-level numbers compared across seeds: name -> (column, scale).
RUN_MEASURES = {
    "slippage_pips": ("slippage_pips_mean", 1.0),
    "fill_time_ms": ("fill_time_s_mean", 1000.0),
    "fill_time_p95_ms": ("fill_time_s_p95", 1000.0),
}


def bootstrap_means(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """`resamples` bootstrap replicates of the mean of `values` (see the module's note)."""
    n = len(values)
    ordered = np.sort(np.asarray(values, dtype=float))
    starts = np.linspace(0, n, min(n, BLOCKS) + 1).astype(int)[:-1]
    sizes = np.diff(np.append(starts, n))
    means = np.add.reduceat(ordered, starts) / sizes
    spread = np.sqrt(np.add.reduceat((ordered - np.repeat(means, sizes)) ** 2, starts) / sizes)
    out = np.empty(resamples)
    for first in range(0, resamples, RESAMPLES_PER_CHUNK):
        chunk = min(RESAMPLES_PER_CHUNK, resamples - first)
        counts = rng.multinomial(n, sizes / n, size=chunk)
        totals = counts @ means
        if spread.any():  # blocks of one value (n <= BLOCKS) have none: no normal draw
            noise = rng.standard_normal((chunk, len(sizes)))
            totals += (np.sqrt(counts) * spread * noise).sum(axis=1)
        out[first : first + chunk] = totals / n
    return out


def interval(replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(replicates, [tail, 1.0 - tail])
    return float(low), float(high)


def measured(enriched: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each measure's values for one label: slippage and fill time of the approved
    executions that filled, shortfall of every approved execution."""
    approved = enriched[enriched["outcome_reason"] != NOT_APPROVED]
    filled = filled_of(enriched)
    columns = {
        "slippage_pips": filled["slippage_vs_side_pips"],
        "shortfall_pips": approved["shortfall_pips"],
        "fill_time_ms": filled["fill_time_ms"],
    }
    return {name: column.dropna().to_numpy(dtype=float) for name, column in columns.items()}


def compare(
    enriched: pd.DataFrame,
    baseline: str | None = None,
    *,
    resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    parameters: Sequence[str] = (),
) -> pd.DataFrame:
    """One row per (label, measure), labels in the order they appear: n, mean and its
    interval, and the difference from the baseline's mean (default: the first label) with
    its interval; the baseline's own difference is 0. `parameters` (a sweep's) become
    columns, each label's value."""
    labels = [str(label) for label in pd.unique(enriched["label"])]
    baseline = labels[0] if baseline is None and labels else baseline
    if labels and baseline not in labels:
        raise ValueError(f"baseline {baseline!r} is not one of the labels: {', '.join(labels)}")
    groups = {str(label): group for label, group in enriched.groupby("label", sort=False)}
    stats = {label: _bootstrapped(groups[label], label, resamples, seed) for label in labels}
    rows = []
    for label in labels:
        for measure in MEASURES:
            mean, replicates, n = stats[label][measure]
            base_mean, base_replicates, _ = stats[baseline][measure]
            low, high = interval(replicates, confidence) if n else (np.nan, np.nan)
            diff, diff_low, diff_high = 0.0, 0.0, 0.0
            if label != baseline:
                diff = mean - base_mean
                both = n and len(base_replicates)
                diff_low, diff_high = (
                    interval(replicates - base_replicates, confidence) if both else (np.nan,) * 2
                )
            first = groups[label].iloc[0]
            rows.append(
                {
                    "label": label,
                    "measure": measure,
                    "n": n,
                    "mean": mean,
                    "low": low,
                    "high": high,
                    "diff": diff,
                    "diff_low": diff_low,
                    "diff_high": diff_high,
                    **{name: first.get(name) for name in parameters},
                }
            )
    return pd.DataFrame(rows, columns=[*COLUMNS, *parameters])


def _bootstrapped(
    group: pd.DataFrame, label: str, resamples: int, seed: int
) -> dict[str, tuple[float, np.ndarray, int]]:
    """measure -> (mean, bootstrap replicates of it, n)."""
    out = {}
    for index, (measure, values) in enumerate(measured(group).items()):
        if len(values) == 0:
            out[measure] = (np.nan, np.empty(0), 0)
            continue
        rng = np.random.default_rng([seed, zlib.crc32(label.encode()), index])
        out[measure] = (float(values.mean()), bootstrap_means(values, resamples, rng), len(values))
    return out


def across_seeds(
    points: pd.DataFrame,
    parameters: Sequence[str],
    *,
    resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """A sweep's run-level numbers (one row per point, as its table holds them), averaged
    over the seeds of each parameter value with a bootstrap interval across the seeds:
    columns `*parameters, measure, runs, mean, low, high`."""
    columns = [*parameters, "measure", "runs", "mean", "low", "high"]
    if points.empty:
        return pd.DataFrame(columns=columns)
    grouped = points.groupby(list(parameters), sort=False) if parameters else [((), points)]
    rows = []
    for key, group in grouped:
        values_of = dict(zip(parameters, key if isinstance(key, tuple) else (key,), strict=True))
        for index, (measure, (column, scale)) in enumerate(RUN_MEASURES.items()):
            values = (group[column].dropna() * scale).to_numpy(dtype=float)
            low = high = mean = np.nan
            if len(values):
                mean = float(values.mean())
                where = zlib.crc32(repr(sorted(values_of.items())).encode())
                rng = np.random.default_rng([seed, where, index])
                low, high = interval(bootstrap_means(values, resamples, rng), confidence)
            rows.append(
                {**values_of, "measure": measure, "runs": len(values), "mean": mean}
                | {"low": low, "high": high}
            )
    return pd.DataFrame(rows, columns=columns)
