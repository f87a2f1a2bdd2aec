"""The simulated broker venue in a process of its own, which outlives the engines that use it
as a real terminal outlives the strategy that talks to it.

Paper trading (`arbitrex serve --broker sim --paper-venue ADDRESS`):

    python -m scenarios.paper_venue --address ADDRESS --seed S     # or: arbitrex paper-venue
    python -m scenarios.paper_venue --address ADDRESS --stop

serves the venue `serve --broker sim` would otherwise build inside itself (the simulator's
default market, account and venue, from `--seed`), so that a server killed mid-execution and
restarted finds the orders that reached the venue, and adopts them. `connect_or_start`
connects to the venue at ADDRESS, starting one detached when none answers there. The ledger
lives in this process's memory: it survives the server's death, not the venue's own.

Crash chaos (`arbitrex run --crash`):

    python -m scenarios.paper_venue --port P --scenario FILE --seed S

builds the Venue the scenario describes (its market, account and venue sections) instead.

ADDRESS is a Unix socket path (created owner-only: the wire carries pickles) or, where there
are no Unix sockets, HOST:PORT on loopback.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from scenarios.spec import Scenario, load_scenario
from sim.broker_process import Address, VenueProxy, serve
from sim.market import MarketConfig, SyntheticMarket
from sim.venue import Venue
from sim.world import DEFAULT_START

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# How long a venue started here may take to answer: its imports on a busy machine.
START_TIMEOUT_SECONDS = 60.0


class PaperVenueError(Exception):
    """The paper venue cannot be reached or started; the message is one line."""


def scenario_venue(scenario: Scenario, seed: int) -> Venue:
    """The venue the scenario describes, on its synthetic market (crash chaos refuses a
    replayed one), every model seeded from `seed`."""
    market = SyntheticMarket(scenario.market_config(), seed, scenario.t0)
    return Venue(market, scenario.account, scenario.venue_config(), seed)


def paper_venue(seed: int, start: float = DEFAULT_START) -> Venue:
    """The venue of paper trading, as `sim.world.paper_engine` builds it in process."""
    return Venue(SyntheticMarket(MarketConfig(), seed, start), None, None, seed)


def parse_address(text: str) -> Address:
    """HOST:PORT (loopback only) or a Unix socket path."""
    host, colon, port = text.rpartition(":")
    if colon and port.isdigit() and "/" not in text:
        host = host.strip("[]")
        if host not in LOOPBACK:
            raise PaperVenueError(
                f"paper venue {text!r}: listen on loopback or on a Unix socket only "
                "(its wire carries pickles)"
            )
        return (host, int(port))
    return text


def answering(address: Address) -> VenueProxy | None:
    """A connection to the venue at `address`, or None when nothing listens there."""
    try:
        return VenueProxy(address)
    except (ConnectionRefusedError, FileNotFoundError):
        return None


def start_detached(
    text: str, seed: int, log: Path | None = None, start: float | None = None
) -> subprocess.Popen[bytes]:
    """Start the venue at `text` in a session of its own, so that it outlives its parent
    and the parent's terminal (Ctrl-C in a terminal signals the whole process group)."""
    if isinstance(parse_address(text), str):
        text = os.path.abspath(text)  # the child runs elsewhere (below)
    out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "scenarios.paper_venue", "--address", text),
                *("--seed", str(seed)),
                *(("--start", repr(start)) if start is not None else ()),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            cwd=Path(__file__).resolve().parent.parent,  # where `scenarios` imports from
        )
    finally:
        if log is not None:
            out.close()  # type: ignore[union-attr]  # the child holds its own copy


def connect_or_start(
    text: str, seed: int, log: Path | None = None, start: float | None = None
) -> tuple[VenueProxy, subprocess.Popen[bytes] | None]:
    """The venue at `text`; started detached (and returned) when nothing answers there."""
    address = parse_address(text)
    venue = answering(address)
    if venue is not None:
        return venue, None
    process = start_detached(text, seed, log, start)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while (venue := answering(address)) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            where = f"; see {log}" if log is not None else ""
            raise PaperVenueError(f"the paper venue at {text} did not start{where}")
        time.sleep(0.05)
    return venue, process


def open_paper_venue(text: str, seed: int, start: float | None = None) -> tuple[VenueProxy, str]:
    """The venue `serve --paper-venue text` trades on, and a line saying which it is: the
    one running at `text`, else one started there (its output in `text`.log for a socket)."""
    log = Path(f"{text}.log") if isinstance(parse_address(text), str) else None
    venue, started = connect_or_start(text, seed, log, start)
    about = venue.about()
    line = f"paper venue pid {about['pid']} at {text}" + (
        " (started; it outlives this server: stop it with `arbitrex paper-venue --stop`)"
        if started is not None
        else " (running: its ledger carries over)"
    )
    if about["seed"] != seed:
        line += f"; its market's seed is {about['seed']}, not --seed {seed}"
    return venue, line


def stop(text: str) -> bool:
    """Ask the venue at `text` to end; False when none was running there."""
    venue = answering(parse_address(text))
    if venue is None:
        return False
    venue.shutdown()
    return True


def _ready_to_listen(address: Address) -> None:
    """Refuse a live venue at `address`; clear a socket file a killed one left behind."""
    if isinstance(address, str):
        if answering(address) is not None:
            raise PaperVenueError(f"a paper venue is already running at {address}")
        Path(address).unlink(missing_ok=True)
        os.umask(0o077)  # the socket is created owner-only: the authkey is no secret


def run(text: str, seed: int, start: float | None = None) -> None:
    """Serve the paper venue at `text` until asked to stop, SIGTERM or SIGINT; its clock
    reads `start` now (default: the wall clock's now, as paper trading in process does)."""
    start = time.time() if start is None else start
    address = parse_address(text)
    _ready_to_listen(address)
    venue = paper_venue(seed, start)
    about: dict[str, Any] = {"start": start, "origin": time.time(), "seed": seed}

    def shutdown(*_: object) -> None:
        if isinstance(address, str):
            Path(address).unlink(missing_ok=True)
        os._exit(0)  # nothing to flush: the ledger lives in memory and goes with it

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    print(f"paper venue pid {os.getpid()} at {text} (seed {seed})", flush=True)
    serve(address, venue, about, shutdown)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a simulated broker venue")
    parser.add_argument("--address", help="paper trading: a Unix socket path, or HOST:PORT")
    parser.add_argument("--stop", action="store_true", help="stop the venue at --address")
    parser.add_argument("--port", type=int, help="crash chaos: on 127.0.0.1")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", type=float, help="paper trading: the clock's instant now")
    parser.add_argument(
        "--scenario", type=Path, help="crash chaos: a scenario file (its market, venue, account)"
    )
    options = parser.parse_args(argv)
    try:
        if options.address is not None and options.stop:
            if not stop(options.address):
                print(f"no paper venue at {options.address}", file=sys.stderr)
        elif options.address is not None:
            run(options.address, options.seed, options.start)
        elif options.port is not None and options.scenario is not None:
            venue = scenario_venue(load_scenario(options.scenario), options.seed)
            serve(("127.0.0.1", options.port), venue)
        else:
            parser.error("give --address, or --port with --scenario")
    except PaperVenueError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
