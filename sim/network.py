"""The wire between engine and broker: latency per leg, and what gets lost on the way.

The network only *plans* a delivery (how long each leg takes, and its fate); a driver
carries the plan out with its own clock, so SimPy's virtual time and the wall clock meet
exactly the same network.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.core.ports import BrokerError, OutcomeUnknown, RequestNotSent
from sim.latency import LatencyConfig, LatencySampler

Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class Fate(Enum):
    DELIVERED = "delivered"
    REFUSED = "refused"  # the connection could not be made: nothing was sent
    REQUEST_LOST = "request_lost"  # sent, never reached the broker
    REPLY_LOST = "reply_lost"  # executed at the broker, the answer never came back


class FaultKind(Enum):
    REFUSE = "refuse"  # broker down: connections refused at once, nothing sent
    DISCONNECT = "disconnect"  # terminal offline: local reads fail too, nothing sent
    HANG = "hang"  # partition: requests vanish, the client waits out its timeout
    DROP_REPLIES = "drop_replies"  # the broker executes, its answers never arrive


class FaultWindow(BaseModel):
    """A deterministic fault on the wire during [start, end) in driver time (POSIX seconds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: float
    end: float
    kind: FaultKind = FaultKind.REFUSE

    @model_validator(mode="after")
    def _ordered(self) -> FaultWindow:
        if self.end <= self.start:
            raise ValueError("a fault window must end after it starts")
        return self


class LateExecution(BaseModel):
    """A trade server that executes a request after its client gave up on it.

    Real MT5 servers do: a request whose reply was lost to an IPC timeout (-10005), a 10012
    TIMEOUT or a broken connection may still be executed after `order_send` has returned
    (mt5-reference.md, "Behaviours of real servers" 2; MQL5 reference, OrderSend: a timed-out
    request "does not mean the order was not executed"). With `probability`, a request whose
    reply the client never gets is executed that many seconds after it arrived, drawn
    uniformly from [min_seconds, max_seconds], instead of at once.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    probability: Probability = 0.0
    min_seconds: Annotated[float, Field(ge=0.0)] = 0.5
    max_seconds: Annotated[float, Field(ge=0.0)] = 10.0

    @model_validator(mode="after")
    def _ordered(self) -> LateExecution:
        if self.max_seconds < self.min_seconds:
            raise ValueError("max_seconds must not be below min_seconds")
        return self


class NetworkConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    latency: LatencyConfig = LatencyConfig()
    request_loss: Probability = 0.0
    reply_loss: Probability = 0.0
    faults: tuple[FaultWindow, ...] = ()
    late_execution: LateExecution = LateExecution()


@dataclass(frozen=True, slots=True)
class Schedule:
    """How a driver carries a delivery out: wait, maybe call the broker, wait, then answer."""

    before: float
    reaches_broker: bool
    after: float
    error: BrokerError | None  # replaces the broker's answer when the client never gets it


@dataclass(frozen=True, slots=True)
class Delivery:
    to_broker: float  # seconds
    to_client: float
    fate: Fate

    def schedule(self, timeout: float) -> Schedule:
        """What the client experiences, given how long it waits for a reply."""
        if self.fate is Fate.REFUSED:
            return Schedule(
                0.0, False, 0.0, RequestNotSent("broker unreachable: connection refused")
            )
        lost = OutcomeUnknown(f"no reply within {timeout:g}s")
        if self.fate is Fate.REQUEST_LOST:
            return Schedule(timeout, False, 0.0, lost)
        if self.fate is Fate.REPLY_LOST or self.to_broker + self.to_client > timeout:
            to_broker = min(self.to_broker, timeout)
            return Schedule(to_broker, self.to_broker <= timeout, timeout - to_broker, lost)
        return Schedule(self.to_broker, True, self.to_client, None)


class Network:
    def __init__(
        self,
        config: NetworkConfig,
        seed: int,
        volatility: Callable[[float], float] | None = None,
    ) -> None:
        """`volatility(t)` is the market's multiplier (1 when calm): latency follows it."""
        self.config = config
        self._rng = np.random.default_rng(np.random.SeedSequence([seed, 0x6E6574]))
        self._latency = LatencySampler(config.latency, seed)
        self._volatility = volatility
        self.fates: Counter[str] = Counter()  # what the wire did, for a run's summary

    def fault_at(self, t: float) -> FaultKind | None:
        for window in self.config.faults:
            if window.start <= t < window.end:
                return window.kind
        return None

    def late_by(self) -> float | None:
        """How long after arriving an unanswered request is executed, if it is executed late."""
        late = self.config.late_execution
        if not late.probability or self._rng.random() >= late.probability:
            return None
        self.fates["executed_late"] += 1
        return float(self._rng.uniform(late.min_seconds, late.max_seconds))

    def plan(self, t: float) -> Delivery:
        """The fate of a request sent at t; latency spikes with the market's volatility."""
        fault = self.fault_at(t)
        if fault in (FaultKind.REFUSE, FaultKind.DISCONNECT):
            self.fates[Fate.REFUSED.value] += 1
            return Delivery(0.0, 0.0, Fate.REFUSED)
        volatility = 1.0
        # Without a volatility spike latency ignores the market: no need to ask it.
        if self._volatility is not None and self._latency.config.volatility_spike:
            volatility = self._volatility(t)
        to_broker, processing, to_client = self._latency.legs(volatility)
        fate = Fate.DELIVERED
        if fault is FaultKind.HANG:
            fate = Fate.REQUEST_LOST
        elif fault is FaultKind.DROP_REPLIES:
            fate = Fate.REPLY_LOST
        elif self.config.request_loss and self._rng.random() < self.config.request_loss:
            fate = Fate.REQUEST_LOST
        elif self.config.reply_loss and self._rng.random() < self.config.reply_loss:
            fate = Fate.REPLY_LOST
        self.fates[fate.value] += 1
        # The broker acts once the request has arrived and been processed.
        return Delivery(to_broker + processing, to_client, fate)
