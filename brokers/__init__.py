"""Implementations of the engine's broker port.

The brokers load on first use: the simulator shares MT5's code table with this package
(`brokers.mt5_codes`), so importing the package must not import the simulator back, and
importing `MT5Broker` never imports MetaTrader5 (the module is injected, see brokers.mt5).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.core.ports import BrokerInterface

if TYPE_CHECKING:
    from brokers.mt5 import MT5Broker
    from brokers.sim import SimulatedBroker

__all__ = ["BrokerInterface", "MT5Broker", "SimulatedBroker"]


def __getattr__(name: str) -> Any:
    if name == "SimulatedBroker":
        from brokers.sim import SimulatedBroker

        return SimulatedBroker
    if name == "MT5Broker":
        from brokers.mt5 import MT5Broker

        return MT5Broker
    raise AttributeError(f"module 'brokers' has no attribute {name!r}")
