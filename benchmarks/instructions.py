"""CPU instructions per simulated execution, counted by callgrind: a figure that does not
wander with the machine's load, for before/after comparisons of work on the hot path.

Runs `scenarios.bench.simulated_run` under `valgrind --tool=callgrind` at two sizes and
reports the difference per execution, so interpreter start-up and imports cancel out.
Python runs some 50x slower under callgrind: the default sizes take about a minute.
Run from the checkout to measure (its own code is imported):

    python benchmarks/instructions.py                 # store off and SQLite file
    python benchmarks/instructions.py --small 200 --large 2200
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_COLLECTED = re.compile(r"Collected : (\d+)")


def instructions(orders: int, store: str, folder: Path) -> int:
    """Instructions of one whole process that simulates `orders` executions."""
    url = "memory://" if store == "memory" else f"sqlite:///{folder / f'{store}-{orders}.db'}"
    code = f"from scenarios import bench; bench.simulated_run({orders}, {url!r})"
    callgrind = ("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null")
    result = subprocess.run(
        [*callgrind, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    found = _COLLECTED.search(result.stderr)
    if result.returncode != 0 or found is None:
        raise SystemExit(f"callgrind run failed ({orders} orders, {store}):\n{result.stderr}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=200, help="orders of the short run")
    parser.add_argument("--large", type=int, default=1_200, help="orders of the long run")
    args = parser.parse_args()
    if args.large <= args.small:
        parser.error("--large must be more orders than --small")
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    runs = [(n, store) for store in ("memory", "sqlite") for n in (args.small, args.large)]
    with tempfile.TemporaryDirectory() as folder, ThreadPoolExecutor(2) as pool:
        measured = pool.map(lambda run: instructions(*run, Path(folder)), runs)
        counts = dict(zip(runs, measured, strict=True))
    per_execution = {  # whole instructions, so that the two parts add up exactly
        store: round(
            (counts[(args.large, store)] - counts[(args.small, store)]) / (args.large - args.small)
        )
        for store in ("memory", "sqlite")
    }
    print(
        json.dumps(
            {
                "instructions_per_execution": {
                    "store_off": per_execution["memory"],
                    "store_sqlite_file": per_execution["sqlite"],
                    "of_which_store": per_execution["sqlite"] - per_execution["memory"],
                },
                "orders": [args.small, args.large],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
