"""The MT5 terminal emulator: the MetaTrader5 module's functions and constants over the venue."""

from sim.mt5.terminal import (
    AccountInfo,
    MT5Constants,
    MT5Emulator,
    OrderCheckResult,
    OrderSendResult,
    SymbolInfo,
    TerminalConfig,
    TerminalInfo,
    Tick,
    TradeDeal,
    TradeOrder,
    TradePosition,
    TradeRequest,
    VirtualClock,
)

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
