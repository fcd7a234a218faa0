"""Read-only operator views for the dashboard: channels and recent tasks (admin token)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Query
from starlette.responses import Response

from ..domain import ACTIVE, TERMINAL
from ..engine.router import Channel
from ..errors import invalid
from .admin import Admin
from .contract import answers
from .deps import Deps
from .responses import json_response
from .schemas import ref

router = APIRouter(prefix="/admin")
STATUSES = ACTIVE + TERMINAL


def breaker_state(channel: Channel, now: float) -> str:
    """closed (taking work), open (resting after refusals) or half_open (one trial allowed)."""
    breaker = channel.breaker
    if breaker.failures < breaker.threshold:
        return "closed"
    return "half_open" if now >= breaker.open_until else "open"


@router.get("/channels", openapi_extra=answers(ref("ChannelList")))
async def list_channels(services: Deps, _: Admin) -> Response:
    """Each channel as configured, its breaker as this process's router sees it, and its jobs
    in flight as the database counts them (every process's, like the engine's caps)."""
    in_flight = await services.db.leases.count_in_flight()
    now = time.time()
    data = [{
        "name": ch.name,
        "object": "channel",
        "kind": ch.config.kind,
        "models": sorted(ch.config.models),
        "priority": ch.config.priority,
        "weight": ch.config.weight,
        "max_in_flight": ch.config.max_in_flight,
        "in_flight": in_flight.get(ch.name, 0),
        "breaker": {"state": breaker_state(ch, now), "failures": ch.breaker.failures,
                    "open_until": ch.breaker.open_until or None},
    } for ch in services.router.channels.values()]
    return json_response({"object": "list", "data": data})


@router.get("/tasks", openapi_extra=answers(ref("RecentTaskList")))
async def list_tasks(services: Deps, _: Admin, status: str | None = None,
                     limit: int = Query(50, ge=1, le=500)) -> Response:
    if status is not None and status not in STATUSES:
        raise invalid(f"'status' must be one of {', '.join(STATUSES)}.", param="status")
    rows = await services.db.tasks.recent(status, limit)
    return json_response({"object": "list", "data": rows})
