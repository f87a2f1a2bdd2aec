"""An MT5 terminal emulator: the MetaTrader5 module's functions and constants over the venue.

`MT5Emulator(venue, wire)` behaves as the module does against a terminal logged in
to the simulated broker: the same functions, constants and named-tuple records, None
answers explained by `last_error()`, and trade server return codes from the venue. It is
what the live broker (`brokers.mt5.MT5Broker`) is tested against, so it is strict: it
refuses whatever a terminal would refuse (a request dict with an unknown field or a wrong
type, a comment a broker would not store, a filling type the symbol's bitmask does not
allow, any of the four trade permissions withdrawn, a symbol out of the Market Watch), and
where the real terminal's behaviour is unconfirmed it takes the stricter reading and makes it
configurable. Its server clock may move with daylight saving (`TerminalConfig`).

How the simulated network's faults look through the module:
- a lost request or reply, or a trade server slower than the IPC timeout: `order_send`
  returns None with (-10005, 'IPC timeout'); after a lost reply the order IS in the ledger;
- REFUSE (trade server down): retcode 10031, nothing executed, `terminal_info().connected`
  False; HANG and DROP_REPLIES windows also leave the terminal disconnected, and an order
  executed while replies were dropped reaches the terminal's lists only when the window
  ends — so during a partition the terminal's history cannot prove an order absent;
- DISCONNECT (terminal offline): every call returns None with (-10004, 'No IPC connection');
  so does every call after `restart_terminal()`, until `initialize()` succeeds again;
- with `history_sync_seconds` set, what the server did while the terminal was away (a fault
  window, a restart, another account logged in to) reaches its history only that long after
  it connects again (`sync`): connected again is no proof the history is complete.
Market orders (opening a position, or closing one the request names, with stops or
without), pending limit orders (good till cancelled or till a time) and their removal, and
changes of a position's stops (TRADE_ACTION_SLTP) are modelled; the stops and limits the
venue triggers show as the server's own orders and deals (ORDER_REASON_SL/TP). Stop and
stop-limit orders, CLOSE_BY and MODIFY are not (`trading` says how they are answered).
Each symbol trades
in its execution mode (`TerminalConfig.execution_modes`): Request and Instant execution
honour the request's price and deviation or requote, Market and Exchange execution set the
price; the filling types allowed follow the mode. Positions keep MT5's identifier apart
from their ticket (a netting reversal or a swap re-open changes only the ticket).
The emulator reads time only from its wire's clock and crosses to the trade server only
through the wire (`sim.wire`: one crossing for every driver and this terminal; a wire with
no network answers at once).

One module per concern:
- `terminal`: `MT5Emulator` — session, terminal and account info, switches, symbols; the rest
  delegated to the account logged in to;
- `accounts`: the accounts `login()` may switch to, each with its own book, lists, trading;
- `session`: the call protocol (IPC state, the last error, strict argument types);
- `trading`: order_check and order_send, what the terminal refuses, its crossing of the wire;
- `server`: the trade server's side of a deal, a pending order, a stop change, a removal;
- `book`: what the terminal knows of orders (tags), its positions and deals, kept current;
  the server's own orders (stops that triggered); the swap re-open of positions;
- `lists`: orders_get, positions_get, history_orders_get, history_deals_get, from the book;
- `sync`: the history that lags each (re)connection;
- `records`, `constants`, `config`: the named tuples and request fields, the module's
  constants and each symbol's execution (mode, filling types, bitmask), `TerminalConfig`.
"""

from sim.mt5.config import AccountLogin, TerminalConfig
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
    "AccountLogin",
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
]
