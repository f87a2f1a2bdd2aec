"""The pre-trade cost estimate: what the engine knows of a trade before it is sent, as
features, and the port through which a fitted model estimates its slippage.

Evidence only: the estimate is recorded (`CostEstimated`) and nothing reads it back; it
never changes, delays in virtual time, or refuses a trade.

The features are one fold over what the engine observes: each validated execution's arrival
quote, at its request time, and how each filled execution filled (time, price), when it
ends. The fold takes observations in (time, execution id) order and an execution's features
read only what was observed strictly before its own request, whichever order equal times
arrived in. The
engine folds as it trades; the analysis replays a run's executions table through the same
fold (`replay_features`), so a model is trained on exactly the features it is asked about
live — exactly wherever validation takes no clock time (the simulator: its quote, symbol
and account reads are local), to within concurrent validations' milliseconds on the wall
clock.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, fields
from typing import Protocol

from engine.core.config import EngineConfig
from engine.core.effects import Record
from engine.core.events import CostEstimated, ExecutionEvent
from engine.core.instruments import is_jpy_quoted
from engine.core.lifecycle import Execution
from engine.core.orders import Run

# Bumped whenever the fold's definition changes: a model trained on other features is refused.
FEATURES_VERSION = 1
STANDARD_LOT = 100_000  # units: lots here are standard lots, whatever the broker's contract
# Weight of the newest observation in each moving average: about the last ten count.
VOLATILITY_WEIGHT = 0.1
FILL_WEIGHT = 0.1


def conventional_pip(symbol: str) -> float:
    """The pip by the symbol's name (0.01 for JPY quotes). Not the broker's `spec.pip`
    (ten points, which is 0.00010000000000000002 in binary): the analysis knows only the
    name, and train and live features must agree to the last bit."""
    return 0.01 if is_jpy_quoted(symbol) else 0.0001


@dataclass(frozen=True, slots=True)
class TradeFacts:
    """What the engine knows of a validated execution before it is sent."""

    execution_id: str
    symbol: str
    direction: int  # +1 buy, -1 sell
    created_at: float  # driver time of the request
    arrival_bid: float
    arrival_ask: float
    units: int
    order_type: str
    intent: str
    partial_fills: str
    max_slippage_pips: float | None


@dataclass(frozen=True, slots=True)
class FillFacts:
    """How a filled execution ended: when, how long it took to fill, at what price."""

    completed_at: float
    fill_time_seconds: float
    average_fill_price: float


@dataclass(frozen=True, slots=True)
class CostFeatures:
    """A trade's features, as the model reads them; None where nothing is known yet."""

    symbol: str
    order_type: str
    intent: str
    partial_fills: str
    max_slippage_pips: float | None
    spread_pips: float  # at arrival
    volatility_pips: float | None  # moving average of |Δmid| per √second, same symbol
    lots: float
    hour_utc: int
    fill_time_ms: float | None  # moving average of the fill times observed, any symbol
    # Moving averages of the slippage vs the quoted side the symbol's fills realised
    # (+ adverse), and of its size: how the venue has been treating us.
    recent_slippage_pips: float | None
    recent_abs_slippage_pips: float | None

    def as_dict(self) -> dict[str, str | float | int | None]:
        return asdict(self)


FEATURE_NAMES: tuple[str, ...] = tuple(field.name for field in fields(CostFeatures))
CATEGORICAL_FEATURES: tuple[str, ...] = ("symbol", "order_type", "intent", "partial_fills")


@dataclass(frozen=True, slots=True)
class CostEstimate:
    """Quantiles of slippage against the quoted side, in pips, + adverse."""

    p10: float
    p50: float
    p90: float
    model_id: str


class CostEstimator(Protocol):
    """A fitted model of slippage; `scenarios.model` has one."""

    @property
    def model_id(self) -> str: ...

    def estimate(self, features: CostFeatures) -> CostEstimate: ...


class _Symbol:
    """What the memory holds of one symbol."""

    __slots__ = ("abs_slippage", "at", "mid", "slippage", "volatility")

    def __init__(self) -> None:
        self.at: float | None = None  # the last arrival quote's time and mid
        self.mid = 0.0
        self.volatility: float | None = None
        self.slippage: float | None = None
        self.abs_slippage: float | None = None


