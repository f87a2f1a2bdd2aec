"""Rejections the broker adds on top of the natural ones: a rate limit and random refusals.

Natural causes (margin, sessions, volume, deviation) are modelled where they arise, in the
venue. Here: a broker-side request rate limit (MT5 10024, TOO_MANY_REQUESTS) over a sliding
one-second window, and extra refusals drawn with configured probabilities per return code.
"""

from __future__ import annotations

from collections import deque
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.schemas import ExecutionRejectionReason

R = ExecutionRejectionReason

# MT5 TRADE_RETCODE values the simulated broker can answer with (mt5-reference.md).
REQUOTE = 10004
REJECT = 10006
INVALID = 10013
INVALID_VOLUME = 10014
INVALID_PRICE = 10015
TRADE_DISABLED = 10017
MARKET_CLOSED = 10018
NO_MONEY = 10019
PRICE_CHANGED = 10020
PRICE_OFF = 10021
TOO_MANY_REQUESTS = 10024
INVALID_FILL = 10030
INVALID_ORDER = 10035
LONG_ONLY = 10042
SHORT_ONLY = 10043
CLOSE_ONLY = 10044

# What each code means for an execution; codes without a cause of their own stay
# BROKER_REJECTED, with the code kept beside the reason.
REASON_BY_CODE: dict[int, ExecutionRejectionReason] = {
    REQUOTE: R.REQUOTE,
    PRICE_CHANGED: R.REQUOTE,
    PRICE_OFF: R.REQUOTE,
    MARKET_CLOSED: R.MARKET_CLOSED,
    TRADE_DISABLED: R.SYMBOL_NOT_TRADABLE,
    LONG_ONLY: R.SYMBOL_NOT_TRADABLE,
    SHORT_ONLY: R.SYMBOL_NOT_TRADABLE,
    CLOSE_ONLY: R.SYMBOL_NOT_TRADABLE,
    NO_MONEY: R.INSUFFICIENT_MARGIN,
    INVALID_VOLUME: R.INVALID_VOLUME,
}
DESCRIPTION = {
    REQUOTE: "requote",
    REJECT: "request rejected",
    INVALID: "invalid request",
    INVALID_VOLUME: "invalid volume",
    INVALID_PRICE: "invalid price",
    TRADE_DISABLED: "trade disabled",
    MARKET_CLOSED: "market closed",
    NO_MONEY: "not enough money",
    PRICE_CHANGED: "prices changed",
    PRICE_OFF: "no quotes to process the request",
    TOO_MANY_REQUESTS: "too many requests",
    INVALID_FILL: "invalid order filling type",
    INVALID_ORDER: "incorrect or prohibited order",
    LONG_ONLY: "long positions only",
    SHORT_ONLY: "short positions only",
    CLOSE_ONLY: "close positions only",
}


def reason_for(code: int) -> ExecutionRejectionReason:
    return REASON_BY_CODE.get(code, R.BROKER_REJECTED)


class RejectionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Extra refusals: probability per order, by MT5 return code.
    random: dict[int, Annotated[float, Field(ge=0.0, le=1.0)]] = Field(default_factory=dict)
    # Trade requests the broker accepts per second; None: no limit.
    rate_limit_per_second: Annotated[int | None, Field(gt=0)] = None

    @field_validator("random")
    @classmethod
    def _known_codes(cls, value: dict[int, float]) -> dict[int, float]:
        unknown = sorted(set(value) - set(DESCRIPTION))
        if unknown:
            raise ValueError(f"unknown MT5 return codes {unknown}; known: {sorted(DESCRIPTION)}")
        if sum(value.values()) > 1.0:
            raise ValueError("random rejection probabilities add up to more than 1")
        return value


class Rejections:
    def __init__(self, config: RejectionConfig, seed: int) -> None:
        self.config = config
        self._rng = np.random.default_rng(np.random.SeedSequence([seed, 0x72656A]))
        self._codes = sorted(config.random)
        self._cumulative = np.cumsum([config.random[c] for c in self._codes])
        self._recent: deque[float] = deque()

    def refusal(self, t: float) -> int | None:
        """The code this request is refused with, if any. Every request counts toward the
        rate limit, refused or not, as at a broker that meters its gateway."""
        limit = self.config.rate_limit_per_second
        if limit is not None:
            recent = self._recent
            while recent and recent[0] <= t - 1.0:
                recent.popleft()
            recent.append(t)
            if len(recent) > limit:
                return TOO_MANY_REQUESTS
        if self._codes:
            draw = self._rng.random()
            index = int(np.searchsorted(self._cumulative, draw, side="right"))
            if index < len(self._codes):
                return self._codes[index]
        return None
