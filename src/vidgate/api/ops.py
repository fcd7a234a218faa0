"""Operator routes: `/healthz` (alive), `/readyz` (ready to serve and work), `/metrics`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from .admin import check_admin
from .deps import Deps
from .responses import json_response

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
async def healthz() -> Response:
    """The process is up and its event loop answers; no I/O, so it never flaps with the
    database (that is /readyz)."""
    return json_response({"ok": True})


@router.get("/readyz")
async def readyz(services: Deps) -> Response:
    """200 when the database is reachable with the current schema, blob storage takes
    writes and (if this process runs one) the engine loop turns; else 503 naming the
    failing parts."""
    failed = await services.readiness.failures()
    if failed:
        return json_response({"ready": False, "failed": failed}, 503)
    return json_response({"ready": True})


@router.get("/metrics")
async def metrics(request: Request, services: Deps) -> Response:
    """Prometheus text format; the admin token is required unless VIDGATE_METRICS_PUBLIC."""
    if not services.settings.metrics_public:
        await check_admin(request)
    return Response(await services.scrape.render(), media_type=CONTENT_TYPE_LATEST)
