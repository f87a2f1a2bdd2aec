"""The seed's contract: what upstream risk management sends, and what execution answers.

Every model here crosses a boundary (RPM → engine, engine → API / audit / caller), so each
one validates strictly and names the field at fault when it refuses input.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

# The core's vocabulary, which the boundary models carry (and re-export, for callers).
from engine.core.config import MaxSlippagePips
from engine.core.vocabulary import Direction as Direction
from engine.core.vocabulary import ExecutionRejectionReason as ExecutionRejectionReason
from engine.core.vocabulary import ExecutionStatus as ExecutionStatus
from engine.core.vocabulary import ExitReason as ExitReason
from engine.core.vocabulary import OrderType as OrderType
from engine.core.vocabulary import PartialFillPolicy as PartialFillPolicy
from engine.core.vocabulary import SlippageQuality as SlippageQuality
from engine.core.vocabulary import TradeIntent as TradeIntent
from engine.core.vocabulary import utc as utc

SYMBOL_PATTERN = re.compile(r"^[A-Z]{6}$")
# Ten million lots: no order, but a typo. The bound keeps every sum of units, and a broker's
# volume in lots, far inside the 64-bit integers that stores and brokers hold them in.
MAX_POSITION_UNITS = 10**12


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


NUL_REFUSED = "text may not contain NUL (\\u0000)"


def nul_location(value: Any, loc: tuple[str | int, ...] = ()) -> tuple[str | int, ...] | None:
    """Where the first string (or key) holding a NUL character is in plain data, if any."""
    if isinstance(value, str):
        return loc if "\x00" in value else None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        here = (*loc, key)
        found = here if isinstance(key, str) and "\x00" in key else nul_location(item, here)
        if found is not None:
            return found
    return None


def refuse_nul(value: Any) -> Any:
    """The value, if no text in it holds a NUL character: PostgreSQL cannot store one in a
    text column, so text that reaches one raw is refused at the door, on every backend."""
    where = nul_location(value)
    if where is not None:
        raise ValueError(NUL_REFUSED + (f" (at {'.'.join(map(str, where))})" if where else ""))
    return value


class _Open(BaseModel):
    """Upstream models may carry more than we read; we keep it but never rely on it.

    Their numbers are finite: JSON's `NaN` and `Infinity`, which pydantic reads by default,
    mean a broken upstream, never a size or a bound."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)


class DecisionStatus(StrEnum):
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    HOLD = "HOLD"
    REDUCED = "REDUCED"


Price = Annotated[float, Field(gt=0.0)]
# A distance in pips from the fill: beyond 10,000 pips no stop protects anything.
Pips = Annotated[float, Field(gt=0.0, le=10_000.0)]
PositionTicket = Annotated[str, Field(pattern=r"^[0-9]{1,20}$", description="Broker ticket")]


