"""The live MetaTrader 5 broker, over an injected MetaTrader5-like module.

- `broker`: `MT5Broker`, the broker port: orders, reconciliation, reading orders back;
- `requests`: the request dicts it sends (deals, pending orders, stop changes, removals);
- `positions`: open positions, their stops (TRADE_ACTION_SLTP), and the exits of positions
  our orders opened;
- `calls`: how every call into the module is read (plain records, errors, constants);
- `config`: `MT5Config`, how this system's orders look and how the terminal is read;
- `loading`: the module loaded lazily (MetaTrader5 or the Linux bridge) and the credentials.
"""

from brokers.mt5.broker import MT5Broker
from brokers.mt5.config import MT5Config
from brokers.mt5.loading import (
    MT5Credentials,
    MT5Unavailable,
    TerminalStartError,
    load_mt5_module,
)
from brokers.mt5.requests import SYMBOL_FILLING_FOK, SYMBOL_FILLING_IOC

__all__ = [
    "SYMBOL_FILLING_FOK",
    "SYMBOL_FILLING_IOC",
    "MT5Broker",
    "MT5Config",
    "MT5Credentials",
    "MT5Unavailable",
    "TerminalStartError",
    "load_mt5_module",
]
