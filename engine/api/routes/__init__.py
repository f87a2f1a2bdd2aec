"""The API's routes, one router per resource; `ROUTERS` is every one of them, in the
order their paths appear in the OpenAPI document."""

from engine.api.routes import audit, control, execute, executions, health, metrics, positions

ROUTERS = (
    execute.router,
    executions.router,
    positions.router,
    metrics.router,
    audit.router,
    health.router,
    control.router,
)
