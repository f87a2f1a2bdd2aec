"""The terminal behind the broker: every call into the module, under one lock; opening it and
finding it again after a restart; whether it may trade now, on the account it should.

What a running terminal does under a program (mt5-reference.md, real-server behaviours 3, 6,
7): it can restart, and then every call fails with (-10004, 'No IPC connection') until
`initialize` succeeds again; `login()` can switch it to another account; and four switches
must all allow trading (the Algo Trading button, the terminal's API switch, the account's
trading and expert permissions). So before every order the account and the switches are
checked, and a lost IPC connection is re-initialised with backoff — without credentials,
which are never kept: the terminal reconnects to the account it was on, and the account
check refuses to trade if that is not ours.
"""

from __future__ import annotations

import logging
import threading
from contextlib import AbstractContextManager
from typing import Any

from brokers import mt5_codes as codes
from brokers.mt5.calls import Constants, Secrets, TerminalError, plain
from brokers.mt5.config import MT5Config
from brokers.mt5.loading import MT5Credentials, TerminalStartError
from engine.clock import Clock
from engine.core.ports import BrokerRejected, RequestNotSent
from engine.schemas import ExecutionRejectionReason

log = logging.getLogger(__name__)
R = ExecutionRejectionReason

# Calls that change nothing at the trade server: after a reconnection they are made again.
_READS = frozenset(
    {
        "terminal_info", "account_info", "symbol_info", "symbol_info_tick", "symbol_select",
        "order_calc_margin", "order_check", "orders_get", "positions_get",
        "history_orders_get", "history_deals_get", "version", "copy_ticks_range",
    }
)  # fmt: skip
_NO_IPC = (codes.RES_E_INTERNAL_FAIL_CONNECT, codes.RES_E_INTERNAL_FAIL_INIT)


def raise_if_unreachable(error: TerminalError, function: str) -> None:
    if codes.is_ipc_failure(error.code):
        raise RequestNotSent(f"terminal could not be asked ({function}): {error}")


