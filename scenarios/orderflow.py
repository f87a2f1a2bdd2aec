"""Synthetic order flow: what an RPM process would send, as a seeded stream of decisions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.schemas import (
    MAX_POSITION_UNITS,
    ApprovedTrade,
    DecisionStatus,
    Direction,
    MarketSnapshot,
    OrderType,
    PartialFillPolicy,
    Pips,
    PortfolioState,
    RPMOutput,
    TradeDecision,
    TradeIntent,
)
from scenarios.limits import MAX_ORDERS, MAX_RUN_SECONDS, RunSeconds
from sim.textfiles import text_lines

Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class OrderFlowConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    orders: Annotated[int, Field(ge=1, le=MAX_ORDERS)] = 1_000
    rate_per_second: Annotated[float, Field(gt=0.0)] = 50.0  # Poisson arrivals
    symbols: tuple[str, ...] = ("EURUSD", "GBPUSD", "USDJPY")
    min_lots: Annotated[float, Field(gt=0.0)] = 0.01
    max_lots: Annotated[float, Field(gt=0.0)] = 2.0
    lot_step: Annotated[float, Field(gt=0.0)] = 0.01
    contract_size: Annotated[int, Field(gt=0)] = 100_000
    odd_size_share: Probability = 0.0  # sizes the broker cannot represent, to be refused
    not_approved_share: Probability = 0.0  # decisions RPM did not approve, to be refused
    # poisson: exponential gaps at `rate_per_second`; burst: every order at the same instant
    arrival: Literal["poisson", "burst"] = "poisson"
    # What upstream attaches to its entries; None: nothing (today's decisions, unchanged).
    stop_loss_pips: Pips | None = None
    take_profit_pips: Pips | None = None
    # A share of the entries sent as limit orders, resting `limit_distance_pips` away from
    # the touch on arrival (below the ask for a buy), good for `limit_expiry_seconds`.
    limit_share: Probability = 0.0
    limit_distance_pips: Annotated[float, Field(gt=0.0, le=1_000.0)] = 2.0
    limit_expiry_seconds: Annotated[float, Field(gt=0.0, le=86_400.0)] = 60.0
    partial_fills: PartialFillPolicy | None = None  # None: the engine's configured policy
    # After the flow: a close decision for every position the run opened, so none is left.
    flatten_at_end: bool = False

    @property
    def min_units(self) -> int:
        return round(self.min_lots * self.contract_size)

    @property
    def step_units(self) -> int:
        return round(self.lot_step * self.contract_size)

    @property
    def steps(self) -> int:
        """Lot steps from min_lots to max_lots: a size is min_units + k × step_units."""
        return round((self.max_lots - self.min_lots) / self.lot_step)

    @model_validator(mode="after")
    def _sizes_a_trade_can_carry(self) -> OrderFlowConfig:
        if self.max_lots < self.min_lots:
            raise ValueError("max_lots must not be below min_lots")
        too_large = f"sizes above the {MAX_POSITION_UNITS} units a trade may carry"
        # In floats first, which cannot overflow: past this the unit counts below would.
        if (self.max_lots + self.lot_step) * self.contract_size > MAX_POSITION_UNITS:
            raise ValueError(too_large)
        # An odd size adds 1 .. step_units - 1 units: it needs a step of two units or more.
        least_step = 2 if self.odd_size_share else 1
        if self.min_units < 1 or self.step_units < least_step:
            raise ValueError(
                f"min_lots and lot_step must each come to at least {least_step} unit(s) of "
                f"contract_size {self.contract_size}"
            )
        if self.min_units + self.steps * self.step_units + self.step_units - 1 > MAX_POSITION_UNITS:
            raise ValueError(too_large)
        return self

    @model_validator(mode="after")
    def _ends_within_a_run(self) -> OrderFlowConfig:
        lasts = self.orders / self.rate_per_second
        if self.arrival == "poisson" and lasts > MAX_RUN_SECONDS:
            raise ValueError(
                f"{self.orders} orders at rate_per_second {self.rate_per_second:g} last "
                f"{lasts:.3g} s on average; a run lasts at most {MAX_RUN_SECONDS:g} s"
            )
        return self


class Arrival(BaseModel):
    model_config = ConfigDict(frozen=True)

    delay: float  # seconds after the previous arrival
    rpm: RPMOutput
    # A limit order priced on arrival: the flow cannot see the market, the runner can.
    limit_distance_pips: float | None = None
    limit_expiry_seconds: float | None = None

    def priced(self, quote: MarketSnapshot | None, pip: float, digits: int) -> RPMOutput:
        """The decision as sent at `quote`: a limit order gets its price and expiry from
        the touch then; a market order, or a limit with no quote to price it from (the
        market is closed: the engine refuses it as it would a market order), is as drawn."""
        if self.limit_distance_pips is None or quote is None:
            return self.rpm
        assert self.limit_expiry_seconds is not None
        decision = self.rpm.decision
        trade = decision.approved_trade
        assert trade is not None
        offset = self.limit_distance_pips * pip
        touch = quote.ask - offset if trade.direction is Direction.BUY else quote.bid + offset
        expires = datetime.fromtimestamp(quote.time + self.limit_expiry_seconds, tz=UTC)
        priced = trade.model_copy(
            update={
                "order_type": OrderType.LIMIT,
                "limit_price": round(touch, digits),
                "expires_at": expires,
            }
        )
        # Re-validated: a price the rounding took to zero is refused here, not sent.
        priced = ApprovedTrade.model_validate(priced.model_dump())
        return self.rpm.model_copy(
            update={"decision": decision.model_copy(update={"approved_trade": priced})}
        )


def order_flow(config: OrderFlowConfig, seed: int) -> Iterator[Arrival]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x666C6F77]))
    steps, units_per_step, min_units = config.steps, config.step_units, config.min_units
    for index in range(config.orders):
        gap = float(rng.exponential(1.0 / config.rate_per_second))
        delay = gap if config.arrival == "poisson" else 0.0
        symbol = config.symbols[int(rng.integers(len(config.symbols)))]
        direction = Direction.BUY if rng.random() < 0.5 else Direction.SELL
        units = min_units + int(rng.integers(steps + 1)) * units_per_step
        if config.odd_size_share and rng.random() < config.odd_size_share:
            units += int(rng.integers(1, units_per_step))
        status = DecisionStatus.APPROVED
        if config.not_approved_share and rng.random() < config.not_approved_share:
            status = DecisionStatus.HOLD
        # Drawn only when asked for, so that a flow without limit orders draws exactly the
        # numbers it always has: today's scenarios keep their orders and their results.
        limit = bool(config.limit_share) and rng.random() < config.limit_share
        trade = ApprovedTrade(
            symbol=symbol,
            direction=direction,
            position_units=units,
            stop_loss_pips=config.stop_loss_pips,
            take_profit_pips=config.take_profit_pips,
            partial_fills=config.partial_fills,
        )
        rpm = RPMOutput(
            decision=TradeDecision(
                status=status,
                approved_trade=trade,
                decision_id=f"flow-{seed}-{index}",
            ),
            portfolio_state=PortfolioState(),
        )
        if limit:
            yield Arrival(
                delay=delay,
                rpm=rpm,
                limit_distance_pips=config.limit_distance_pips,
                limit_expiry_seconds=config.limit_expiry_seconds,
            )
        else:
            yield Arrival(delay=delay, rpm=rpm)


def close_decision(
    position_id: str, symbol: str, held: Direction, units: int, run_tag: str
) -> RPMOutput:
    """Upstream's close of one position, for exactly the units it holds: the order opposite
    the position's side, naming it (`flatten_at_end`)."""
    trade = ApprovedTrade(
        symbol=symbol,
        direction=Direction(-int(held)),
        position_units=units,
        intent=TradeIntent.CLOSE,
        position_id=position_id,
    )
    return RPMOutput(
        decision=TradeDecision(
            status=DecisionStatus.APPROVED,
            approved_trade=trade,
            decision_id=f"flatten-{run_tag}-{position_id}",
        ),
        portfolio_state=PortfolioState(),
    )


