"""Latency of each leg of an order's trip: client→broker, broker processing, broker→client.

Each leg is its own model — constant, lognormal with an optional fat tail, or empirical
(resampled from measured samples) — so a user can calibrate the legs separately, as they
are measured separately in practice (ping vs the broker's execution time).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

Milliseconds = Annotated[float, Field(ge=0.0)]


class ConstantLatency(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    kind: Literal["constant"] = "constant"
    ms: Milliseconds


class LognormalLatency(BaseModel):
    """Lognormal body; with probability `tail_probability` a draw is multiplied by a
    Pareto factor (shape `tail_shape`), the rare multi-second stalls real links show."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    kind: Literal["lognormal"] = "lognormal"
    median_ms: Annotated[float, Field(gt=0.0)]
    sigma: Annotated[float, Field(ge=0.0, le=5.0)] = 0.4
    tail_probability: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    tail_shape: Annotated[float, Field(gt=0.0)] = 1.5


class EmpiricalLatency(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    kind: Literal["empirical"] = "empirical"
    samples_ms: Annotated[tuple[Milliseconds, ...], Field(min_length=1)]


LegModel = Annotated[
    ConstantLatency | LognormalLatency | EmpiricalLatency, Field(discriminator="kind")
]


class LatencyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    client_to_broker: LegModel = LognormalLatency(median_ms=10.0, sigma=0.4)
    broker_processing: LegModel = LognormalLatency(median_ms=5.0, sigma=0.5, tail_probability=0.002)
    broker_to_client: LegModel = LognormalLatency(median_ms=10.0, sigma=0.4)
    # How much latency follows volatility: each leg is scaled by 1 + spike × (vol − 1),
    # where vol is the market's volatility multiplier (1 when calm).
    volatility_spike: Annotated[float, Field(ge=0.0)] = 0.5

    @classmethod
    def constant(cls, one_way_ms: float, processing_ms: float = 0.0) -> LatencyConfig:
        return cls(
            client_to_broker=ConstantLatency(ms=one_way_ms),
            broker_processing=ConstantLatency(ms=processing_ms),
            broker_to_client=ConstantLatency(ms=one_way_ms),
            volatility_spike=0.0,
        )


class LegSampler:
    """Draws one leg's latency in seconds from its model with its own generator."""

    __slots__ = ("_draw",)

    def __init__(self, model: LegModel, rng: np.random.Generator) -> None:
        self._draw = _sampler(model, rng)

    def __call__(self) -> float:
        return self._draw()


def _sampler(model: LegModel, rng: np.random.Generator) -> Callable[[], float]:
    match model:
        case ConstantLatency(ms=ms):
            seconds = ms / 1000.0
            return lambda: seconds
        case LognormalLatency(median_ms=median, sigma=sigma, tail_probability=p, tail_shape=a):
            mu = math.log(median / 1000.0)

            def lognormal() -> float:
                value = float(rng.lognormal(mu, sigma)) if sigma else math.exp(mu)
                if p and rng.random() < p:
                    value *= 1.0 + float(rng.pareto(a))
                return value

            return lognormal
        case EmpiricalLatency(samples_ms=samples):
            pool = np.asarray(samples, dtype=float) / 1000.0
            return lambda: float(pool[rng.integers(len(pool))])
    raise TypeError(f"unknown latency model {model!r}")


class LatencySampler:
    """All three legs, each with its own stream, scaled by the market's volatility."""

    def __init__(self, config: LatencyConfig, seed: int) -> None:
        streams = np.random.SeedSequence([seed, 0x6C6174]).spawn(3)
        rngs = [np.random.default_rng(s) for s in streams]
        self.config = config
        self.client_to_broker = LegSampler(config.client_to_broker, rngs[0])
        self.broker_processing = LegSampler(config.broker_processing, rngs[1])
        self.broker_to_client = LegSampler(config.broker_to_client, rngs[2])

    def legs(self, volatility: float = 1.0) -> tuple[float, float, float]:
        scale = 1.0 + self.config.volatility_spike * max(volatility - 1.0, 0.0)
        return (
            self.client_to_broker() * scale,
            self.broker_processing() * scale,
            self.broker_to_client() * scale,
        )
