"""The MT5 terminal emulator: the MetaTrader5 module's functions and constants over the venue."""

from sim.mt5.clock import VirtualClock
from sim.mt5.config import TerminalConfig
from sim.mt5.constants import MT5Constants
from sim.mt5.records import (
    AccountInfo,
    OrderCheckResult,
    OrderSendResult,
    SymbolInfo,
    TerminalInfo,
    Tick,
    TradeDeal,
    TradeOrder,
    TradePosition,
    TradeRequest,
)
from sim.mt5.terminal import MT5Emulator

__all__ = [
    "AccountInfo",
    "MT5Constants",
    "MT5Emulator",
    "OrderCheckResult",
    "OrderSendResult",
    "SymbolInfo",
    "TerminalConfig",
    "TerminalInfo",
    "Tick",
    "TradeDeal",
    "TradeOrder",
    "TradePosition",
    "TradeRequest",
    "VirtualClock",
]
