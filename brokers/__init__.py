"""Implementations of the engine's broker port."""

from brokers.sim import SimulatedBroker
from engine.core.ports import BrokerInterface

__all__ = ["BrokerInterface", "SimulatedBroker"]
