"""How this system's orders look at the broker and how the terminal is read."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from brokers.mt5.server_clock import checked_zone


class MT5Config(BaseModel):
    """How this system's orders look at the broker and how the terminal is read."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # Fixed per trading system: with the tag in the comment, it identifies our orders.
    magic: Annotated[int, Field(ge=0, lt=2**63)] = 240_601
    # Comments longer than this, or with other than ASCII letters and digits, are refused
    # before sending (limits differ by broker: reports say 31, 29, 27; 26 is safe).
    comment_max_length: Annotated[int, Field(ge=1, le=31)] = 26
    # Reconciliation matches a comment on this many leading characters of our id (and the
    # magic number), as brokers rewrite a comment's tail. Our ids are "AX" + 20 hex digits:
    # 16 characters still carry 56 bits of the id.
    tag_match_chars: Annotated[int, Field(ge=12, le=31)] = 16
    # MT5 has no "unbounded" deviation: an order without a slippage bound carries this many
    # points (ignored by symbols in market execution, honoured by instant execution).
    unbounded_deviation_points: Annotated[int, Field(ge=0)] = 1_000
    # Reconciliation searches history from when the order was first sent, less a margin for
    # the trade server's clock: small once its offset is learnt from the ticks, wide while
    # it rests on the configured offset (which daylight saving can put an hour off). The
    # window's end is padded; an order whose send time is unknown is searched this far back.
    history_margin_seconds: Annotated[float, Field(ge=0.0)] = 60.0
    unlearnt_offset_margin_seconds: Annotated[float, Field(ge=0.0)] = 7_200.0
    history_lookback_seconds: Annotated[float, Field(gt=0.0)] = 7 * 86_400.0
    history_padding_seconds: Annotated[float, Field(ge=0.0)] = 86_400.0
    # After a (re)connection the terminal requests the history it is missing from the
    # server (mt5-reference.md, real-server behaviour 3): until this long has passed, a
    # "not found" proves nothing.
    history_sync_seconds: Annotated[float, Field(ge=0.0)] = 10.0
    # The trade server's clock: MT5 stamps ticks and deals in server time. The wall clock of
    # `server_time_zone` (UTC when None) plus `server_time_offset_seconds`: "America/New_York"
    # and 25200 for the common UTC+2/+3 server that switches on US dates. Learnt from the
    # ticks (brokers/mt5/server_clock.py) unless switched off; a zone then lets a history
    # across a daylight-saving change read right on both sides, and ticks that disagree with
    # it win.
    server_time_zone: Annotated[str | None, AfterValidator(checked_zone)] = None
    server_time_offset_seconds: Annotated[int, Field(ge=-26 * 3_600, le=26 * 3_600)] = 0
    learn_server_offset: bool = True
    server_offset_tolerance_seconds: Annotated[float, Field(gt=0.0, le=60.0)] = 5.0
    # The broker's names for our symbols, where they differ: {"EURUSD": "EURUSD.m"}. Checked
    # against the broker's list when the terminal opens.
    symbols: dict[str, str] = Field(default_factory=dict)
    # A terminal found without IPC (restarted) is initialised again this many times, the
    # waits growing by this much each time.
    reconnect_attempts: Annotated[int, Field(ge=1, le=20)] = 3
    reconnect_backoff_seconds: Annotated[float, Field(ge=0.0)] = 1.0
    # Milliseconds the terminal may take to open (initialize/login `timeout`).
    timeout_ms: Annotated[int, Field(gt=0)] = 60_000
