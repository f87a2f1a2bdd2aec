"""The service behind every route: one engine, the API's settings, the threads executions
run on, and what the service measures of itself (its Prometheus instruments).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated

import anyio
from pydantic import BaseModel, ConfigDict, Field

from engine.api.keys import ApiKey
from engine.api.metrics import ServiceMetrics
from engine.core.ports import BrokerError
from engine.engine import ExecutionEngine
from engine.store.base import ControlEvent, ControlKind, StoreUnavailable, control_event

log = logging.getLogger(__name__)


class ApiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rate_per_second: Annotated[float, Field(gt=0.0)] = 50.0  # per key, on average
    burst: Annotated[int, Field(ge=1)] = 100  # per key, at once
    max_body_bytes: Annotated[int, Field(ge=1)] = 64 * 1024
    # Executions waiting on the broker at once; more wait for a thread, none is refused.
    max_concurrent_executions: Annotated[int, Field(ge=1)] = 64
    store_retry_after_seconds: Annotated[int, Field(ge=1)] = 5
    # Seconds between background broker probes (broker uptime); 0: only /health probes.
    broker_probe_seconds: Annotated[float, Field(ge=0.0)] = 5.0
    # Seconds between looks at the broker for positions our executions opened that a
    # stop-loss, a take-profit or a stop-out closed (recorded on the execution); 0: never.
    exits_watch_seconds: Annotated[float, Field(ge=0.0)] = 5.0
    # How far back the server's first look reaches: exits while it was down are recorded.
    exits_lookback_seconds: Annotated[float, Field(ge=0.0)] = 7 * 86_400.0
    # Seconds between samples of the quote tape (each traded symbol's quote, for markouts of
    # live trades: engine.tape); 0: no tape.
    quote_tape_seconds: Annotated[float, Field(ge=0.0)] = 1.0


@dataclass
class ApiService:
    """What every route works with; one per application, in `app.state.service`."""

    engine: ExecutionEngine
    settings: ApiSettings
    clock: Callable[[], float]
    # Executions block on the broker (MT5 is synchronous): each runs on a thread of its
    # own, at most max_concurrent_executions at once; the rest queue here, in order.
    executions: ThreadPoolExecutor
    metrics: ServiceMetrics

    def broker_connected(self) -> bool:
        try:
            connected = bool(self.engine.broker.is_connected())
        except Exception:  # a broker that cannot even say is not connected
            connected = False
        self.metrics.observe_broker(connected)
        return connected

    def store_reachable(self) -> bool:
        try:
            self.engine.database.ping()
        except StoreUnavailable as down:
            log.warning("audit store unreachable: %s", down)
            return False
        return True

    def control_event(self, kind: ControlKind, key: ApiKey, reason: str | None) -> ControlEvent:
        return control_event(
            kind,
            self.clock(),
            by=key.name,
            role=key.role.value,
            reason=reason,
            config_version=self.engine.config.version,
        )


def execution_pool(settings: ApiSettings) -> ThreadPoolExecutor:
    """The threads executions run on, blocking on the broker."""
    return ThreadPoolExecutor(settings.max_concurrent_executions, thread_name_prefix="execution")


async def probe_forever(service: ApiService) -> None:
    """Check the broker's connection and the audit store every broker_probe_seconds (broker
    uptime; the gauges alerts watch), until cancelled."""
    while True:
        await anyio.to_thread.run_sync(service.broker_connected, abandon_on_cancel=True)
        await anyio.to_thread.run_sync(service.store_reachable, abandon_on_cancel=True)
        await anyio.sleep(service.settings.broker_probe_seconds)


async def watch_exits_forever(service: ApiService) -> None:
    """Record the exits of our positions every exits_watch_seconds, until cancelled. The
    first look reaches back exits_lookback_seconds (exits while the server was down); each
    later one back to a minute before the last that succeeded, so a deal the broker showed
    late is still taken (recording skips exits it already holds)."""
    engine, settings = service.engine, service.settings
    since = engine.clock.now() - settings.exits_lookback_seconds
    while True:
        started = engine.clock.now()
        try:
            await anyio.to_thread.run_sync(engine.record_exits, since, abandon_on_cancel=True)
        except (BrokerError, StoreUnavailable) as error:
            log.warning("exits not recorded this time: %s", error)
        else:
            since = started - 60.0
        await anyio.sleep(settings.exits_watch_seconds)
