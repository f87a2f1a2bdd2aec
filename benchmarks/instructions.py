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
    python benchmarks/instructions.py --no-valgrind --orders 20   # each run once, no counts

`--no-valgrind` runs each workload once, at `--orders`, in the same command as under
callgrind but without it, and prints what ran and how long it took: a check that the
workloads run, in seconds rather than minutes; it counts nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
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


def command(run: str, n: int, folder: Path) -> list[str]:
    """The Python process that runs `run` at size `n` (from ROOT: the checkout's code)."""
    code = "from benchmarks import workloads; " + RUNS[run].format(n=n, folder=folder)
    return [sys.executable, "-c", code]


def instructions(run: str, n: int, folder: Path) -> int:
    """Instructions of one whole process that runs `run` at size `n`."""
    callgrind = ("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null")
    result = subprocess.run(
        [*callgrind, *command(run, n, folder)], capture_output=True, text=True, cwd=ROOT
    )
    found = _COLLECTED.search(result.stderr)
    if result.returncode != 0 or found is None:
        raise SystemExit(f"callgrind run failed ({run}, {n}):\n{result.stderr}")
    return int(found.group(1))


def plain_seconds(run: str, n: int, folder: Path) -> float:
    """Real seconds of the process that runs `run` at size `n`, without valgrind."""
    started = time.perf_counter()
    result = subprocess.run(command(run, n, folder), capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"run failed ({run}, {n}):\n{result.stderr}")
    return time.perf_counter() - started


def ran_plainly(orders: int) -> dict[str, object]:
    """Each run once at `orders`, without valgrind: the code that ran, and its real seconds."""
    with tempfile.TemporaryDirectory() as folder, ThreadPoolExecutor(2) as pool:
        seconds = pool.map(lambda run: plain_seconds(run, orders, Path(folder)), RUNS)
        ran = {
            run: {"code": command(run, orders, Path(folder))[-1], "seconds": round(taken, 2)}
            for run, taken in zip(RUNS, seconds, strict=True)
        }
    return {"valgrind": False, "orders": orders, "ran": ran}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=200, help="size of the short runs")
    parser.add_argument("--large", type=int, default=1_200, help="size of the long runs")
    parser.add_argument(
        "--no-valgrind",
        action="store_true",
        help="run each workload once at --orders, without valgrind; count nothing",
    )
    parser.add_argument("--orders", type=int, default=20, help="size of a --no-valgrind run")
    args = parser.parse_args()
    if args.no_valgrind:
        if args.orders < 1:
            parser.error("--orders must be at least 1")
        print(json.dumps(ran_plainly(args.orders), indent=2))
        return
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
