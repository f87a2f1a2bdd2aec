"""Assemble a simulated world — market, venue, network, broker, engine — from one seed."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import simpy

from brokers.mt5 import MT5Broker, MT5Config
from engine.core.config import EngineConfig
from engine.core.ports import BrokerInterface
from engine.engine import ExecutionEngine
from engine.store.base import ExecutionDatabase
from sim.account import AccountConfig
from sim.broker import SimulatedBroker
from sim.driver import SimPyDriver
from sim.market import MarketConfig, PriceSource, SyntheticMarket
from sim.mt5 import MT5Emulator
from sim.network import Network, NetworkConfig
from sim.venue import Venue, VenueConfig

# A Monday morning in London: the market is open and liquid.
DEFAULT_START = datetime(2024, 1, 8, 7, 0, tzinfo=UTC).timestamp()


@dataclass
class SimulatedWorld:
    env: simpy.Environment
    market: PriceSource
    venue: Venue
    network: Network
    broker: BrokerInterface
    engine: ExecutionEngine
    driver: SimPyDriver

    @classmethod
    def build(
        cls,
        seed: int,
        market: MarketConfig | PriceSource | None = None,
        network: NetworkConfig | None = None,
        account: AccountConfig | None = None,
        config: EngineConfig | None = None,
        database: ExecutionDatabase | None = None,
        start: float = DEFAULT_START,
        venue: VenueConfig | None = None,
        broker_kind: Literal["sim", "mt5-emulated"] = "sim",
    ) -> SimulatedWorld:
        """A world whose every random model is seeded from `seed`; `market` may be a
        config for the synthetic market or a ready price source (e.g. a ReplayMarket).

        `broker_kind` "mt5-emulated" puts MT5Broker over the MT5 terminal emulator in
        front of the same venue: the engine then talks to the live adapter's code."""
        env = simpy.Environment(initial_time=start)
        prices = _prices(market, seed, start)
        sim_venue = Venue(prices, account, venue, seed)
        sim_network = Network(network or NetworkConfig(), seed, prices.volatility)
        broker: BrokerInterface
        if broker_kind == "mt5-emulated":
            # The SimPy driver carries the wire (latency, loss, outages) itself, so the
            # terminal answers at once, at the virtual instant a request arrives.
            terminal = MT5Emulator(sim_venue, clock=lambda: env.now)
            broker = MT5Broker(terminal, MT5Config(), clock=lambda: env.now)
            broker.start()
        else:
            broker = SimulatedBroker(sim_venue, clock=lambda: env.now, network=sim_network)
        engine = ExecutionEngine(
            broker,
            database,
            config,
            clock=lambda: env.now,
            sleep=_no_sleep,
            instance_id=f"sim-{seed}-0",
        )
        driver = SimPyDriver(env, engine, sim_network)
        return cls(env, prices, sim_venue, sim_network, broker, engine, driver)

    def restarted(self, config: EngineConfig | None = None) -> SimulatedWorld:
        """A new engine process on the same store, broker and market, from now: what a
        crash and restart look like (the old engine's processes are simply never run)."""
        env = simpy.Environment(initial_time=self.env.now)
        broker = SimulatedBroker(self.venue, clock=lambda: env.now, network=self.network)
        database = self.engine.database
        database.release_lease(self.engine.instance_id)  # the old engine is dead
        engine = ExecutionEngine(
            broker,
            database,
            config or self.engine.config,
            clock=lambda: env.now,
            sleep=_no_sleep,
            instance_id=f"{self.engine.instance_id}+",
        )
        driver = SimPyDriver(env, engine, self.network)
        return SimulatedWorld(env, self.market, self.venue, self.network, broker, engine, driver)


def _prices(market: MarketConfig | PriceSource | None, seed: int, start: float) -> PriceSource:
    if market is None or isinstance(market, MarketConfig):
        return SyntheticMarket(market or MarketConfig(), seed, start)
    return market


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
    market: MarketConfig | PriceSource | None = None,
    network: NetworkConfig | None = None,
    account: AccountConfig | None = None,
    config: EngineConfig | None = None,
    database: ExecutionDatabase | None = None,
    start: float = DEFAULT_START,
    venue: VenueConfig | None = None,
) -> tuple[ExecutionEngine, Venue]:
    """The live driver against the simulated broker, in real time (paper trading)."""
    clock = WallClock(start)
    prices = _prices(market, seed, start)
    sim_venue = Venue(prices, account, venue, seed)
    engine_config = config or EngineConfig()
    broker = SimulatedBroker(
        sim_venue,
        clock=clock,
        network=Network(network or NetworkConfig(), seed, prices.volatility),
        sleep=time.sleep,
        request_timeout=engine_config.request_timeout_seconds,
    )
    return ExecutionEngine(
        broker, database, engine_config, clock=clock, sleep=time.sleep
    ), sim_venue
