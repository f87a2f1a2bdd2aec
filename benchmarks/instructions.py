"""CPU instructions per simulated execution and per API request, counted by callgrind:
figures that do not wander with the machine's load, for before/after comparisons of work
on the hot paths.

Runs `workloads.simulated_run` (store off, SQLite file) and `workloads.api_requests` (POST
/execute into the ASGI app in process, with the engine stubbed and with the paper engine)
under `valgrind --tool=callgrind` at two sizes, and reports the difference per execution or
request, so interpreter start-up and imports cancel out.
Python runs some 50x slower under callgrind: the default sizes take two to three minutes.
Counts still vary by about 1 % from run to run (object addresses, the garbage collector's
timing): a smaller difference between two checkouts is noise.
Run from the checkout to measure (its own code is imported):

    python benchmarks/instructions.py                 # all four
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


# What one run does, by name: {n} is its size, {folder} a scratch folder.
RUNS = {
    "store_off": "workloads.simulated_run({n}, 'memory://')",
    "store_sqlite_file": "workloads.simulated_run({n}, 'sqlite:///{folder}/sim-{n}.db')",
    "api_engine_stubbed": "workloads.api_requests({n}, engine_stubbed=True)",
    "api_paper_engine": "workloads.api_requests({n}, engine_stubbed=False)",
}


def instructions(run: str, n: int, folder: Path) -> int:
    """Instructions of one whole process that runs `run` at size `n`."""
    code = "from benchmarks import workloads; " + RUNS[run].format(n=n, folder=folder)
    callgrind = ("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null")
    result = subprocess.run(
        [*callgrind, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    found = _COLLECTED.search(result.stderr)
    if result.returncode != 0 or found is None:
        raise SystemExit(f"callgrind run failed ({run}, {n}):\n{result.stderr}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=200, help="size of the short runs")
    parser.add_argument("--large", type=int, default=1_200, help="size of the long runs")
    args = parser.parse_args()
    if args.large <= args.small:
        parser.error("--large must be larger than --small")
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    runs = [(run, n) for run in RUNS for n in (args.small, args.large)]
    with tempfile.TemporaryDirectory() as folder, ThreadPoolExecutor(2) as pool:
        measured = pool.map(lambda run: instructions(*run, Path(folder)), runs)
        counts = dict(zip(runs, measured, strict=True))
    extra = args.large - args.small
    each = {  # whole instructions, so that the parts add up exactly
        run: round((counts[(run, args.large)] - counts[(run, args.small)]) / extra) for run in RUNS
    }
    print(
        json.dumps(
            {
                "instructions_per_execution": {
                    "store_off": each["store_off"],
                    "store_sqlite_file": each["store_sqlite_file"],
                    "of_which_store": each["store_sqlite_file"] - each["store_off"],
                },
                "instructions_per_api_request": {
                    "engine_stubbed": each["api_engine_stubbed"],
                    "paper_engine": each["api_paper_engine"],
                    "of_which_engine": each["api_paper_engine"] - each["api_engine_stubbed"],
                },
                "sizes": [args.small, args.large],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
