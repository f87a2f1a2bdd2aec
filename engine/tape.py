"""The live quote tape: the broker's quote of each traded symbol, sampled on the engine's clock.

Markouts compare a fill with the mid seconds to minutes later; a simulated run has every
quote, a live one only what it keeps. So while a symbol trades, the tape reads its quote once
an interval (a second by default) and records the samples in the audit store's quote tape
(`engine.store.quotes`), a small batch at a time. A symbol trades from its first decision
until `horizon_seconds` (the longest markout horizon) after its last decision or fill; an
idle symbol is not sampled, and with no symbol trading the tape does not even tick.

It learns what trades from the records the engine writes (`ExecutionEngine.record_watchers`),
which costs an execution one append to a queue; the reading and the writing happen on the
clock's own schedule (`call_later`): a timer thread on the wall clock, an event in virtual
time on a SimPy clock, which makes the tape as deterministic as the run. Nothing the tape
does reaches an execution: a quote it cannot read is counted and skipped, and samples the
store refuses wait (at most `max_pending` of them, the oldest dropped first, counted) for the
next write. On the wall clock a read waits its turn at a broker that serialises its calls
(MT5: one quote read per traded symbol a second shares the terminal's lock with orders).

In virtual time a tick runs inside whatever waits on the SimPy clock, broker calls crossing
the simulated wire included: a broker that holds a lock across such a wait (MT5Broker over
the emulator with a network: its terminal lock is held while order_send crosses the wire)
would wait on itself. There, sample the simulator's broker; sample MT5 on the wall clock.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from engine.clock import SchedulingClock
from engine.core.events import ExecutionEvent, ExecutionRequested, OrderFilled
from engine.engine import ExecutionEngine
from engine.store.base import StoreUnavailable
from engine.store.quotes import QuoteSample

log = logging.getLogger(__name__)

# Executions whose symbol the tape remembers, so that a fill needs no look-up in the store.
_KNOWN_EXECUTIONS = 10_000


class TapeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    interval_seconds: Annotated[float, Field(gt=0.0)] = 1.0
    # The longest markout horizon of the analysis (scenarios.analysis.quality
    # MARKOUT_HORIZONS, which the engine may not import; a test keeps the two equal).
    horizon_seconds: Annotated[float, Field(ge=0.0)] = 300.0
    # Samples written together: a minute of one symbol at one a second.
    batch_size: Annotated[int, Field(ge=1)] = 60
    # Samples kept while the store refuses them: an hour of one symbol at one a second.
    max_pending: Annotated[int, Field(ge=1)] = 3_600


class QuoteTape:
    """Samples the quotes of the symbols `engine` trades into its store, once started."""

    def __init__(self, engine: ExecutionEngine[Any], settings: TapeSettings | None = None) -> None:
        clock = engine.clock
        if not callable(getattr(clock, "call_later", None)):
            raise TypeError(f"the quote tape needs a clock that schedules (call_later): {clock!r}")
        self.settings = settings or TapeSettings()
        self.missed = 0  # quotes that could not be read: skipped
        self.dropped = 0  # samples the store never took: dropped from a full queue
        self._engine = engine
        self._clock: SchedulingClock = clock  # type: ignore[assignment]  # checked above
        self._lock = threading.Lock()
        self._writing = threading.Lock()
        self._news: deque[ExecutionEvent] = deque()
        self._pending: deque[QuoteSample] = deque()
        self._armed = False  # a tick is scheduled
        self._closed = False
        # Touched by ticks only, which never overlap (each schedules the next when done).
        self._until: dict[str, float] = {}  # symbol -> when it stops being sampled
        self._symbols: OrderedDict[str, str] = OrderedDict()  # execution id -> symbol

    def start(self) -> None:
        """Watch the engine's records from now on."""
        self._engine.record_watchers.append(self.observe)

    def close(self) -> None:
        """Stop sampling and write what is pending (best effort: the store may be down)."""
        with self._lock:
            self._closed = True
        if self.observe in self._engine.record_watchers:
            self._engine.record_watchers.remove(self.observe)
        self.flush()

    def observe(self, events: Sequence[ExecutionEvent]) -> None:
        """Note the decisions and fills among an execution's records (its own thread)."""
        news = [e for e in events if isinstance(e, ExecutionRequested | OrderFilled)]
        if not news:
            return
        with self._lock:
            self._news.extend(news)
            if self._armed or self._closed:
                return
            self._armed = True
        self._schedule(self._clock.now())

    def flush(self) -> None:
        """Write the pending samples; kept for the next try if the store refuses them."""
        with self._writing:
            with self._lock:
                batch = list(self._pending)
                self._pending.clear()
            if not batch:
                return
            try:
                self._engine.database.record_quotes(batch)
            except StoreUnavailable as down:
                log.warning("quote tape: %d samples not recorded yet: %s", len(batch), down)
                self._keep(batch, in_front=True)

    # -- on the clock's schedule ---------------------------------------------------------

    def _schedule(self, now: float) -> None:
        """The next tick, on the interval's grid: the same instants whoever asks when."""
        interval = self.settings.interval_seconds
        due = (math.floor(now / interval) + 1) * interval
        self._clock.call_later(due - now, self._tick)

    def _tick(self) -> None:
        now = self._clock.now()
        with self._lock:
            news = list(self._news)
            self._news.clear()
            if self._closed:
                self._armed = False
                return
        try:
            self._sample_all(news, now)
        except Exception:  # a tick runs inside a run's waits in virtual time: never raise
            log.exception("quote tape: a tick failed; the tape goes on")
        with self._lock:
            if not self._until and not self._news:
                self._armed = False  # idle: the next decision starts the tape again
                return
        self._schedule(now)

    def _sample_all(self, news: Sequence[ExecutionEvent], now: float) -> None:
        for event in news:
            self._learn(event)
        self._until = {symbol: until for symbol, until in self._until.items() if until >= now}
        samples = [q for symbol in sorted(self._until) if (q := self._sample(symbol, now))]
        self._keep(samples, in_front=False)
        if len(self._pending) >= self.settings.batch_size or not self._until:
            self.flush()

    def _learn(self, event: ExecutionEvent) -> None:
        """Extend the sampling of the event's symbol to `horizon_seconds` after it."""
        execution_id = event.execution_id
        if isinstance(event, ExecutionRequested):
            symbol = event.request.symbol
        else:
            symbol = self._symbols.get(execution_id) or self._stored_symbol(execution_id)
        if symbol is None:
            return
        self._symbols[execution_id] = symbol
        self._symbols.move_to_end(execution_id)
        if len(self._symbols) > _KNOWN_EXECUTIONS:
            self._symbols.popitem(last=False)
        until = event.at + self.settings.horizon_seconds
        self._until[symbol] = max(self._until.get(symbol, until), until)

    def _stored_symbol(self, execution_id: str) -> str | None:
        """The symbol of an execution this tape did not see begin (one recovery settles)."""
        try:
            request = self._engine.database.request(execution_id)
        except StoreUnavailable:
            return None
        return request.symbol if request is not None else None

    def _sample(self, symbol: str, now: float) -> QuoteSample | None:
        try:
            quote = self._engine.broker.market_snapshot(symbol)
        except Exception as failure:  # whatever the broker raises, no execution sees it
            log.debug("quote tape: no quote of %s: %s", symbol, failure)
            quote = None
        if quote is None:
            self.missed += 1
            return None
        return QuoteSample(symbol, now, quote.bid, quote.ask)

    def _keep(self, samples: Sequence[QuoteSample], in_front: bool) -> None:
        """Queue samples to write; beyond max_pending the oldest go, counted."""
        with self._lock:
            if in_front:
                self._pending.extendleft(reversed(samples))
            else:
                self._pending.extend(samples)
            excess = len(self._pending) - self.settings.max_pending
            for _ in range(max(excess, 0)):
                self._pending.popleft()
            self.dropped += max(excess, 0)
