"""`MT5Emulator`: the MetaTrader5 module's functions over a terminal logged in to the venue.

The session (initialize, login, shutdown, version, last_error), terminal and account info,
the terminal's switches and the symbols are answered here; the trade functions and the
terminal's lists are the `Trading` and `Lists` of the account logged in to (`accounts`),
which share the emulator's `Session`.
"""

from __future__ import annotations

from typing import Any

from brokers import mt5_codes as codes
from sim.account import MarginMode
from sim.market import SymbolConfig
from sim.mt5.accounts import Account, Accounts
from sim.mt5.book import Book
from sim.mt5.config import TerminalConfig
from sim.mt5.constants import K, MT5Constants, execution
from sim.mt5.lists import history_seconds
from sim.mt5.records import AccountInfo, SymbolInfo, TerminalInfo, Tick
from sim.mt5.session import Session, typed
from sim.mt5.sync import HistorySync
from sim.mt5.ticks import COPY_TICKS, TickHistory
from sim.network import FaultKind
from sim.venue import Venue
from sim.wire import Wire

# SymbolInfo bitmasks (mt5-reference.md): what the emulated server offers. expiration_mode
# GTC 1 | SPECIFIED 4: a pending order lives till cancelled or till a time (DAY and
# SPECIFIED_DAY are not modelled). order_mode MARKET 1 | LIMIT 2, with SL 16 | TP 32 where
# the symbol takes stops on an order; no STOP, STOP_LIMIT or CLOSE_BY (not modelled: a
# request for one is refused as a server that forbids them refuses it, 10035).
_EXPIRATION_MODE = 1 | 4
_ORDER_MODE_MARKET, _ORDER_MODE_LIMIT, _ORDER_MODE_SL, _ORDER_MODE_TP = 1, 2, 16, 32


def _order_mode(config: SymbolConfig) -> int:
    stops = _ORDER_MODE_SL | _ORDER_MODE_TP if config.stops_on_order else 0
    return _ORDER_MODE_MARKET | _ORDER_MODE_LIMIT | stops


