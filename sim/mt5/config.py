"""What an emulated terminal is set up with: its account, its server, and the rules of the
server it is taken to be (comments, clock, execution modes)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

from brokers import mt5_codes as codes
from brokers.mt5.server_clock import ServerTime, checked_zone


def _refusal(code: int) -> int:
    """A trade server return code that refuses a request (not one that executes it)."""
    if code not in codes.DESCRIPTION or code in (codes.DONE, codes.DONE_PARTIAL, codes.PLACED):
        raise ValueError(f"{code} is not a TRADE_RETCODE that refuses a request")
    return code


# SymbolInfo.trade_exemode, by name (SYMBOL_TRADE_EXECUTION_REQUEST ... _EXCHANGE).
ExecutionMode = Literal["request", "instant", "market", "exchange"]
Refusal = Annotated[int, AfterValidator(_refusal)]
Seconds = Annotated[float, Field(ge=0.0)]


class AccountLogin(BaseModel):
    """An account `login()` may switch the terminal to, and what its server allows it."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    login: Annotated[int, Field(gt=0)]
    password: SecretStr
    server: str
    trade_allowed: bool = True  # False for an investor (read-only) login
    trade_expert: bool = True  # False: the server forbids algorithmic trading on it


class TerminalConfig(BaseModel):
    """The terminal and the account it is logged in to."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    login: Annotated[int, Field(gt=0)] = 5_100_001
    password: SecretStr = SecretStr("emulator")
    server: str = "Arbitrex-Sim"
    company: str = "Arbitrex simulated broker"
    build: Annotated[int, Field(gt=0)] = 4755
    # Accounts other than `login` that login() (or initialize(login=...)) may switch to.
    other_accounts: tuple[AccountLogin, ...] = ()

    # -- permissions (MQL5 reference, "Trade Permission"; mt5-reference.md, behaviour 7) -------
    # The terminal's Algo Trading button; off, every trade request is answered 10027.
    algo_trading: bool = True
    # The terminal's option that disables trading through the Python API.
    tradeapi_disabled: bool = False
    # account_info().trade_allowed and .trade_expert: what the server allows `login`.
    trade_allowed: bool = True  # False for an investor (read-only) login
    trade_expert: bool = True  # False: the server forbids algorithmic trading on it
    # What a trade request is answered when one of them forbids it. The button's 10027 is
    # what practitioners report (mt5linux issue #51). The Python API option's answer is
    # undocumented: 10027, "autotrading disabled by client", names the same client-side
    # switch. For the account: 10017 "trade disabled" (no code is documented for an investor
    # login), and 10026 "autotrading disabled by server" for a server that forbids
    # algorithmic trading on the account, as the code's own description says.
    tradeapi_disabled_code: Refusal = codes.CLIENT_DISABLES_AT
    trade_disabled_code: Refusal = codes.TRADE_DISABLED
    expert_disabled_code: Refusal = codes.SERVER_DISABLES_AT

    # -- symbols: execution modes, the Market Watch --------------------------------------------
    # Each named symbol's execution mode, and with it the filling types its market orders
    # may carry (`sim.mt5.constants.execution`). A symbol not named keeps the emulator's
    # first reading: instant execution's requotes with the venue's fill policies.
    execution_modes: dict[str, ExecutionMode] = Field(default_factory=dict)
    # Symbols the server offers that are not in the Market Watch when the terminal starts.
    hidden_symbols: frozenset[str] = frozenset()
    # An order for a hidden symbol: "select" adds the symbol to the Market Watch and trades
    # it, "refuse" answers 10013 as for a symbol the terminal does not offer. No source says
    # which a terminal does (the module's own order_send example selects the symbol first):
    # the stricter reading by default.
    hidden_symbol_orders: Literal["select", "refuse"] = "refuse"

    # Many brokers list their symbols under names of their own (EURUSD.m, EURUSDpro): every
    # symbol of the venue is shown, and must be asked for, as its name plus this suffix.
    symbol_suffix: Annotated[str, Field(max_length=8)] = ""

    # -- comments ------------------------------------------------------------------------------
    # The comments the server takes (unconfirmed: reports say 31, 29, 27 characters).
    comment_max_length: Annotated[int, Field(ge=0, le=64)] = 26
    # How the server rewrites a comment it stores: cut to a length, then a suffix added.
    stored_comment_length: Annotated[int | None, Field(ge=0)] = None
    stored_comment_suffix: str = ""

    # -- history synchronisation (sim.mt5.sync) ------------------------------------------------
    # How long after each (re)connection the terminal's history still lacks what the server
    # did while it was away; 0 turns the model off: the history is complete at once.
    history_sync_seconds: Seconds = 0.0
    # What the server did this long before a fault broke the link is missing too: its trade
    # transactions were in flight (unconfirmed: about a round trip).
    history_sync_margin_seconds: Seconds = 1.0

    # -- the trade server's clock --------------------------------------------------------------
    # Every time the terminal shows is server time: the wall clock of `server_time_zone` (UTC
    # when None) plus `server_time_offset_seconds`. Many retail servers run at UTC+2 in winter
    # and UTC+3 in summer, switching on US dates so that 17:00 in New York (the FX day's
    # close) is server midnight: "America/New_York" with an offset of 7 h (practitioners'
    # reports: mt5-reference.md, behaviour 8; the brokerclock package's documentation on
    # PyPI). "Europe/Helsinki" with no offset switches on EU dates instead: another clock for
    # about three weeks in March and one around November.
    server_time_zone: Annotated[str | None, AfterValidator(checked_zone)] = None
    server_time_offset_seconds: int = 0

    def broker_symbol(self, venue_symbol: str) -> str:
        """The name the terminal shows for a venue's symbol."""
        return venue_symbol + self.symbol_suffix

    def venue_symbol(self, name: str) -> str | None:
        """The venue's symbol a terminal name stands for; None for a name it does not list."""
        if not name.endswith(self.symbol_suffix):
            return None
        return name[: len(name) - len(self.symbol_suffix)]

    @property
    def server_time(self) -> ServerTime:
        return ServerTime(self.server_time_zone, self.server_time_offset_seconds)

    def server_seconds(self, t: float) -> int:
        """A driver's time (POSIX seconds, UTC) as the terminal shows it: server seconds."""
        return int(self.server_time.server(t))

    def server_msc(self, t: float) -> int:
        """The same in server milliseconds."""
        return round(self.server_time.server(t) * 1000)

    def utc_seconds(self, server: float) -> float:
        """Server seconds (a request's `expiration`) as driver time."""
        return self.server_time.utc(server)

    def account(self, login: int) -> AccountLogin | None:
        """The account `login` names, if this terminal may log in to it."""
        own = AccountLogin(
            login=self.login,
            password=self.password,
            server=self.server,
            trade_allowed=self.trade_allowed,
            trade_expert=self.trade_expert,
        )
        return next((a for a in (own, *self.other_accounts) if a.login == login), None)
