"""Synthetic order flow: what an RPM process would send, as a seeded stream of decisions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
    not_approved_share: Probability = 0.0  # decisions RPM did not approve, to be refused
    # poisson: exponential gaps at `rate_per_second`; burst: every order at the same instant
    arrival: Literal["poisson", "burst"] = "poisson"


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
        trade = ApprovedTrade(symbol=symbol, direction=direction, position_units=units)
        rpm = RPMOutput(
            decision=TradeDecision(
                status=status,
                approved_trade=trade,
                decision_id=f"flow-{seed}-{index}",
            ),
            portfolio_state=PortfolioState(),
        )
        yield Arrival(delay=delay, rpm=rpm)


class DecisionLine(BaseModel):
    """One line of a decisions file: an RPM output, and when it arrives."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    delay_seconds: Annotated[float, Field(ge=0.0)] = 0.0
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

    Opening reads every line once, so a bad line is named before any order is sent."""

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
        with self.path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    entry = DecisionLine.model_validate_json(line)
                except ValidationError as error:
                    raise ValueError(f"{self.path}:{number}: {_first_problem(error)}") from error
                yield Arrival(delay=entry.delay_seconds, rpm=entry.rpm)


def _first_problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(line)"
    return f"{where}: {first['msg']}"
