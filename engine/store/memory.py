"""The in-memory store: for quick use and tests; everything is lost with the process."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from engine.core.events import ExecutionEvent, ExecutionRequested
from engine.core.lifecycle import Execution
from engine.store.base import ControlEvent, DuplicateExecution, ExecutionDatabase, one_execution
from engine.store.quotes import (
    DEFAULT_QUOTE_RETENTION_SECONDS,
    QuoteSample,
    check_retention,
    in_window,
    ordered,
    retention_cutoffs,
)


class InMemoryExecutionDatabase(ExecutionDatabase):
    def __init__(self, *, quote_retention_seconds: float = DEFAULT_QUOTE_RETENTION_SECONDS) -> None:
        self._events: dict[str, list[ExecutionEvent]] = {}
        self._control: list[ControlEvent] = []
        self._quotes: dict[tuple[str, float], QuoteSample] = {}
        self.quote_retention_seconds = check_retention(quote_retention_seconds)
        self._lock = threading.Lock()

    def append_batch(
        self,
        events: Sequence[ExecutionEvent],
        *,
        durable: bool = True,
        folded: Execution | None = None,
    ) -> None:
        execution_id = one_execution(events)
        with self._lock:
            if isinstance(events[0], ExecutionRequested):
                if execution_id in self._events:
                    raise DuplicateExecution(execution_id)
                self._events[execution_id] = list(events)
            else:
                self._events[execution_id].extend(events)

    def append_control(self, event: ControlEvent) -> None:
        with self._lock:
            self._control.append(event)

    def control_events(self) -> Sequence[ControlEvent]:
        with self._lock:
            return tuple(self._control)

    def record_quotes(self, samples: Sequence[QuoteSample]) -> None:
        cutoffs = retention_cutoffs(samples, self.quote_retention_seconds)
        with self._lock:
            for sample in samples:
                self._quotes.setdefault((sample.symbol, sample.time), sample)
            self._quotes = {
                key: sample
                for key, sample in self._quotes.items()
                if sample.time >= cutoffs.get(sample.symbol, sample.time)
            }

    def quote_tape(self, start: float | None = None, end: float | None = None) -> list[QuoteSample]:
        with self._lock:
            return ordered([q for q in self._quotes.values() if in_window(q.time, start, end)])

    def events(self, execution_id: str) -> Sequence[ExecutionEvent]:
        with self._lock:
            return tuple(self._events.get(execution_id, ()))

    def execution_ids(self) -> Iterable[str]:
        with self._lock:
            return list(self._events)
