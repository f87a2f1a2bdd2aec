"""Execution quality from runs, sweeps or audit databases, compared, and the HTML report.

`scenarios.analysis.sources` reads any mix of run folders, sweep outputs and audit
databases (`load_sources`), each with a label; `scenarios.analysis.quality` measures
(slippage, shortfall, markouts, rates, costs, breakdowns; + = adverse throughout);
`scenarios.analysis.compare` sets the labels side by side with bootstrap intervals and
differences against a baseline; `scenarios.analysis.figures` draws it (plotly) and
`scenarios.analysis.report` writes the page; both are imported on their own, so that
measuring never loads the plotting libraries. The measures are this
package's names, as the notebooks import them: `from scenarios.analysis import enrich`.
"""

from scenarios.analysis.compare import across_seeds, compare
from scenarios.analysis.exits import empty_exits, limit_order_summary, slippage_by_kind
from scenarios.analysis.quality import (
    BREAKDOWNS,
    FILL_TIME_BUCKETS_MS,
    FILLED,
    MARKOUT_HORIZONS,
    SIZE_BUCKETS_LOTS,
    asymmetry,
    breakdown,
    empty_quotes,
    enrich,
    filled_of,
    pip_of,
    quality_summary,
)
from scenarios.analysis.sources import (
    RunHeader,
    Source,
    SourceError,
    combined,
    database_source,
    enriched,
    load_sources,
    parameters_in,
)

__all__ = [
    "BREAKDOWNS",
    "FILLED",
    "FILL_TIME_BUCKETS_MS",
    "MARKOUT_HORIZONS",
    "SIZE_BUCKETS_LOTS",
    "RunHeader",
    "Source",
    "SourceError",
    "across_seeds",
    "asymmetry",
    "breakdown",
    "combined",
    "compare",
    "database_source",
    "empty_exits",
    "empty_quotes",
    "enrich",
    "enriched",
    "filled_of",
    "limit_order_summary",
    "load_sources",
    "parameters_in",
    "pip_of",
    "quality_summary",
    "slippage_by_kind",
]