class ApprovedTrade(_Open):
    symbol: str = Field(description="Six-letter FX symbol, e.g. EURUSD")
    direction: Direction = Field(description="+1 buy, -1 sell: the side of the order to send")
    position_units: Annotated[
        int, Field(gt=0, le=MAX_POSITION_UNITS, description="Units of the base currency")
    ]
    confidence_score: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    max_slippage_pips: MaxSlippagePips | None = None
    intent: TradeIntent = Field(
        TradeIntent.OPEN,
        description="open (default), reduce or close a position, or modify_stops of one; "
        "a reduce or close sends the order opposite to the position, for exactly "
        "position_units (a close: all it holds)",
    )
    position_id: PositionTicket | None = Field(
        None,
        description="The position to reduce, close or modify (its ticket). Without it, on "
        "a hedging account the oldest position of the symbol that matches is chosen; on a "
        "netting account, the symbol's position",
    )
    order_type: OrderType = OrderType.MARKET
    limit_price: Price | None = Field(None, description="For a limit order: buy at or below")
    expires_at: AwareDatetime | None = Field(
        None, description="A limit order is good till then (default: the order timeout)"
    )
    stop_loss: Price | None = None
    stop_loss_pips: Pips | None = Field(None, description="Stop-loss this far from the fill")
    take_profit: Price | None = None
    take_profit_pips: Pips | None = Field(None, description="Take-profit this far from the fill")
    partial_fills: PartialFillPolicy | None = Field(
        None, description="accept a partial fill, or complete the remainder (default: config)"
    )

    @model_validator(mode="after")
    def _terms_agree(self) -> ApprovedTrade:
        for level in ("stop_loss", "take_profit"):
            if getattr(self, level) is not None and getattr(self, f"{level}_pips") is not None:
                raise ValueError(f"give {level} as a price or as {level}_pips, not both")
        protected = self.stop_loss or self.stop_loss_pips or self.take_profit
        protected = protected or self.take_profit_pips
        intent = self.intent
        if protected and intent in (TradeIntent.REDUCE, TradeIntent.CLOSE):
            raise ValueError(f"a {intent.value} decision carries no stop-loss or take-profit")
        if intent is TradeIntent.MODIFY_STOPS and not protected:
            raise ValueError("a modify_stops decision needs a stop_loss or a take_profit")
        if self.position_id is not None and intent is TradeIntent.OPEN:
            raise ValueError("position_id names the position to reduce, close or modify")
        limit = self.order_type is OrderType.LIMIT
        if limit and self.limit_price is None:
            raise ValueError("a limit order needs a limit_price")
        if not limit and (self.limit_price is not None or self.expires_at is not None):
            raise ValueError("limit_price and expires_at apply to limit orders only")
        if limit and intent is not TradeIntent.OPEN:
            raise ValueError("limit orders open positions; reduce and close are market orders")
        return self

    @field_validator("symbol")
    @classmethod
    def _symbol_is_six_letters(cls, value: str) -> str:
        value = value.upper()
        if not SYMBOL_PATTERN.match(value):
            raise ValueError("symbol must be six letters, base then quote currency, e.g. EURUSD")
        return value


class TradeDecision(_Open):
    status: DecisionStatus
    approved_trade: ApprovedTrade | None = None
    # Raw text of ours derives from it (the idempotency key, a database column): no NUL.
    decision_id: (
        Annotated[str, Field(min_length=1, max_length=128), AfterValidator(refuse_nul)] | None
    ) = None
    reason: str | None = None

    @model_validator(mode="after")
    def _approved_needs_a_trade(self) -> TradeDecision:
        if self.status is DecisionStatus.APPROVED and self.approved_trade is None:
            raise ValueError("an APPROVED decision must carry approved_trade")
        return self


class PortfolioState(_Open):
    trading_halted: bool = False
    halt_reason: str | None = None


class RPMOutput(_Open):
    """The risk & portfolio manager's output: the only input the engine acts on."""

    decision: TradeDecision
    portfolio_state: PortfolioState = PortfolioState()
    timestamp: datetime | None = None


class MarketSnapshot(_Strict):
    """The broker's quote for one symbol at one instant (driver clock, POSIX seconds)."""

    symbol: str
    bid: Annotated[float, Field(gt=0.0)]
    ask: Annotated[float, Field(gt=0.0)]
    time: float
    bid_depth_units: Annotated[int | None, Field(ge=0)] = None
    ask_depth_units: Annotated[int | None, Field(ge=0)] = None

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2.0


class FillRecord(_Strict):
    fill_id: str
    units: int
    price: float
    time: datetime


class ExitRecord(_Strict):
    """A deal that closed (part of) a position the execution opened."""

    deal_id: str
    position_id: str
    reason: ExitReason
    units: int
    price: float
    level: float | None  # the stop-loss or take-profit that triggered it
    time: datetime


class ProtectionRecord(_Strict):
    """The stops a position of the execution carries."""

    position_id: str
    stop_loss: float | None
    take_profit: float | None


