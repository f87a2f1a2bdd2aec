"""Assemble a simulated world — market, venue, network, broker, engine — from one seed."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import simpy

from brokers.mt5 import MT5Broker, MT5Config
from engine.clock import WallClock
from engine.core.config import EngineConfig
from engine.core.ports import BrokerInterface
from engine.engine import ExecutionEngine
from engine.live import LiveDriver
from engine.store.base import ExecutionDatabase
from sim.account import AccountConfig
from sim.broker import SimulatedBroker
from sim.clock import SimPyClock
from sim.driver import SimPyDriver
from sim.market import MarketConfig, PriceSource, SyntheticMarket
from sim.mt5 import MT5Emulator, TerminalConfig
from sim.network import Network, NetworkConfig
from sim.venue import Venue, VenueConfig
from sim.wire import Wire

BrokerKind = Literal["sim", "mt5-emulated"]

# A Monday morning in London: the market is open and liquid.
DEFAULT_START = datetime(2024, 1, 8, 7, 0, tzinfo=UTC).timestamp()


@dataclass
class SimulatedWorld:
    env: simpy.Environment
    market: PriceSource
    venue: Venue
    network: Network
    broker: BrokerInterface
    engine: ExecutionEngine[simpy.Process]
    driver: SimPyDriver
    # The emulated MT5 terminal the broker talks to ("mt5-emulated"). The driver carries
    # the wire, so the terminal answers at the instant a request arrives; it sees the
    # wire's faults as a terminal does.
    terminal: MT5Emulator | None = None

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
        broker_kind: BrokerKind = "sim",
        terminal_config: TerminalConfig | None = None,
    ) -> SimulatedWorld:
        """A world whose every random model is seeded from `seed`; `market` may be a
        config for the synthetic market or a ready price source (e.g. a ReplayMarket).

        `broker_kind` "mt5-emulated" puts MT5Broker over the MT5 terminal emulator
        (`terminal_config`) in front of the same venue: the engine then talks to the live
        adapter's code, and the terminal sees the network's faults (disconnects, partitions,
        the history lagging each reconnection)."""
        clock = SimPyClock.starting_at(start)
        prices = _prices(market, seed, start)
        sim_venue = Venue(prices, account, venue, seed)
        sim_network = Network(network or NetworkConfig(), seed, prices.volatility)
        engine_config = config or EngineConfig()
        # The SimPy driver carries every remote call across the wire itself, in virtual
        # time: the broker behind it answers at the instant a request arrives.
        # MT5Broker's order_send blocks through a last look deep inside its own code.
        holds_inside = broker_kind == "mt5-emulated" and sim_venue.holds_orders
        wire = Wire(sim_network, clock, carried_by_driver=True, holds_inside=holds_inside)
        driver = SimPyDriver(wire, engine_config.request_timeout_seconds)
        terminal = None
        if broker_kind == "mt5-emulated":
            terminal = MT5Emulator(sim_venue, wire, terminal_config)
        broker = _broker(sim_venue, wire, terminal)
        engine = ExecutionEngine(
            broker, database, engine_config, driver, instance_id=f"sim-{seed}-0"
        )
        return cls(clock.env, prices, sim_venue, sim_network, broker, engine, driver, terminal)

    def restarted(self, config: EngineConfig | None = None) -> SimulatedWorld:
        """A new engine process on the same store, broker and market, from now: what a
        crash and restart look like. The world's time goes on in a new SimPy environment,
        so the old engine's processes are simply never run again; an MT5 terminal outlives
        the engine, as a real one does, and the new engine connects to it afresh."""
        clock = self.driver.clock
        clock.env = simpy.Environment(initial_time=self.env.now)
        engine_config = config or self.engine.config
        holds_inside = self.terminal is not None and self.venue.holds_orders
        wire = Wire(self.network, clock, carried_by_driver=True, holds_inside=holds_inside)
        driver = SimPyDriver(wire, engine_config.request_timeout_seconds)
        broker = _broker(self.venue, wire, self.terminal)
        database = self.engine.database
        database.release_lease(self.engine.instance_id)  # the old engine is dead
        engine = ExecutionEngine(
            broker, database, engine_config, driver, instance_id=f"{self.engine.instance_id}+"
        )
        return SimulatedWorld(
            clock.env,
            self.market,
            self.venue,
            self.network,
            broker,
            engine,
            driver,
            self.terminal,
        )


def _broker(venue: Venue, wire: Wire, terminal: MT5Emulator | None) -> BrokerInterface:
    """The simulator's broker on the venue, or MT5Broker over the emulated terminal."""
    if terminal is not None:
        # In virtual time a broker call cannot block: reconnecting waits no backoff (the
        # engine's own retries space the attempts out).
        # A call blocked through a last look runs on its own thread (`sim.holding`) and
        # waits for the driver; with the terminal's lock held, the driver's next call would
        # wait for it in turn, forever. The threads never run at once, so the lock guards
        # nothing here. Unlike a real terminal, whose module serialises calls, the emulated
        # one then lets other calls through while an order_send is held.
        lock = contextlib.nullcontext() if wire.holds_inside else None
        config = MT5Config(reconnect_backoff_seconds=0.0)
        broker = MT5Broker(terminal, config, clock=wire.clock, lock=lock)
        broker.start()
        return broker
    return SimulatedBroker(venue, wire)


def _prices(market: MarketConfig | PriceSource | None, seed: int, start: float) -> PriceSource:
    if market is None or isinstance(market, MarketConfig):
        return SyntheticMarket(market or MarketConfig(), seed, start)
    return market


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
    """The live driver against the simulated broker, in real time (paper trading): the
    broker crosses the simulated wire waiting on the wall clock."""
    clock = WallClock(start)
    prices = _prices(market, seed, start)
    sim_venue = Venue(prices, account, venue, seed)
    engine_config = config or EngineConfig()
    wire = Wire(Network(network or NetworkConfig(), seed, prices.volatility), clock)
    broker = SimulatedBroker(sim_venue, wire, engine_config.request_timeout_seconds)
    return ExecutionEngine(broker, database, engine_config, LiveDriver(clock)), sim_venue
