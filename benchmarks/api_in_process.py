"""POST /execute under concurrency, in process: the API app and the engine without the HTTP
stack and without a load generator competing for the machine. For A/B comparisons of work on
the API's path, where over HTTP the client's share and the machine's drift blur the result.
Run from the checkout to measure (its own code is imported):

    python benchmarks/api_in_process.py                          # 4,000 requests, 100 at once
    python benchmarks/api_in_process.py --db sqlite:///bench.db  # on a durable store (sync)
    python benchmarks/api_in_process.py --engine-stubbed         # the app alone
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# The checkout this script stands in, not an installed copy: so that a worktree of another
# commit measures its own code.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.workloads import api_requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=4_000)
    parser.add_argument("--at-once", type=int, default=100, help="requests in flight")
    parser.add_argument("--latency-ms", type=float, default=1.0, help="paper venue one-way")
    parser.add_argument("--db", default="memory://", help="audit store URL (sync durability)")
    parser.add_argument("--engine-stubbed", action="store_true", help="measure the app alone")
    args = parser.parse_args()
    if args.requests < 1 or args.at_once < 1 or args.latency_ms <= 0:
        parser.error("--requests and --at-once must be at least 1, --latency-ms above 0")
    measured = api_requests(
        args.requests, args.engine_stubbed, args.at_once, args.latency_ms, args.db
    )
    print(json.dumps(vars(args) | {k: round(v, 1) for k, v in measured.items()}, indent=2))


if __name__ == "__main__":
    main()
