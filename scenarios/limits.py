"""The largest run a scenario may ask for, and why.

Past these a run would not end in a useful time, or a number would not fit where it goes;
`arbitrex run` refuses them with the others, before anything is created. Numbers in every
file must also be finite: `inf` and `nan` are refused wherever a number enters.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# Orders in a run: from the synthetic flow, or lines of a decisions file.
MAX_ORDERS = 1_000_000
# Virtual time a run may span: a trading week. The quote tape is sampled every virtual
# second, so a week is some seconds of real time and a quotes.parquet of a few million rows;
# an unbounded offset or delay would be a run that never ends and a tape that fills the disk.
MAX_RUN_SECONDS = 7 * 86_400.0
# Seeds fit a signed 64-bit integer, as database and Parquet columns hold integers; an
# unbounded one would also outgrow the 128-character decision ids the flow derives from it.
MAX_SEED = 2**63 - 1
# Seeds in one sweep: each is a whole run, and more than this is a typo (1-100000000).
MAX_SWEEP_SEEDS = 10_000

# An offset or a delay within a run, in seconds.
RunSeconds = Annotated[float, Field(ge=0.0, le=MAX_RUN_SECONDS)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
