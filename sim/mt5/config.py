"""What an emulated terminal is set up with: its account, its server, and the rules of the
server it is taken to be (comments, clock, execution modes)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr


def _zone(name: str | None) -> str | None:
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as unknown:
        raise ValueError(f"no IANA time zone named {name!r}") from unknown
    return name


# SymbolInfo.trade_exemode, by name (SYMBOL_TRADE_EXECUTION_REQUEST ... _EXCHANGE).
ExecutionMode = Literal["request", "instant", "market", "exchange"]


class TerminalConfig(BaseModel):
    """The terminal and the account it is logged in to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    login: Annotated[int, Field(gt=0)] = 5_100_001
    password: SecretStr = SecretStr("emulator")
    server: str = "Arbitrex-Sim"
    company: str = "Arbitrex simulated broker"
    build: Annotated[int, Field(gt=0)] = 4755
    # The terminal's Algo Trading button; off, every trade request is answered 10027.
    algo_trading: bool = True
    # The comments the server takes (unconfirmed: reports say 31, 29, 27 characters).
    comment_max_length: Annotated[int, Field(ge=0, le=64)] = 26
    # How the server rewrites a comment it stores: cut to a length, then a suffix added.
    stored_comment_length: Annotated[int | None, Field(ge=0)] = None
    stored_comment_suffix: str = ""
    # The trade server's clock. Every time the terminal shows is server time: the wall clock
    # of `server_time_zone` (UTC when None) plus `server_time_offset_seconds`. Many retail
    # servers run at UTC+2 in winter and UTC+3 in summer, switching on US dates so that
    # 17:00 in New York (the FX day's close) is server midnight: "America/New_York" with an
    # offset of 7 h (practitioners' reports: mt5-reference.md, behaviour 8; the brokerclock
    # package's documentation on PyPI). "Europe/Helsinki" with no offset switches on EU
    # dates instead: another clock for about three weeks in March and one around November.
    server_time_zone: Annotated[str | None, AfterValidator(_zone)] = None
    server_time_offset_seconds: int = 0
    # Each named symbol's execution mode, and with it the filling types its market orders
    # may carry (`sim.mt5.constants.execution`). A symbol not named keeps the emulator's
    # first reading: instant execution's requotes with the venue's fill policies.
    execution_modes: dict[str, ExecutionMode] = Field(default_factory=dict)

    def server_seconds(self, t: float) -> int:
        """A driver's time (POSIX seconds, UTC) as the terminal shows it: server seconds."""
        return int(t + self._offset(t))

    def server_msc(self, t: float) -> int:
        """The same in server milliseconds."""
        return round((t + self._offset(t)) * 1000)

    def _offset(self, t: float) -> float:
        """Server time minus UTC at t, in seconds."""
        if self.server_time_zone is None:
            return self.server_time_offset_seconds
        # ZoneInfo caches its instances: a dictionary lookup, not a read of the database.
        local = datetime.fromtimestamp(t, ZoneInfo(self.server_time_zone)).utcoffset()
        assert local is not None  # a ZoneInfo always knows its offset
        return local.total_seconds() + self.server_time_offset_seconds
