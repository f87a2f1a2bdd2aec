"""Every number of the 9-stage flow, in one object.

Defaults are the seed's. The config's hash is recorded with every execution so that an
audit can tell which rules an order was executed under.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.core.instruments import is_jpy_quoted
from engine.core.vocabulary import PartialFillPolicy

ENGINE_VERSION = "0.1.0"

PositiveSeconds = Annotated[float, Field(gt=0.0)]
# A deviation of more than 1,000 pips is not a bound but a typo.
MaxSlippagePips = Annotated[float, Field(gt=0.0, le=1_000.0)]


class SlippageBands(BaseModel):
    """Upper bounds, in pips of adverse slippage, of each quality class."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    excellent: Annotated[float, Field(ge=0.0)] = 0.2
    good: Annotated[float, Field(ge=0.0)] = 0.5
    acceptable: Annotated[float, Field(ge=0.0)] = 2.0

    @model_validator(mode="after")
    def _ordered(self) -> SlippageBands:
        if not self.excellent <= self.good <= self.acceptable:
            raise ValueError("slippage bands must satisfy excellent <= good <= acceptable")
        return self


class EngineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # Stage 1: pre-execution validation
    max_spread_pips: dict[str, Annotated[float, Field(gt=0.0)]] = Field(default_factory=dict)
    default_max_spread_pips: Annotated[float, Field(gt=0.0)] = 3.0
    default_max_spread_pips_jpy: Annotated[float, Field(gt=0.0)] = 3.0
    margin_safety_factor: Annotated[float, Field(ge=1.0)] = 1.5
    max_quote_age_seconds: PositiveSeconds = 120.0
    # Stage 4: submission with retry
    max_submission_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    retry_backoff_seconds: Annotated[float, Field(ge=0.0)] = 1.0
    request_timeout_seconds: PositiveSeconds = 5.0
    # A trade server may execute a request after the client timed out (MT5: IPC timeout
    # -10005, 10012, a broken connection). "Not found" proves an order absent only once
    # this long has passed since the request was sent; before that the engine asks again.
    absence_proof_seconds: Annotated[float, Field(ge=0.0)] = 30.0
    # Stage 5: monitoring
    poll_interval_seconds: PositiveSeconds = 0.5
    order_timeout_seconds: PositiveSeconds = 60.0
    # Partial fills: accept them (the seed), or complete the remainder with child orders,
    # each a new order with its own client order id, at most this many, until this long
    # after the first submission.
    partial_fills: PartialFillPolicy = PartialFillPolicy.ACCEPT
    max_remainder_orders: Annotated[int, Field(ge=1, le=9)] = 3
    remainder_deadline_seconds: PositiveSeconds = 120.0
    # Stage 6: slippage
    slippage_bands: SlippageBands = SlippageBands()
    default_max_slippage_pips: MaxSlippagePips | None = None

    def max_spread_for(self, symbol: str) -> float:
        if symbol in self.max_spread_pips:
            return self.max_spread_pips[symbol]
        if is_jpy_quoted(symbol):
            return self.default_max_spread_pips_jpy
        return self.default_max_spread_pips

    @cached_property
    def version(self) -> str:
        """A short content hash: two configs with the same rules have the same version."""
        digest = hashlib.sha256(self.model_dump_json().encode()).hexdigest()
        return digest[:12]