class ExecutionRequest(_Strict):
    """Stage 2: what the engine will try to do, stored before anything leaves."""

    execution_id: str
    idempotency_key: str
    client_order_id: str
    # None, None, 0 for a decision that carries no trade (it is refused, but still recorded)
    symbol: str | None
    direction: Direction | None
    intended_units: int
    max_slippage_pips: float | None
    decision: dict[str, Any]
    received_at: datetime
    engine_version: str
    config_version: str
    engine_instance: str  # which engine process owns it: recovery settles only the dead's
    # What the decision asks beyond "buy or sell these units now" (defaults: today's meaning).
    intent: TradeIntent = TradeIntent.OPEN
    position_id: str | None = None
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    expires_at: datetime | None = None  # a limit order's, resolved (default: order timeout)
    stop_loss: float | None = None
    stop_loss_pips: float | None = None
    take_profit: float | None = None
    take_profit_pips: float | None = None
    partial_fills: PartialFillPolicy = PartialFillPolicy.ACCEPT

    @property
    def protected(self) -> bool:
        """Whether upstream asked for a stop-loss or take-profit."""
        # Written out, not any() over a tuple: the store asks at every append.
        return (
            self.stop_loss is not None
            or self.stop_loss_pips is not None
            or self.take_profit is not None
            or self.take_profit_pips is not None
        )


class ExecutionLog(_Strict):
    """Stage 3 onwards: the current state of one execution, derived from its events."""

    execution_id: str
    idempotency_key: str
    client_order_id: str
    broker_order_id: str | None
    symbol: str | None
    direction: Direction | None
    intended_units: int
    intended_lots: float | None
    executed_units: int
    status: ExecutionStatus
    # Why the execution ended as it did, when that was not a full fill: a refusal, and also
    # a timeout, an interruption or an unknown outcome, which are no rejections.
    outcome_reason: ExecutionRejectionReason | None
    outcome_detail: str | None
    broker_code: int | None
    arrival_bid: float | None
    arrival_ask: float | None
    average_fill_price: float | None
    slippage_pips: float | None
    slippage_quality: SlippageQuality | None
    submission_attempts: int
    fills: tuple[FillRecord, ...]
    created_at: datetime
    submitted_at: datetime | None
    completed_at: datetime | None
    engine_version: str
    config_version: str
    intent: TradeIntent = TradeIntent.OPEN
    order_type: OrderType = OrderType.MARKET
    child_orders: int = 0  # orders sent for the remainder of a partial fill
    order_ids: tuple[str, ...] = ()  # every broker order of the execution, children included
    position_ids: tuple[str, ...] = ()
    protection: tuple[ProtectionRecord, ...] = ()
    unprotected_positions: tuple[str, ...] = ()  # upstream asked for stops the broker lacks
    protection_gap_seconds: float | None = None  # longest time a position stood unprotected
    exits: tuple[ExitRecord, ...] = ()

    @property
    def fill_time_seconds(self) -> float | None:
        if self.submitted_at is None or not self.fills:
            return None
        return (self.fills[-1].time - self.submitted_at).total_seconds()


class ExecutionConfirmation(_Strict):
    """Stage 9: the answer to upstream."""

    execution_id: str
    order_id: str | None
    status: ExecutionStatus
    symbol: str | None
    direction: Direction | None
    intended_units: int
    executed_units: int
    fill_price: float | None
    slippage_pips: float | None
    timestamp: datetime
    # The seed's names for the log's outcome_reason and outcome_detail.
    rejection_reason: ExecutionRejectionReason | None = None
    rejection_detail: str | None = None

    @classmethod
    def from_log(cls, log: ExecutionLog) -> ExecutionConfirmation:
        return cls(
            execution_id=log.execution_id,
            order_id=log.broker_order_id,
            status=log.status,
            symbol=log.symbol,
            direction=log.direction,
            intended_units=log.intended_units,
            executed_units=log.executed_units,
            fill_price=log.average_fill_price,
            slippage_pips=log.slippage_pips,
            timestamp=log.completed_at or log.created_at,
            rejection_reason=log.outcome_reason,
            rejection_detail=log.outcome_detail,
        )
