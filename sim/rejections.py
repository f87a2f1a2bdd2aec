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

from brokers import mt5_codes
from brokers.mt5_codes import (
    CLOSE_ONLY,
    CLOSE_ORDER_EXIST,
    FROZEN,
    INVALID,
    INVALID_CLOSE_VOLUME,
    INVALID_EXPIRATION,
    INVALID_FILL,
    INVALID_ORDER,
    INVALID_PRICE,
    INVALID_STOPS,
    INVALID_VOLUME,
    LONG_ONLY,
    MARKET_CLOSED,
    NO_CHANGES,
    NO_MONEY,
    POSITION_CLOSED,
    PRICE_CHANGED,
    PRICE_OFF,
    REJECT,
    REQUOTE,
    SHORT_ONLY,
    TOO_MANY_REQUESTS,
    TRADE_DISABLED,
)
from brokers.mt5_codes import reason_for as reason_for
from engine.core.ports import BrokerRejected

# The MT5 TRADE_RETCODE values the simulated broker can answer with; the table of what
# every code means is shared with the live MT5 broker (brokers/mt5_codes.py).
DESCRIPTION = {
    code: mt5_codes.DESCRIPTION[code]
    for code in (
        REQUOTE,
        REJECT,
        INVALID,
        INVALID_VOLUME,
        INVALID_PRICE,
        TRADE_DISABLED,
        MARKET_CLOSED,
        NO_MONEY,
        PRICE_CHANGED,
        PRICE_OFF,
        TOO_MANY_REQUESTS,
        INVALID_FILL,
        INVALID_ORDER,
        LONG_ONLY,
        SHORT_ONLY,
        CLOSE_ONLY,
        POSITION_CLOSED,
        INVALID_CLOSE_VOLUME,
        CLOSE_ORDER_EXIST,
        INVALID_STOPS,
        INVALID_EXPIRATION,
        NO_CHANGES,
        FROZEN,
    )
}


def refuse(code: int, detail: str) -> BrokerRejected:
    """The trade server's refusal with an MT5 return code, as the engine reads it."""
    return BrokerRejected(reason_for(code), f"{DESCRIPTION[code]}: {detail}", code)


class RejectionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

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
