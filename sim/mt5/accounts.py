"""The accounts a terminal can be logged in to, kept apart.

`login()` switches a running terminal to another account under a program that keeps calling
it (mt5-reference.md, behaviour 6; the module's own login example connects "to another
trading account"): from then on every function answers for the new account, and a program
that does not check `account_info().login` trades on it. The venue holds one account's
money, so every login here trades on the same venue and shows the same balance, equity and
margin; what is kept apart is what a terminal knows of each account's orders, deals and
positions (a `Book`, with `Lists` and `Trading` over it): orders sent while logged in to one
account are that account's, and never appear in another's lists or history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from brokers import mt5_codes as codes
from sim.mt5.book import Book
from sim.mt5.config import TerminalConfig
from sim.mt5.lists import Lists
from sim.mt5.session import Session, typed
from sim.mt5.trading import Trading
from sim.venue import Venue
from sim.wire import Wire


@dataclass(slots=True)
class Account:
    """An account the terminal has been logged in to: what its server allows it (tests may
    withdraw a right under a running terminal, as a broker can), and its own lists."""

    login: int
    server: str
    trade_allowed: bool  # False for an investor (read-only) login
    trade_expert: bool  # False: the server forbids algorithmic trading on the account
    book: Book
    lists: Lists
    trading: Trading


class Accounts:
    """Every account the terminal has been logged in to, and the one it is logged in to now."""

    def __init__(
        self,
        venue: Venue,
        wire: Wire,
        config: TerminalConfig,
        session: Session,
        refusal: Callable[[Any], int | None],
    ) -> None:
        self._venue = venue
        self._wire = wire
        self._config = config
        self._session = session
        self._refusal = refusal
        self._known: dict[int, Account] = {}
        self.current = self._account(config.login)

    def authorised(self, login: Any, password: Any, server: Any) -> bool:
        """Whether the credentials open an account this terminal may log in to; if not, the
        session's last error says why."""
        if not typed(login, int):
            self._session.invalid("login")
            return False
        known = self._config.account(login)
        matches = (
            known is not None
            and password == known.password.get_secret_value()
            and server in (None, known.server)
        )
        if not matches:
            self._session.fail(codes.RES_E_AUTH_FAILED, "Terminal: Authorization failed")
        return matches

    def switch(self, login: int) -> None:
        """Log the terminal in to `login`, an account it is authorised for (the emulator
        tells the history's synchronisation: MT5Emulator._log_in)."""
        self.current = self._account(login)

    def _account(self, login: int) -> Account:
        account = self._known.get(login)
        if account is None:
            rights = self._config.account(login)
            assert rights is not None  # authorised
            book = Book(self._venue, self._config)
            clock = self._wire.clock.now
            account = Account(
                login,
                rights.server,
                rights.trade_allowed,
                rights.trade_expert,
                book,
                Lists(self._venue, clock, self._config, self._session, book),
                Trading(self._venue, self._wire, self._config, self._session, book, self._refusal),
            )
            self._known[login] = account
        return account
