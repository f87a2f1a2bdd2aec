"""Where the cost model's executions come from: whatever `load_sources` reads (run folders,
sweep outputs, audit databases), enriched, each source labelled."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from scenarios.analysis.sources import SourceError, enriched, load_sources
from scenarios.model.errors import CostModelError


def enriched_executions(specs: Sequence[str | Path]) -> pd.DataFrame:
    """Every source's executions, enriched, with `label` and `run` telling them apart."""
    try:
        return enriched(load_sources(specs))
    except SourceError as error:
        raise CostModelError(str(error)) from None
