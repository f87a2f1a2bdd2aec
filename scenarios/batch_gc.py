"""The garbage collector as a simulation run wants it: a run allocates millions of short-lived
objects (events, reports, SimPy events) and makes almost no reference cycles, so the
collector's default pace (a young collection every 700 net allocations) is mostly work that
finds nothing, and every full collection walks the objects the set-up left behind (modules,
the world, the market), which live as long as the run.

Measured with callgrind (`python benchmarks/instructions.py`, whose workloads now run under
`batch_gc` as the commands do), per simulated execution: 1,306,116 -> 1,259,070 instructions
(-3.6 %) with the store in memory, whose kept events every full collection walks; with the
SQLite store, 2,022,192 -> 1,985,850 (-1.8 %, 200 and 2,200 orders). Results are unchanged
(tests/test_batch_gc.py) and memory stays flat: cycles are rare, and the collector still
runs.

Scoped, not global: the commands run it around a run, so a process that runs their code
in-process (the tests, an application embedding the command line) gets its own settings
back afterwards. The library (`scenarios.runner.run_scenario`, a notebook's runs) leaves
the collector alone. The live engine (the API server) keeps the defaults: a larger young
generation means longer pauses, each one on some order's path.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Young collections every 10,000 net allocations instead of 700; the older generations at
# 10 younger collections each, as by default.
BATCH_THRESHOLDS = (10_000, 10, 10)


def tune_for_batch() -> None:
    """Set the collector for the rest of this process (a sweep's worker, which runs only
    points): what set-up left is frozen out of every later collection."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*BATCH_THRESHOLDS)


@contextmanager
def batch_gc() -> Iterator[None]:
    """The collector tuned for a run inside the block, as before it afterwards.

    A process that had frozen objects itself (or an enclosing block) keeps its freeze: the
    collector can only thaw everything at once, so this block then leaves freezing alone and
    sets the thresholds only."""
    thresholds = gc.get_threshold()
    freezes = gc.get_freeze_count() == 0
    if freezes:
        tune_for_batch()
    else:
        gc.set_threshold(*BATCH_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if freezes:
            gc.unfreeze()
