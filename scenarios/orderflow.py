"""Synthetic order flow: what an RPM process would send, as a seeded stream of decisions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from engine.schemas import (
    ApprovedTrade,
    DecisionStatus,
    Direction,
    PortfolioState,
    RPMOutput,
    TradeDecision,
)

Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class OrderFlowConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    orders: Annotated[int, Field(ge=1)] = 1_000
    rate_per_second: Annotated[float, Field(gt=0.0)] = 50.0  # Poisson arrivals
    symbols: tuple[str, ...] = ("EURUSD", "GBPUSD", "USDJPY")
    min_lots: Annotated[float, Field(gt=0.0)] = 0.01
    max_lots: Annotated[float, Field(gt=0.0)] = 2.0
    lot_step: Annotated[float, Field(gt=0.0)] = 0.01
    contract_size: Annotated[int, Field(gt=0)] = 100_000
    odd_size_share: Probability = 0.0  # sizes the broker cannot represent, to be refused


class Arrival(BaseModel):
    model_config = ConfigDict(frozen=True)

    delay: float  # seconds after the previous arrival
    rpm: RPMOutput


def order_flow(config: OrderFlowConfig, seed: int) -> Iterator[Arrival]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x666C6F77]))
    steps = round((config.max_lots - config.min_lots) / config.lot_step)
    units_per_step = round(config.lot_step * config.contract_size)
    min_units = round(config.min_lots * config.contract_size)
    for index in range(config.orders):
        delay = float(rng.exponential(1.0 / config.rate_per_second))
        symbol = config.symbols[int(rng.integers(len(config.symbols)))]
        direction = Direction.BUY if rng.random() < 0.5 else Direction.SELL
        units = min_units + int(rng.integers(steps + 1)) * units_per_step
        if config.odd_size_share and rng.random() < config.odd_size_share:
            units += int(rng.integers(1, units_per_step))
        trade = ApprovedTrade(symbol=symbol, direction=direction, position_units=units)
        rpm = RPMOutput(
            decision=TradeDecision(
                status=DecisionStatus.APPROVED,
                approved_trade=trade,
                decision_id=f"flow-{seed}-{index}",
            ),
            portfolio_state=PortfolioState(),
        )
        yield Arrival(delay=delay, rpm=rpm)