ARRIVAL, FILL = 0, 1


class MarketMemory:
    """The fold: arrival quotes and fills, applied in (time, execution id) order."""

    def __init__(self) -> None:
        # (time, execution id, kind, symbol, value, slippage): an arrival's mid, or a fill's
        # time in ms and its slippage in pips.
        self._pending: list[tuple[float, str, int, str, float, float]] = []
        self._symbols: dict[str, _Symbol] = {}
        self._fill_time_ms: float | None = None

    def observe_arrival(self, trade: TradeFacts) -> None:
        mid = (trade.arrival_bid + trade.arrival_ask) / 2.0
        entry = (trade.created_at, trade.execution_id, ARRIVAL, trade.symbol, mid, 0.0)
        heapq.heappush(self._pending, entry)

    def observe_fill(self, trade: TradeFacts, fill: FillFacts) -> None:
        side = trade.arrival_ask if trade.direction > 0 else trade.arrival_bid
        slippage = (
            trade.direction * (fill.average_fill_price - side) / conventional_pip(trade.symbol)
        )
        milliseconds = fill.fill_time_seconds * 1000.0
        entry = (fill.completed_at, trade.execution_id, FILL, trade.symbol, milliseconds, slippage)
        heapq.heappush(self._pending, entry)

    def features(self, trade: TradeFacts) -> CostFeatures:
        """The trade's features from what was observed strictly before its request."""
        self._fold_before(trade.created_at)
        known = self._symbols.get(trade.symbol) or _Symbol()
        return CostFeatures(
            symbol=trade.symbol,
            order_type=trade.order_type,
            intent=trade.intent,
            partial_fills=trade.partial_fills,
            max_slippage_pips=trade.max_slippage_pips,
            spread_pips=(trade.arrival_ask - trade.arrival_bid) / conventional_pip(trade.symbol),
            volatility_pips=known.volatility,
            lots=trade.units / STANDARD_LOT,
            hour_utc=int(trade.created_at // 3600 % 24),
            fill_time_ms=self._fill_time_ms,
            recent_slippage_pips=known.slippage,
            recent_abs_slippage_pips=known.abs_slippage,
        )

    def _fold_before(self, moment: float) -> None:
        pending = self._pending
        while pending and pending[0][0] < moment:
            at, _, kind, symbol, value, slippage = heapq.heappop(pending)
            known = self._symbols.get(symbol)
            if known is None:
                known = self._symbols[symbol] = _Symbol()
            if kind == FILL:
                self._fill_time_ms = _moving(self._fill_time_ms, value, FILL_WEIGHT)
                known.slippage = _moving(known.slippage, slippage, FILL_WEIGHT)
                known.abs_slippage = _moving(known.abs_slippage, abs(slippage), FILL_WEIGHT)
                continue
            if known.at is not None and at > known.at:
                pips = abs(value - known.mid) / conventional_pip(symbol)
                move = pips / math.sqrt(at - known.at)
                known.volatility = _moving(known.volatility, move, VOLATILITY_WEIGHT)
            known.at, known.mid = at, value


def _moving(average: float | None, value: float, weight: float) -> float:
    return value if average is None else average + weight * (value - average)


@dataclass(frozen=True, slots=True)
class ExecutionFacts:
    """One row of an executions table, as the replay reads it: the trade (None when it never
    passed validation) and how it filled (None when it did not)."""

    trade: TradeFacts | None
    fill: FillFacts | None


def replay_features(rows: Iterable[ExecutionFacts]) -> list[CostFeatures | None]:
    """Each row's features as the engine that ran them computed them (None for a row that
    never passed validation), in the rows' order: one run's table through the fold."""
    rows = list(rows)
    memory = MarketMemory()
    asked: list[tuple[float, str, int]] = []
    for i, row in enumerate(rows):
        trade = row.trade
        if trade is None:
            continue
        memory.observe_arrival(trade)
        if row.fill is not None:
            memory.observe_fill(trade, row.fill)
        asked.append((trade.created_at, trade.execution_id, i))
    # Asked in request order, the fold applies exactly what preceded each request.
    features: list[CostFeatures | None] = [None] * len(rows)
    for _, _, i in sorted(asked):
        trade = rows[i].trade
        assert trade is not None
        features[i] = memory.features(trade)
    return features


class Costing:
    """What an engine carries to estimate costs: a fitted estimator and the memory it reads.

    `guard` serialises the memory where executions run on several threads (the live engine
    passes a lock; the core may not import one)."""

    def __init__(
        self, estimator: CostEstimator, guard: AbstractContextManager[object] | None = None
    ) -> None:
        self.estimator = estimator
        self.memory = MarketMemory()
        self._guard = guard if guard is not None else nullcontext()

    def arrived(self, trade: TradeFacts) -> CostFeatures:
        """Observe a validated execution's arrival quote; its features."""
        with self._guard:
            features = self.memory.features(trade)
            self.memory.observe_arrival(trade)
        return features

    def ended(self, execution: Execution) -> None:
        """Observe how an execution that has just ended filled, if it did."""
        trade, fill = trade_facts(execution), fill_facts(execution)
        if trade is not None and fill is not None:
            with self._guard:
                self.memory.observe_fill(trade, fill)

    def estimated(self, execution_id: str, at: float, features: CostFeatures) -> CostEstimated:
        """The estimate as evidence; an estimator that fails or answers nonsense is recorded
        as unavailable, and the trade goes on as if no model were attached."""
        model_id = self.estimator.model_id
        try:
            estimate = self.estimator.estimate(features)
            quantiles = (estimate.p10, estimate.p50, estimate.p90)
            if not all(math.isfinite(q) for q in quantiles):
                raise ValueError(f"non-finite quantiles {quantiles}")
        except Exception as error:  # evidence only: no estimator failure may stop a trade
            detail = f"estimate unavailable: {type(error).__name__}: {error}"
            return CostEstimated(
                execution_id, at, None, None, None, model_id, features.as_dict(), detail
            )
        return CostEstimated(
            execution_id, at, *quantiles, estimate.model_id, features.as_dict(), None
        )


def trade_facts(execution: Execution) -> TradeFacts | None:
    """A validated execution's facts (None before it passed validation)."""
    request = execution.request
    if (
        request is None
        or request.symbol is None
        or request.direction is None
        or execution.created_at is None
        or execution.arrival_bid is None
        or execution.arrival_ask is None
    ):
        return None
    return TradeFacts(
        execution_id=execution.execution_id,
        symbol=request.symbol,
        direction=int(request.direction),
        created_at=execution.created_at,
        arrival_bid=execution.arrival_bid,
        arrival_ask=execution.arrival_ask,
        units=request.intended_units,
        order_type=request.order_type.value,
        intent=request.intent.value,
        partial_fills=request.partial_fills.value,
        max_slippage_pips=request.max_slippage_pips,
    )


def fill_facts(execution: Execution) -> FillFacts | None:
    """How an ended execution filled (None: it did not)."""
    completed, fill_time = execution.completed_at, execution.fill_time_seconds
    price = execution.average_fill_price
    if completed is None or fill_time is None or price is None:
        return None
    return FillFacts(completed, fill_time, price)


class CostedRun(Run):
    """A flow's run that tells the cost memory how each execution filled the moment it ends
    (its `completed_at`, which the replay reads). Only an engine with a model uses it:
    without one, recording costs nothing more than it did."""

    __slots__ = ("costing",)

    def __init__(
        self, execution: Execution, config: EngineConfig, now: float, costing: Costing
    ) -> None:
        super().__init__(execution, config, now)
        self.costing = costing

    def record(self, event: ExecutionEvent) -> Record:
        ended = self.execution.is_terminal
        effect = super().record(event)
        if not ended and self.execution.is_terminal:
            self.costing.ended(self.execution)
        return effect


def run_for(execution: Execution, config: EngineConfig, now: float, costing: Costing | None) -> Run:
    """The run a flow carries: a costed one only when a model is attached."""
    return (
        Run(execution, config, now)
        if costing is None
        else CostedRun(execution, config, now, costing)
    )
