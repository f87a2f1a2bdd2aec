"""Engines that trade in wall-clock time, put together in one place: paper trading on the
simulated market, and live trading on the MT5 terminal.

`arbitrex serve` builds its engine here, as do the benchmarks and the API tests; the command
line only parses arguments and prints. Failures to reach a live broker are exceptions with
a one-line message free of credentials; the caller decides what they mean (an exit code).
"""

from __future__ import annotations

import functools
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from engine.clock import WallClock
from engine.core.config import EngineConfig
from engine.engine import ExecutionEngine
from engine.live import LiveDriver
from engine.store import ExecutionDatabase
from sim.broker import SimulatedBroker
from sim.broker_process import VenueProxy
from sim.latency import LatencyConfig
from sim.market import MarketConfig, SyntheticMarket
from sim.network import Network, NetworkConfig
from sim.venue import Venue
from sim.wire import Wire
from sim.world import paper_engine

if TYPE_CHECKING:  # imported on use: the MT5 extra may not be installed
    from brokers.mt5 import MT5Broker, MT5Config


class _SerialVenue:
    """The simulated venue behind one lock. Paper trading calls it from many request
    threads, and neither its ledger counters nor the market's lazily advanced price walk
    are safe to share; the network's latency is slept outside the lock, as on a real wire."""

    def __init__(self, venue: Venue) -> None:
        self._venue = venue
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._venue, name)
        if not callable(attribute):
            return attribute

        @functools.wraps(attribute)
        def serially(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attribute(*args, **kwargs)

        # Kept: __getattr__ only runs for names not found, so each method is wrapped once
        # rather than on every call of every request.
        setattr(self, name, serially)
        return serially


def paper_trading_engine(
    seed: int,
    database: ExecutionDatabase,
    latency_ms: float | None = None,
    venue: VenueProxy | None = None,
    start: float | None = None,
) -> tuple[ExecutionEngine, Venue]:
    """The simulator in wall-clock time, safe to execute on from many threads at once.

    `latency_ms`: a constant one-way latency; None keeps the simulator's latency model.
    `venue`: a venue in a process of its own (`scenarios.paper_venue`), which outlives this
    engine; None builds one inside this process, whose ledger dies with it.
    `start`: the instant (POSIX seconds) the clock reads now; None, the wall clock itself,
    so that executions and the audit trail are stamped with the real time, and the
    simulated market keeps the real FX week (closed at the weekend, as a broker's is).
    Tests pass a fixed instant, to meet the same market whatever day they run on.
    Returns the engine and the venue, whose ledger says what really reached the broker.
    """
    network = (
        NetworkConfig(latency=LatencyConfig.constant(latency_ms))
        if latency_ms is not None
        else None
    )
    if venue is not None:
        return _remote_paper_engine(seed, database, network, venue), cast(Venue, venue)
    engine, venue = paper_engine(
        seed, network=network, database=database, start=time.time() if start is None else start
    )
    broker = engine.broker
    assert isinstance(broker, SimulatedBroker)
    broker.venue = cast(Venue, _SerialVenue(venue))
    return engine, venue


def _remote_paper_engine(
    seed: int, database: ExecutionDatabase, network: NetworkConfig | None, venue: VenueProxy
) -> ExecutionEngine:
    """The engine on a venue process: on the venue's clock, which it keeps across our
    restarts (a restarted engine on a fresh clock would see its own records in the future,
    and the venue's market go back in time). The venue process answers one request at a
    time, so no lock is needed here."""
    about = venue.about()
    clock = WallClock(about["start"], about["origin"])
    # Latency follows the market's volatility: the venue's market, rebuilt here from the
    # same seed and start (a deterministic function of them) rather than asked over the wire.
    market = SyntheticMarket(MarketConfig(), about["seed"], about["start"])
    wire = Wire(Network(network or NetworkConfig(), seed, market.volatility), clock)
    config = EngineConfig()
    broker = SimulatedBroker(cast(Venue, venue), wire, config.request_timeout_seconds)
    return ExecutionEngine(broker, database, config, LiveDriver(clock))


class BrokerNotAvailable(Exception):
    """The live broker is not installed here, or not configured (credentials)."""


class BrokerUnreachable(Exception):
    """The live broker is configured but cannot be connected to."""


def connect_mt5(
    credentials_file: Path | None = None,
    bridge: tuple[str, int] | None = None,
    config: MT5Config | None = None,
) -> MT5Broker:
    """The MT5 broker on the terminal, logged in: an `MT5Broker` (close it when done).

    Credentials come from `credentials_file` (TOML: login, password, server), else from the
    MT5_* environment variables. `bridge` is the (host, port) of the mt5linux bridge; None
    loads the native MetaTrader5 module. Raises BrokerNotAvailable or BrokerUnreachable.
    """
    try:
        from brokers.mt5 import MT5Broker, MT5Credentials, MT5Unavailable, TerminalStartError
    except ImportError as missing:
        raise BrokerNotAvailable(
            f"the MT5 broker is not available in this installation ({missing})"
        ) from None
    try:
        credentials = (
            MT5Credentials.from_file(credentials_file)
            if credentials_file is not None
            else MT5Credentials.from_env()
        )
    except (OSError, ValueError) as bad:  # pydantic hides the input in its errors here
        raise BrokerNotAvailable(f"MT5 credentials: {bad}") from None
    host, port = bridge or ("localhost", 18812)
    password = credentials.password.get_secret_value()
    # Raised `from None`: the broker's own exception, chained, may hold the password.
    try:
        broker = MT5Broker.connect(
            credentials, config, kind="bridge" if bridge else "native", host=host, port=port
        )
    except MT5Unavailable as missing:
        raise BrokerNotAvailable(str(missing).replace(password, "***")) from None
    except TerminalStartError as refused:
        raise BrokerUnreachable(str(refused).replace(password, "***")) from None
    except Exception as other:  # a bridge may echo the call, credentials and all
        raise BrokerUnreachable(f"cannot reach the MT5 terminal: {type(other).__name__}") from None
    return broker
