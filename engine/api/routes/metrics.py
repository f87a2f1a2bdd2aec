"""The service's metrics: GET /metrics as JSON and GET /metrics/prometheus as text."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from engine.api.dependencies import Reader, Service
from engine.api.errors import GUARDED, error_responses
from engine.api.metrics import metrics_report, prometheus_text
from engine.api.schemas import MetricsReport
from engine.api.service import ApiService

PROMETHEUS_MEDIA_TYPE = "text/plain; version=1.0.0; charset=utf-8"

router = APIRouter()


@router.get(
    "/metrics",
    response_model=MetricsReport,
    responses=error_responses(*GUARDED),
    summary="Execution quality and service metrics as JSON (roles: auditor, admin)",
)
async def metrics(service: Service, _key: Reader) -> MetricsReport:
    return _report(service)


@router.get(
    "/metrics/prometheus",
    response_class=Response,
    responses={
        200: {
            "description": "The same series as /metrics, in Prometheus' text format",
            "content": {PROMETHEUS_MEDIA_TYPE: {"schema": {"type": "string"}}},
        },
        **error_responses(*GUARDED),
    },
    summary="The metrics in Prometheus' text format (roles: auditor, admin)",
)
async def metrics_prometheus(service: Service, _key: Reader) -> Response:
    return Response(prometheus_text(_report(service)), media_type=PROMETHEUS_MEDIA_TYPE)


def _report(service: ApiService) -> MetricsReport:
    return metrics_report(
        service.engine, service.probes, service.requests, service.responses, service.store
    )
