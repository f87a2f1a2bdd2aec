"""What an emulated terminal is set up with: its account, its server, and the rules of the
server it is taken to be (comments, time zone, execution modes)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

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
    # The trade server's clock minus UTC: every time the terminal shows is server time.
    server_time_offset_seconds: int = 0
    # Each named symbol's execution mode, and with it the filling types its market orders
    # may carry (`sim.mt5.constants.execution`). A symbol not named keeps the emulator's
    # first reading: instant execution's requotes with the venue's fill policies.
    execution_modes: dict[str, ExecutionMode] = Field(default_factory=dict)

    def server_seconds(self, t: float) -> int:
        """A driver's time (POSIX seconds, UTC) as the terminal shows it: server seconds."""
        return int(t + self.server_time_offset_seconds)

    def server_msc(self, t: float) -> int:
        """The same in server milliseconds."""
        return round((t + self.server_time_offset_seconds) * 1000)