class Terminal:
    def __init__(
        self,
        mt5: Any,
        config: MT5Config,
        clock: Clock,
        lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        self.config = config
        self._mt5 = mt5
        self._clock = clock
        self._lock = lock if lock is not None else threading.Lock()
        with self._lock:
            self.k = Constants.read(mt5)
        self._path: tuple[str, ...] = ()
        # The account this system trades on: the credentials' login, or the one the terminal
        # was on when it opened.
        self.login: int | None = None
        # When this broker first saw the terminal connected, since it last saw it not:
        # its history is complete only some time after (MT5Config.history_sync_seconds).
        self._connected_at: float | None = None
        self._seen_connected_at = float("-inf")  # the last time it was seen connected
        # Our symbols (EURUSD) by the broker's names for them (EURUSD.m, EURUSDpro).
        self._ours = {theirs: ours for ours, theirs in config.symbols.items()}

    # -- opening, closing, finding it again ---------------------------------------------------

    def start(self, credentials: MT5Credentials | None = None) -> None:
        """Open the terminal, then log in when credentials are given (else the terminal's
        current account is used)."""
        secrets = Secrets(credentials)
        self._path = (credentials.path,) if credentials and credentials.path else ()
        try:
            _, error = self._call_once("initialize", *self._path, timeout=self.config.timeout_ms)
            if error is not None:
                raise TerminalStartError(f"cannot open the MT5 terminal: {secrets.redact(error)}")
            if credentials is not None:
                _, error = self._call_once(
                    "login",
                    credentials.login,
                    password=credentials.password.get_secret_value(),
                    server=credentials.server,
                    timeout=self.config.timeout_ms,
                )
                if error is not None:
                    raise TerminalStartError(
                        f"the terminal refused the login: {secrets.redact(error)}"
                    )
        except TerminalStartError:
            raise
        except Exception as failure:  # a bridge may echo the call, credentials included
            raise TerminalStartError(
                f"opening the terminal raised {type(failure).__name__}"
            ) from None
        account, _ = self.call("account_info")
        self.login = (
            credentials.login
            if credentials is not None
            else (int(account["login"]) if account is not None else None)
        )
        self._just_connected()
        version, _ = self.call("version")
        log.info("MT5 terminal open, version %s", version)
        self._check_symbol_map()

    def close(self) -> None:
        with self._lock:
            self._mt5.shutdown()

    def _reconnect(self) -> bool:
        """Initialise the IPC connection again, with backoff; whether it came back."""
        self._connected_at = None  # whatever it shows now, its history syncs anew
        for attempt in range(1, self.config.reconnect_attempts + 1):
            _, error = self._call_once("initialize", *self._path, timeout=self.config.timeout_ms)
            if error is None:
                log.warning("MT5 terminal reconnected (attempt %d)", attempt)
                self._just_connected()
                return True
            log.warning("MT5 terminal not back (attempt %d): %s", attempt, error)
            if attempt < self.config.reconnect_attempts:
                self._clock.sleep(self.config.reconnect_backoff_seconds * attempt)
        return False

    # -- every call into the module --------------------------------------------------------

    def call(self, function: str, *args: Any, **kwargs: Any) -> tuple[Any, TerminalError | None]:
        """One call: its plain result, or the terminal's error. A call that found no IPC
        connection has the terminal initialised again; a read is then made once more (a
        trade request is not: the engine decides what to resend)."""
        value, error = self._call_once(function, *args, **kwargs)
        if error is not None and codes.is_ipc_failure(error.code):
            self._connected_at = None  # the link broke: the history may lag when it is back
        if error is not None and error.code in _NO_IPC and self.login is not None:
            reconnected = self._reconnect()
            if reconnected and function in _READS:
                return self._call_once(function, *args, **kwargs)
        return value, error

    def _call_once(
        self, function: str, *args: Any, **kwargs: Any
    ) -> tuple[Any, TerminalError | None]:
        """One call under the lock: its plain result, or the terminal's error for a None
        (or False) answer, read before any other thread's call can overwrite it."""
        with self._lock:
            try:
                value = getattr(self._mt5, function)(*args, **kwargs)
                if value is None or value is False:
                    code, description = self._mt5.last_error()
                    return None, TerminalError(int(code), str(description))
                return plain(value), None
            except ConnectionRefusedError:
                return None, TerminalError(
                    codes.RES_E_INTERNAL_FAIL_CONNECT, "bridge refused the connection"
                )
            except (OSError, EOFError) as broken:  # a bridge's transport failing mid-call
                return None, TerminalError(
                    codes.RES_E_INTERNAL_FAIL_RECEIVE, f"bridge failed: {type(broken).__name__}"
                )

    def query(self, function: str, *args: Any, **kwargs: Any) -> tuple[dict[str, Any], ...]:
        """A tuple of records; a terminal that cannot be asked raises RequestNotSent."""
        records, error = self.call(function, *args, **kwargs)
        if error is None:
            return records
        if error.code == codes.RES_S_OK:  # some builds answer an empty history with None
            return ()
        raise RequestNotSent(f"{function} failed: {error}")

    # -- may it trade, and what does it know ----------------------------------------------------

    def _account(self) -> dict[str, Any]:
        account, error = self.call("account_info")
        if error is not None:
            raise_if_unreachable(error, "account_info")
            raise RequestNotSent(f"account_info failed: {error}")
        return account

    def other_account(self, account: dict[str, Any] | None = None) -> int | None:
        """The account the terminal is on, if it is not ours (login() switched it)."""
        login = int((account or self._account())["login"])
        return login if self.login is not None and login != self.login else None

    def ensure_may_trade(self) -> None:
        """Refuse, before anything is sent, to trade on another account than ours or while a
        switch forbids trading (the server would answer 10027, 10026 or 10017)."""
        account = self._account()
        other = self.other_account(account)
        if other is not None:
            log.error(
                "the MT5 terminal is logged in to account %s, not %s: refusing to trade",
                other,
                self.login,
            )
            raise BrokerRejected(
                R.BROKER_REJECTED,
                f"the terminal is logged in to account {other}, not {self.login}: "
                "refusing to trade on another account",
            )
        forbidden = self._switches_off(account)
        if forbidden:
            raise BrokerRejected(R.BROKER_REJECTED, forbidden, codes.CLIENT_DISABLES_AT)

    def may_trade(self) -> bool:
        """Connected to the trade server, on our account, with every switch on."""
        terminal, error = self.call("terminal_info")
        if error is not None or not terminal["connected"]:
            return False
        try:
            account = self._account()
        except RequestNotSent:
            return False
        return self.other_account(account) is None and not self._switches_off(account, terminal)

    def _switches_off(self, account: dict[str, Any], terminal: dict[str, Any] | None = None) -> str:
        """Which of the four switches forbid trading now ("" when none does)."""
        if terminal is None:
            terminal, error = self.call("terminal_info")
            if error is not None:
                raise_if_unreachable(error, "terminal_info")
                raise RequestNotSent(f"terminal_info failed: {error}")
        switches = {
            "AutoTrading is disabled in the terminal (its Algo Trading button)": not terminal[
                "trade_allowed"
            ],
            "the terminal's trade API is disabled": bool(terminal["tradeapi_disabled"]),
            "the account may not trade": not account["trade_allowed"],
            "the account may not trade by expert": not account["trade_expert"],
        }
        return "; ".join(why for why, forbids in switches.items() if forbids)

    def _just_connected(self) -> None:
        """Initialised just now: its history syncs from now."""
        self._connected_at = self._seen_connected_at = self._clock.now()

    def connected_since(self) -> float:
        """Since when the terminal has been connected to its trade server, as far as this
        broker has seen; not connected raises RequestNotSent (nothing can be proven)."""
        info, error = self.call("terminal_info")
        if error is not None or not info["connected"]:
            self._connected_at = None
            why = error if error is not None else "not connected to the trade server"
            raise RequestNotSent(f"the terminal cannot prove an order absent: {why}")
        other = self.other_account()
        if other is not None:
            raise RequestNotSent(
                f"the terminal is on account {other}, not ours: it cannot prove an order absent"
            )
        now = self._clock.now()
        # Unseen for longer than a sync takes, the terminal may have lost its link and come
        # back in between: count its sync from now.
        if self._connected_at is None or now - self._seen_connected_at > (
            self.config.history_sync_seconds
        ):
            self._connected_at = now
        self._seen_connected_at = now
        return self._connected_at

    def broker_symbol(self, symbol: str) -> str:
        return self.config.symbols.get(symbol, symbol)

    def engine_symbol(self, name: str) -> str:
        return self._ours.get(name, name)

    def _check_symbol_map(self) -> None:
        """Every symbol the configuration maps must be one the broker lists: a typo in the
        map would otherwise show up as orders refused one by one."""
        missing = [
            f"{ours} -> {theirs}"
            for ours, theirs in self.config.symbols.items()
            if self.call("symbol_info", theirs)[0] is None
        ]
        if missing:
            raise TerminalStartError(
                f"the broker does not list the mapped symbols {', '.join(missing)}"
            )
