"""What the REST API answers besides the engine's own models: errors, health, control,
history pages, metrics.

Every error, whatever its status, has one shape (`Problem`), so a client reads them all the
same way: a machine-readable `error`, a sentence for people, and for invalid input one entry
per field at fault.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from engine.metrics import Distribution
from engine.schemas import ExecutionLog, refuse_nul


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldProblem(_Answer):
    loc: list[str | int] = Field(description="Where: e.g. ['body', 'decision', 'status']")
    msg: str
    type: str


class Problem(_Answer):
    error: str = Field(description="Machine-readable: invalid_request, unauthorized, ...")
    detail: str = Field(description="What went wrong and, where it helps, what to do")
    errors: list[FieldProblem] = Field(
        default_factory=list, description="One entry per field at fault (invalid_request)"
    )
    execution_id: str | None = Field(
        default=None, description="The execution concerned (not_found, idempotency_conflict)"
    )


class Health(_Answer):
    status: str = Field(description="ok, or degraded when the broker or the store is not there")
    broker_connected: bool
    database_reachable: bool
    trading_halted: bool


class HaltRequest(_Answer):
    reason: (
        Annotated[str, Field(min_length=1, max_length=500), AfterValidator(refuse_nul)] | None
    ) = None


class ControlState(_Answer):
    """The kill switch after a halt or resume, and the audit record that proves it."""

    trading_halted: bool
    recorded_at: AwareDatetime = Field(
        description="When the audit record was stamped (ISO 8601 UTC, by the driver's clock)"
    )
    by: str = Field(description="Name of the API key that acted")
    reason: str | None = None


class HistoryPage(_Answer):
    executions: list[ExecutionLog]
    limit: int
    offset: int
    next_offset: int | None = Field(description="offset of the next page; null on the last")


class BrokerUptime(_Answer):
    probes: int = Field(description="Connection checks made (health calls and periodic probes)")
    connected: int = Field(description="Checks that found the broker connected")
    uptime: float | None = Field(description="connected / probes; null before the first probe")


class MetricsReport(_Answer):
    """Execution quality since this engine started, and how the service itself performs."""

    executions: int
    success_rate: float | None = Field(description="FILLED or PARTIALLY_FILLED / executions")
    partial_fill_rate: float | None
    network_error_rate: float | None = Field(
        description="Executions that ended on the network (NETWORK_ERROR: nothing reached "
        "the broker; OUTCOME_UNKNOWN: a reply was lost) / executions"
    )
    order_timeout_rate: float | None = Field(description="ORDER_TIMEOUT (EXPIRED) / executions")
    slippage_pips: Distribution = Field(description="Signed, in pips, positive = adverse")
    fill_time_seconds: Distribution
    slippage_bound_breaches: int = Field(
        description="Fills worse than the decision's max_slippage_pips (market execution "
        "does not enforce the bound at the venue)"
    )
    unprotected_positions: int = Field(
        description="Positions left without the stop-loss or take-profit upstream asked for"
    )
    child_orders: int = Field(description="Orders sent for the remainders of partial fills")
    rejections_by_reason: dict[str, int]
    executions_by_status: dict[str, int]
    executions_by_symbol: dict[str, int]
    broker: BrokerUptime
    trading_halted: bool
    api_requests_seconds: dict[str, Distribution] = Field(
        description="Request durations by route, e.g. 'POST /execute'"
    )
    api_responses_by_status: dict[str, int]
    db_operations_seconds: dict[str, Distribution] = Field(
        description="Audit-store call durations by operation, e.g. 'append'"
    )
