"""Execution quality from runs or a live audit database, and the HTML report of it.

`scenarios.analysis.quality` measures (slippage, shortfall, markouts, rates, breakdowns);
`scenarios.analysis.report` draws it (matplotlib figures, the static HTML report), and is
imported on its own so that measuring never loads matplotlib. The measures are this
package's names, as the notebooks import them: `from scenarios.analysis import enrich`.
"""

from scenarios.analysis.exits import (
    empty_exits,
    limit_order_summary,
    load_exits,
    slippage_by_kind,
)
from scenarios.analysis.quality import (
    BREAKDOWNS,
    FILLED,
    LATENCY_BUCKETS_MS,
    MARKOUT_HORIZONS,
    SIZE_BUCKETS,
    asymmetry,
    breakdown,
    empty_quotes,
    enrich,
    load_database,
    load_run,
    load_runs,
    pip_of,
    quality_summary,
)

__all__ = [
    "BREAKDOWNS",
    "FILLED",
    "LATENCY_BUCKETS_MS",
    "MARKOUT_HORIZONS",
    "SIZE_BUCKETS",
    "asymmetry",
    "breakdown",
    "empty_exits",
    "empty_quotes",
    "enrich",
    "limit_order_summary",
    "load_database",
    "load_exits",
    "load_run",
    "load_runs",
    "pip_of",
    "quality_summary",
    "slippage_by_kind",
]
