"""Where the cost model's executions come from: run folders (`arbitrex run --out`), each
enriched with its own quote tape and labelled with its folder's name."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from scenarios.analysis.quality import enrich, load_runs
from scenarios.model.errors import CostModelError


def enriched_executions(specs: Sequence[str | Path]) -> pd.DataFrame:
    """Every source's executions, enriched, with `label` and `run` telling them apart."""
    if not specs:
        raise CostModelError("no sources given")
    folders = [Path(spec) for spec in specs]
    for folder in folders:
        if not (folder / "executions.parquet").is_file():
            raise CostModelError(
                f"{folder}: no executions.parquet here: give run folders (arbitrex run --out)"
            )
    try:
        executions, quotes = load_runs(folders)
    except (OSError, ValueError) as error:  # an unreadable or foreign Parquet file
        raise CostModelError(f"cannot read the runs: {error}") from None
    enriched = enrich(executions, quotes)
    enriched["label"] = enriched["run"].map(dict(enumerate(folder.name for folder in folders)))
    return enriched
