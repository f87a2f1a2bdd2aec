"""Every call into the module reads alike: results as plain data read by field name, the
terminal's error for a refusal, the module's constants read once, secrets stripped from
whatever the terminal says back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from brokers.mt5.loading import MT5Credentials


@dataclass(frozen=True, slots=True)
class TerminalError:
    """`last_error()` after a call the terminal refused."""

    code: int
    description: str

    def __str__(self) -> str:
        return f"{self.description} ({self.code})"


@dataclass(frozen=True, slots=True)
class Constants:
    """The module's constants, read once: through a bridge every read is a remote call."""

    deal: int
    pending: int
    sltp: int
    remove: int
    buy: int
    sell: int
    buy_limit: int
    sell_limit: int
    filling_fok: int
    filling_ioc: int
    filling_return: int
    time_gtc: int
    time_specified: int
    server_sets_price: frozenset[int]  # SYMBOL_TRADE_EXECUTION modes: market, exchange
    done_states: frozenset[int]  # in history: no more fills will come
    cancelled_states: frozenset[int]  # in history: ended before completing
    expired_state: int  # in history: a pending order the server removed at its expiry
    exit_entries: frozenset[int]  # DEAL_ENTRY_OUT, DEAL_ENTRY_OUT_BY: a deal that closed
    deal_buy: int  # DEAL_TYPE_BUY
    position_buy: int  # POSITION_TYPE_BUY
    deal_reason_sl: int
    deal_reason_tp: int
    deal_reason_so: int
    hedging: int  # ACCOUNT_MARGIN_MODE_RETAIL_HEDGING
    copy_ticks_info: int  # COPY_TICKS_INFO: ticks whose bid or ask changed

    @classmethod
    def read(cls, mt5: Any) -> Constants:
        return cls(
            deal=int(mt5.TRADE_ACTION_DEAL),
            pending=int(mt5.TRADE_ACTION_PENDING),
            sltp=int(mt5.TRADE_ACTION_SLTP),
            remove=int(mt5.TRADE_ACTION_REMOVE),
            buy=int(mt5.ORDER_TYPE_BUY),
            sell=int(mt5.ORDER_TYPE_SELL),
            buy_limit=int(mt5.ORDER_TYPE_BUY_LIMIT),
            sell_limit=int(mt5.ORDER_TYPE_SELL_LIMIT),
            filling_fok=int(mt5.ORDER_FILLING_FOK),
            filling_ioc=int(mt5.ORDER_FILLING_IOC),
            filling_return=int(mt5.ORDER_FILLING_RETURN),
            time_gtc=int(mt5.ORDER_TIME_GTC),
            time_specified=int(mt5.ORDER_TIME_SPECIFIED),
            server_sets_price=frozenset(
                {int(mt5.SYMBOL_TRADE_EXECUTION_MARKET), int(mt5.SYMBOL_TRADE_EXECUTION_EXCHANGE)}
            ),
            done_states=frozenset({int(mt5.ORDER_STATE_FILLED), int(mt5.ORDER_STATE_PARTIAL)}),
            cancelled_states=frozenset(
                {int(mt5.ORDER_STATE_CANCELED), int(mt5.ORDER_STATE_REJECTED)}
            ),
            expired_state=int(mt5.ORDER_STATE_EXPIRED),
            exit_entries=frozenset({int(mt5.DEAL_ENTRY_OUT), int(mt5.DEAL_ENTRY_OUT_BY)}),
            deal_buy=int(mt5.DEAL_TYPE_BUY),
            position_buy=int(mt5.POSITION_TYPE_BUY),
            deal_reason_sl=int(mt5.DEAL_REASON_SL),
            deal_reason_tp=int(mt5.DEAL_REASON_TP),
            deal_reason_so=int(mt5.DEAL_REASON_SO),
            hedging=int(mt5.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING),
            copy_ticks_info=int(mt5.COPY_TICKS_INFO),
        )


def plain(value: Any) -> Any:
    """A result as plain data: records become dicts of their fields, read by name."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    as_dict = getattr(value, "_asdict", None)
    if as_dict is not None:
        return dict(as_dict())
    if isinstance(value, tuple | list):
        return tuple(plain(item) for item in value)
    return value


def record_time(record: Mapping[str, Any]) -> float:
    """Seconds of a record's time, to the millisecond when the record has it."""
    msc = record.get("time_msc")
    return msc / 1000.0 if msc else float(record["time"])


class Secrets:
    """Strips credentials out of whatever the terminal says back."""

    def __init__(self, credentials: MT5Credentials | None) -> None:
        self._values = (
            [
                credentials.password.get_secret_value(),
                str(credentials.login),
                credentials.server,
            ]
            if credentials is not None
            else []
        )

    def redact(self, error: TerminalError) -> str:
        text = str(error)
        for value in self._values:
            text = text.replace(value, "***")
        return text