class DecisionLine(BaseModel):
    """One line of a decisions file: an RPM output, and when it arrives."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    delay_seconds: RunSeconds = 0.0
    rpm: RPMOutput


@dataclass(frozen=True)
class SyntheticFlow:
    """A seeded order flow, generated as it is read: its length without its orders."""

    config: OrderFlowConfig
    seed: int

    def __len__(self) -> int:
        return self.config.orders

    def __iter__(self) -> Iterator[Arrival]:
        return order_flow(self.config, self.seed)


class DecisionsFile:
    """A JSON Lines file of {"delay_seconds": ..., "rpm": {...}}, read as it is played.

    Opening reads every line once, so a bad line is named before any order is sent: one
    that is not UTF-8, not an RPM output, or past the limits of a run (at most MAX_ORDERS
    decisions, their delays adding up to at most MAX_RUN_SECONDS)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._count = sum(1 for _ in self._read())
        if not self._count:
            raise ValueError(f"{path}: no decisions in the file")

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Arrival]:
        return self._read()

    def _read(self) -> Iterator[Arrival]:
        count, elapsed = 0, 0.0
        for number, line in text_lines(self.path, "decisions file"):
            if not line.strip():
                continue
            try:
                entry = DecisionLine.model_validate_json(line)
            except ValidationError as error:
                raise ValueError(f"{self.path}:{number}: {_first_problem(error)}") from error
            count, elapsed = count + 1, elapsed + entry.delay_seconds
            if count > MAX_ORDERS:
                raise ValueError(f"{self.path}:{number}: more than {MAX_ORDERS} decisions")
            if elapsed > MAX_RUN_SECONDS:
                raise ValueError(
                    f"{self.path}:{number}: the delays add up to {elapsed:g} s; "
                    f"a run lasts at most {MAX_RUN_SECONDS:g} s"
                )
            yield Arrival(delay=entry.delay_seconds, rpm=entry.rpm)


def _first_problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(line)"
    return f"{where}: {first['msg']}"
