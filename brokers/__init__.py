"""Live implementations of the engine's broker port: MetaTrader 5 and its return-code table.

The simulator's own broker lives with the simulator (`sim.broker`). Importing `MT5Broker`
never imports MetaTrader5: the module is injected (see brokers.mt5).
"""

from brokers.mt5 import MT5Broker
from engine.core.ports import BrokerInterface

__all__ = ["BrokerInterface", "MT5Broker"]