class MT5Emulator(MT5Constants):
    """The MetaTrader5 module as a program sees it, over the simulated venue; its constants
    are the class's (mt5-reference.md)."""

    def __init__(
        self,
        venue: Venue,
        wire: Wire,
        config: TerminalConfig | None = None,
    ) -> None:
        """`wire`: between the terminal and the trade server — its clock is the terminal's
        time (POSIX seconds, UTC), its network the latency and faults a request meets."""
        self.venue = venue
        self.wire = wire
        self.clock = wire.clock.now
        self.config = config or TerminalConfig()
        # The terminal's switches, as the config set them: tests may flip them.
        self.algo_trading = self.config.algo_trading  # the Algo Trading button
        self.tradeapi_disabled = self.config.tradeapi_disabled  # no trading from Python
        # Symbols out of the Market Watch: no quotes for them until symbol_select(s, True).
        self.hidden = set(self.config.hidden_symbols)
        self._session = Session(wire)
        self._accounts = Accounts(venue, wire, self.config, self._session, self.refusal)
        self._running = False  # the terminal process: initialize() starts it
        self._sync = HistorySync(venue, wire, self.config)
        self._ticks = TickHistory(venue.market, self.config, self.clock())

    @property
    def account(self) -> Account:
        """The account the terminal is logged in to now."""
        return self._accounts.current

    @property
    def _book(self) -> Book:
        return self.account.book

    # -- the module's trade and list functions: the current account's ------------------------
    # Methods, not bindings: a function the program took from the module before a login()
    # answers for the account logged in to when it is called, as the module's functions do.

    def order_check(self, request: dict[str, Any]) -> Any:
        return self.account.trading.order_check(request)

    def order_send(self, request: dict[str, Any]) -> Any:
        return self.account.trading.order_send(request)

    def orders_get(self, *args: Any, **kwargs: Any) -> Any:
        return self.account.lists.orders_get(*args, **kwargs)

    def positions_get(self, *args: Any, **kwargs: Any) -> Any:
        return self.account.lists.positions_get(*args, **kwargs)

    def history_orders_get(self, *args: Any, **kwargs: Any) -> Any:
        account = self.account
        records = account.lists.history_orders_get(*args, **kwargs)
        return self._sync.orders(records, account.login, account.book, self.clock())

    def history_deals_get(self, *args: Any, **kwargs: Any) -> Any:
        account = self.account
        records = account.lists.history_deals_get(*args, **kwargs)
        return self._sync.deals(records, account.login, self.clock())

    def refusal(self, request: Any) -> int | None:
        """Why the terminal or the account forbids a trade request, if they do: every one of
        the four switches must allow trading (MQL5 reference, "Trade Permission"; the
        terminal knows the account's rights: it shows them in account_info()), and a symbol
        out of the Market Watch is refused or selected first (`hidden_symbol_orders`)."""
        config = self.config
        if not self.algo_trading:
            return codes.CLIENT_DISABLES_AT
        if self.tradeapi_disabled:
            return config.tradeapi_disabled_code
        if not self.account.trade_allowed:
            return config.trade_disabled_code
        if not self.account.trade_expert:
            return config.expert_disabled_code
        symbol = request.symbol
        if symbol in self.hidden and self.venue.market.symbol_config(symbol) is not None:
            if config.hidden_symbol_orders == "refuse":
                return codes.INVALID
            self.hidden.discard(symbol)  # the terminal selects the symbol to trade it
        return None

    def last_error(self) -> tuple[int, str]:
        return self._session.error

    # -- session ---------------------------------------------------------------------------

    def initialize(
        self,
        path: str | None = None,
        *,
        login: int | None = None,
        password: str | None = None,
        server: str | None = None,
        timeout: int = 60_000,
        portable: bool = False,
    ) -> bool:
        if self.wire.fault() is FaultKind.DISCONNECT:
            self._session.fail(codes.RES_E_INTERNAL_FAIL_INIT, "IPC initialize failed")
            return False
        if not typed(timeout, int) or timeout <= 0:
            self._session.invalid("timeout")
            return False
        if path is not None and not typed(path, str):
            self._session.invalid("path")
            return False
        if not typed(portable, bool):
            self._session.invalid("portable")
            return False
        if login is not None:
            if not self._accounts.authorised(login, password, server):
                return False
            self._log_in(login)
        if not self._running:  # initialize() launches a terminal that is not running
            self._running = True
            self._sync.start(self.account.login, self.clock())
        self._session.initialized = True
        self._session.ipc_timeout = timeout / 1000.0
        return self._session.ok(True)

    def login(
        self,
        login: int,
        password: str | None = None,
        server: str | None = None,
        timeout: int = 60_000,
    ) -> bool:
        if self._session.ipc_down():
            return False
        if not typed(timeout, int) or timeout <= 0:
            self._session.invalid("timeout")
            return False
        if not self._accounts.authorised(login, password, server):
            return False
        self._log_in(login)  # perhaps another account, under a running program
        return self._session.ok(True)

    def _log_in(self, login: int) -> None:
        """Log in to `login`: a running terminal leaves its account (saving its history) and
        connects on the other, whose history it then synchronises (sim.mt5.sync)."""
        if login == self.account.login:
            return
        now = self.clock()
        self._sync.stop(now)
        self._accounts.switch(login)
        if self._running:
            self._sync.start(login, now)

    def shutdown(self) -> None:
        """The program lets go of the terminal, which keeps running, connected."""
        self._session.initialized = False
        self._session.ok(None)

    def restart_terminal(self) -> None:
        """The terminal process goes away (an update, a crash, its user): not a function of
        the module, a test's hand on the terminal. The program's IPC is gone, so every call
        fails with (-10004, 'No IPC connection') until initialize() succeeds again; that
        starts the terminal, which connects and synchronises its history (sim.mt5.sync).
        It comes back on the same account, with its Market Watch and its switches, as a
        terminal restarts with its saved settings (mt5-reference.md, behaviour 6)."""
        self._session.initialized = False
        self._running = False
        self._sync.stop(self.clock())

    def version(self) -> tuple[int, int, str] | None:
        if self._session.ipc_down():
            return None
        return self._session.ok((500, self.config.build, "12 Dec 2024"))

    def terminal_info(self) -> Any:
        if self._session.ipc_down():
            return None
        fault = self.wire.fault()
        return self._session.ok(
            TerminalInfo(
                community_account=False,
                community_connection=False,
                connected=fault is None,
                dlls_allowed=False,
                trade_allowed=self.algo_trading,
                tradeapi_disabled=self.tradeapi_disabled,
                email_enabled=False,
                ftp_enabled=False,
                notifications_enabled=False,
                mqid=False,
                build=self.config.build,
                maxbars=100_000,
                codepage=0,
                ping_last=0,
                community_balance=0.0,
                retransmission=0.0,
                company=self.config.company,
                name="MetaTrader 5 (emulated)",
                language="English",
                path="",
                data_path="",
                commondata_path="",
            )
        )

    def account_info(self) -> Any:
        if self._session.ipc_down():
            return None
        state = self.venue.account_state(self.clock())
        account = self.venue.account.config
        hedging = account.margin_mode is MarginMode.HEDGING
        return self._session.ok(
            AccountInfo(
                login=self.account.login,
                trade_mode=K.ACCOUNT_TRADE_MODE_DEMO,
                leverage=state.leverage,
                limit_orders=200,
                margin_so_mode=0,
                trade_allowed=self.account.trade_allowed,
                trade_expert=self.account.trade_expert,
                margin_mode=K.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING
                if hedging
                else K.ACCOUNT_MARGIN_MODE_RETAIL_NETTING,
                currency_digits=2,
                fifo_close=False,
                balance=state.balance,
                credit=0.0,
                profit=state.equity - state.balance,
                equity=state.equity,
                margin=state.margin_used,
                margin_free=state.free_margin,
                margin_level=state.equity / state.margin_used * 100 if state.margin_used else 0.0,
                margin_so_call=50.0,
                margin_so_so=30.0,
                margin_initial=0.0,
                margin_maintenance=0.0,
                assets=0.0,
                liabilities=0.0,
                commission_blocked=0.0,
                name="Arbitrex emulator",
                server=self.account.server,
                currency=state.currency,
                company=self.config.company,
            )
        )

    # -- symbols ---------------------------------------------------------------------------

    def _symbol(self, symbol: Any) -> SymbolConfig | None:
        """The symbol's configuration, or None with last_error set."""
        if not typed(symbol, str):
            self._session.invalid("symbol")
            return None
        venue_symbol = self.config.venue_symbol(symbol)
        config = self.venue.market.symbol_config(venue_symbol) if venue_symbol else None
        if config is None:
            self._session.fail(codes.RES_E_NOT_FOUND, "Terminal: Not found")
        return config

    def symbol_select(self, symbol: str, enable: bool = True) -> bool:
        """Put a symbol in the Market Watch, or take it out: not while the account holds a
        position in it (MQL5 reference, SymbolSelect)."""
        config = None if self._session.ipc_down() else self._symbol(symbol)
        if config is None:
            return False
        if not typed(enable, bool):
            self._session.invalid("enable")
            return False
        if enable:
            self.hidden.discard(config.symbol)
        elif self._holds(config.symbol):
            self._session.fail(codes.RES_E_FAIL, "Terminal: Call failed")  # unconfirmed text
            return False
        else:
            self.hidden.add(config.symbol)
        return self._session.ok(True)

    def _holds(self, symbol: str) -> bool:
        self._book.catch_up(self.clock())
        return any(p.symbol == symbol for p in self._book.positions.values())

    def symbol_info(self, symbol: str) -> Any:
        if self._session.ipc_down():
            return None
        config = self._symbol(symbol)
        if config is None:
            return None
        now = self.clock()
        listed, symbol = symbol, config.symbol  # the terminal's name, and the venue's
        # The terminal receives no quotes for a symbol out of the Market Watch: it answers
        # for it, with zero prices (unconfirmed: the stricter reading of stale ones).
        # The terminal's price feed: late by the broker's feed delay, if it has one.
        quote = self.venue.feed_quote(symbol, now) if symbol not in self.hidden else None
        bid, ask = (quote.bid, quote.ask) if quote else (0.0, 0.0)
        point = config.point
        rule = execution(config, self.config.execution_modes.get(symbol))
        return self._session.ok(
            SymbolInfo(
                name=listed,
                description=f"{symbol[:3]} vs {symbol[3:]}",
                path=f"Forex\\{listed}",
                visible=symbol not in self.hidden,
                select=symbol not in self.hidden,
                digits=config.digits,
                point=point,
                spread=round((ask - bid) / point) if quote else 0,
                spread_float=True,
                trade_contract_size=float(config.contract_size),
                trade_tick_size=point,
                trade_tick_value=self._tick_value(config, now),
                volume_min=config.volume_min,
                volume_max=config.volume_max,
                volume_step=config.volume_step,
                volume_limit=0.0,
                filling_mode=rule.filling_mode,
                expiration_mode=_EXPIRATION_MODE,
                order_mode=_order_mode(config),
                trade_mode=int(config.trade_mode),
                trade_exemode=rule.exemode,
                trade_stops_level=config.stops_level_points,
                trade_freeze_level=config.freeze_level_points,
                currency_base=symbol[:3],
                currency_profit=symbol[3:],
                currency_margin=symbol[:3],
                bid=bid,
                ask=ask,
                time=self.config.server_seconds(quote.time) if quote else 0,
                session_deals=0,
            )
        )

    def _tick_value(self, config: SymbolConfig, t: float) -> float:
        """One point on one lot, in the account currency."""
        try:
            return self.venue.account.to_account_currency(
                config.point * config.contract_size, config.symbol[3:], t
            )
        except KeyError:  # no symbol to convert through: as a terminal without the rate
            return 0.0

    def symbol_info_tick(self, symbol: str) -> Any:
        """None for a symbol out of the Market Watch until it is selected (the module's
        behaviour, pymt5adapter issue #9); the last_error is unconfirmed."""
        config = None if self._session.ipc_down() else self._symbol(symbol)
        if config is None:
            return None
        hidden = config.symbol in self.hidden
        quote = None if hidden else self.venue.feed_quote(config.symbol, self.clock())
        if quote is None:
            self._session.fail(codes.RES_E_NOT_FOUND, "Terminal: Not found")
            return None
        return self._session.ok(
            Tick(
                time=self.config.server_seconds(quote.time),
                bid=quote.bid,
                ask=quote.ask,
                last=0.0,
                volume=0,
                time_msc=self.config.server_msc(quote.time),
                flags=6,  # TICK_FLAG_BID | TICK_FLAG_ASK
                volume_real=0.0,
            )
        )

    def copy_ticks_range(self, *args: Any, **kwargs: Any) -> Any:
        """copy_ticks_range(symbol, date_from, date_to, flags), all four positional, as the
        module takes them (sim.mt5.ticks); keywords are refused as history windows are."""
        if self._session.ipc_down():
            return None
        if kwargs or len(args) != 4:
            self._session.fail(codes.RES_E_INVALID_PARAMS, "Invalid parameters")
            return None
        symbol, date_from, date_to, flags = args
        config = self._symbol(symbol)
        if config is None:
            return None
        # Out of the Market Watch, a symbol has no ticks until selected (unconfirmed for
        # history: the stricter reading, as symbol_info_tick answers).
        if config.symbol in self.hidden:
            self._session.fail(codes.RES_E_NOT_FOUND, "Terminal: Not found")
            return None
        start, end = history_seconds(date_from), history_seconds(date_to)
        if start is None or end is None:
            self._session.invalid("date_from" if start is None else "date_to")
            return None
        if not typed(flags, int) or flags not in COPY_TICKS:
            self._session.invalid("flags")
            return None
        ticks = self._ticks.copy_range(config.symbol, start, end, flags, self.clock())
        return self._session.ok(ticks)

    def order_calc_margin(self, action: int, symbol: str, volume: float, price: float) -> Any:
        if self._session.ipc_down():
            return None
        if not typed(action, int) or action not in (K.ORDER_TYPE_BUY, K.ORDER_TYPE_SELL):
            self._session.invalid("action")
            return None
        for name, value in (("volume", volume), ("price", price)):
            if not typed(value, float):
                self._session.invalid(name)
                return None
        config = self._symbol(symbol)
        if config is None:
            return None
        units = round(volume * config.contract_size)
        return self._session.ok(self.venue.margin_required(config.symbol, units, self.clock()))
