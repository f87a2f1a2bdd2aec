"""Assemble a simulated world — market, venue, network, broker, engine — from one seed."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import simpy

from brokers.sim import SimulatedBroker
from engine.core.config import EngineConfig
from engine.engine import ExecutionEngine
from engine.store.base import ExecutionDatabase
from sim.driver import SimPyDriver
from sim.market import MarketConfig, SyntheticMarket
from sim.network import Network, NetworkConfig
from sim.venue import AccountConfig, Venue, VenueConfig

# A Monday morning in London: the market is open and liquid.
DEFAULT_START = datetime(2024, 1, 8, 7, 0, tzinfo=UTC).timestamp()


@dataclass
class SimulatedWorld:
    env: simpy.Environment
    market: SyntheticMarket
    venue: Venue
    network: Network
    broker: SimulatedBroker
    engine: ExecutionEngine
    driver: SimPyDriver

    @classmethod
    def build(
        cls,
        seed: int,
        market: MarketConfig | None = None,
        network: NetworkConfig | None = None,
        account: AccountConfig | None = None,
        config: EngineConfig | None = None,
        database: ExecutionDatabase | None = None,
        start: float = DEFAULT_START,
        venue: VenueConfig | None = None,
    ) -> SimulatedWorld:
        env = simpy.Environment(initial_time=start)
        sim_market = SyntheticMarket(market or MarketConfig(), seed)
        sim_venue = Venue(sim_market, account, venue)
        sim_network = Network(network or NetworkConfig(), seed)
        broker = SimulatedBroker(sim_venue, clock=lambda: env.now)
        engine = ExecutionEngine(broker, database, config, clock=lambda: env.now, sleep=_no_sleep)
        return cls(
            env,
            sim_market,
            sim_venue,
            sim_network,
            broker,
            engine,
            SimPyDriver(env, engine, sim_network),
        )


def _no_sleep(seconds: float) -> None:
    raise RuntimeError("a simulated world runs its executions through the SimPy driver")


class WallClock:
    """Wall-clock seconds, anchored at a chosen instant: paper trading on simulated history."""

    def __init__(self, start: float = DEFAULT_START) -> None:
        self._start = start
        self._origin = time.monotonic()

    def __call__(self) -> float:
        return self._start + (time.monotonic() - self._origin)


def paper_engine(
    seed: int,
    market: MarketConfig | None = None,
    network: NetworkConfig | None = None,
    account: AccountConfig | None = None,
    config: EngineConfig | None = None,
    database: ExecutionDatabase | None = None,
    start: float = DEFAULT_START,
    venue: VenueConfig | None = None,
) -> tuple[ExecutionEngine, Venue]:
    """The live driver against the simulated broker, in real time (paper trading)."""
    clock = WallClock(start)
    sim_venue = Venue(SyntheticMarket(market or MarketConfig(), seed), account, venue)
    engine_config = config or EngineConfig()
    broker = SimulatedBroker(
        sim_venue,
        clock=clock,
        network=Network(network or NetworkConfig(), seed),
        sleep=time.sleep,
        request_timeout=engine_config.request_timeout_seconds,
    )
    return ExecutionEngine(
        broker, database, engine_config, clock=clock, sleep=time.sleep
    ), sim_venue
