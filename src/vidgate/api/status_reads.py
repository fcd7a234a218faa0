"""The hot path: status reads of one task, on all three families, answered before FastAPI.

Clients poll a task's status every second or so for as long as it runs, so these three GET
routes are most of a gateway's traffic. FastAPI's middleware, routing and dependency solving
cost several times the read itself (bench/RESULTS.md), so the app (`app.VidgateApp`) offers
each request here first, and this answers the common case: a well-formed status route and a
key this process verified in the last `VIDGATE_KEY_CACHE_SECONDS`. Everything else (an
unknown or missing key, a malformed query, any other route or method) goes on to FastAPI,
which authenticates from scratch. Both paths read through `TaskService.get`, render with the
family's own function and report errors with `api.errors.error_response`, so their answers
are the same (tests/test_status_reads.py compares them byte for byte).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.types import Scope, Send

from ..domain import Task
from ..errors import ApiError
from ..signing import AssetLinks
from . import generations, unified, videos
from .auth import bearer_digest
from .errors import INTERNAL_ERROR, error_body
from .responses import send_json

log = logging.getLogger("vidgate.api")


@dataclass(frozen=True)
class StatusRoute:
    render: Callable[[Task, AssetLinks], dict[str, Any]]
    headers: Callable[[Task], dict[str, str]] = lambda _task: {}


VIDEOS = StatusRoute(videos.render, videos.poll_headers)
GENERATIONS = StatusRoute(generations.render)
QUERY = StatusRoute(unified.render_query)

_VIDEOS_PREFIX = "/v1/videos/"
_GENERATIONS_PREFIX = "/v1/video/generations/"
_QUERY_PATH = "/v1/video/query"


def match(path: str, query_string: bytes) -> tuple[StatusRoute, str] | None:
    """The status route and task id a GET asks for, or None when it is not a plain status
    read (those go to FastAPI, which also produces every validation error)."""
    if path.startswith(_VIDEOS_PREFIX):
        task_id = path[len(_VIDEOS_PREFIX):]
        route = VIDEOS
    elif path.startswith(_GENERATIONS_PREFIX):
        task_id = path[len(_GENERATIONS_PREFIX):]
        route = GENERATIONS
    elif path == _QUERY_PATH:
        task_id = _query_task_id(query_string)
        route = QUERY
    else:
        return None
    if not task_id or "/" in task_id:
        return None
    return route, task_id


def _query_task_id(query_string: bytes) -> str | None:
    """`task_id` (or `id`) from the query string; None unless each appears at most once
    and nothing else is there, so FastAPI decides every unusual case."""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    params = dict(pairs)
    if len(params) != len(pairs) or not set(params) <= {"task_id", "id"}:
        return None
    return params.get("task_id") or params.get("id")


class StatusReads:
    """Answers `match`ed status reads for cached keys; `answer` says whether it did."""

    def __init__(self, services: Any) -> None:
        self.services = services
        self._base_urls: dict[tuple[Any, ...], str] = {}

    async def answer(self, scope: Scope, send: Send) -> bool:
        if scope["type"] != "http" or scope["method"] != "GET":
            return False
        found = match(scope["path"], scope["query_string"])
        if found is None:
            return False
        authorization = host = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = authorization or value
            elif name == b"host":
                host = host or value
        digest = bearer_digest(authorization.decode("latin-1"))
        key = self.services.key_cache.get(digest) if digest else None
        if key is None:
            return False
        route, task_id = found
        try:
            status, data, headers = await self._read(scope, key, route, task_id, host)
        except Exception:  # the same last resort as the FastAPI app's handler
            log.exception("unhandled error on %s", scope["path"])
            status, data, headers = _error(INTERNAL_ERROR, scope["path"])
        await send_json(send, data, status, headers)
        return True

    async def _read(self, scope: Scope, key: Any, route: StatusRoute, task_id: str,
                    host: bytes) -> tuple[int, Any, dict[str, str]]:
        services = self.services
        try:
            await services.limiter.check(key.id, key.rpm_limit)
            task = await services.tasks.get(key.id, task_id)
        except ApiError as error:
            return _error(error, scope["path"])
        links = services.links_at(task, self._base_url(scope, host))
        return 200, route.render(task, links), route.headers(task)

    def _base_url(self, scope: Scope, host: bytes) -> str:
        """Starlette's base URL for this request, remembered per (scheme, host, root)."""
        cache_key = (scope["scheme"], host, scope.get("root_path", ""), scope.get("server"))
        base = self._base_urls.get(cache_key)
        if base is None:
            if len(self._base_urls) >= 256:
                self._base_urls.clear()
            base = self._base_urls[cache_key] = str(Request(scope).base_url)
        return base


def _error(error: ApiError, path: str) -> tuple[int, Any, dict[str, str]]:
    return error.status, error_body(error, path), error.headers or {}
