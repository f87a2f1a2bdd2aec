"""The service's metrics: GET /metrics in Prometheus' text format (or JSON when asked for
it), GET /metrics/json for people. Both are read from the same instruments."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from engine.api.dependencies import Reader, Service
from engine.api.errors import GUARDED, error_responses
from engine.api.metrics_json import metrics_report
from engine.api.schemas import MetricsReport

router = APIRouter()


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Every series in Prometheus' text format; the JSON report of "
            "/metrics/json when the request accepts application/json and not text/plain",
            "content": {
                CONTENT_TYPE_LATEST: {"schema": {"type": "string"}},
                "application/json": {"schema": {"$ref": "#/components/schemas/MetricsReport"}},
            },
        },
        **error_responses(*GUARDED),
    },
    summary="The metrics for Prometheus to scrape (roles: auditor, admin)",
)
async def metrics(
    service: Service, _key: Reader, accept: Annotated[str, Header()] = ""
) -> Response:
    # Prometheus asks for openmetrics or text/plain; a person's client asking for JSON (and
    # nothing Prometheus reads) still gets the seed's JSON view at the old address.
    wants = accept.lower()
    if "application/json" in wants and "text/plain" not in wants and "openmetrics" not in wants:
        report = metrics_report(service.engine, service.metrics)
        return JSONResponse(report.model_dump(mode="json"))
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/metrics/json",
    response_model=MetricsReport,
    responses=error_responses(*GUARDED),
    summary="Execution quality and service metrics as JSON (roles: auditor, admin)",
)
async def metrics_json(service: Service, _key: Reader) -> MetricsReport:
    return metrics_report(service.engine, service.metrics)
