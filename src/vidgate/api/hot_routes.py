"""The hot paths, answered before FastAPI: status reads and JSON creates on all three families.

Clients poll a task's status every second or so for as long as it runs, and creates are the
other half of their traffic. FastAPI's middleware, routing and dependency solving cost
several times the work of a status read (bench/RESULTS.md), so the app (`app.VidgateApp`)
offers each request here first, and this answers the common case: a well-formed status read
or a JSON create, with a key this process verified in the last `VIDGATE_KEY_CACHE_SECONDS`.
Everything else (an unknown or missing key, multipart bodies, a malformed query, any other
route or method) goes on to FastAPI, which authenticates from scratch.

Both paths run the same code below the HTTP layer: the family's `CreateRoute` and body
reader, `TaskService`, the family's render function and `api.errors.error_body`, so their
answers are the same (tests/test_hot_routes.py compares them byte for byte).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive, Scope, Send

from ..domain import Task
from ..errors import ApiError
from ..signing import AssetLinks
from . import generations, unified, videos
from .auth import bearer_digest
from .bodies import is_json, json_body
from .errors import INTERNAL_ERROR, error_body
from .fields import CreateRoute
from .responses import send_json

log = logging.getLogger("vidgate.api")

Answer = tuple[int, Any, dict[str, str]]  # status, JSON body, extra headers


@dataclass(frozen=True)
class StatusRoute:
    render: Callable[[Task, AssetLinks], dict[str, Any]]
    headers: Callable[[Task], dict[str, str]] = lambda _task: {}


@dataclass(frozen=True)
class HotCreate:
    route: CreateRoute
    answer: StatusRoute  # how the created task is rendered


VIDEOS = StatusRoute(videos.render, videos.poll_headers)
GENERATIONS = StatusRoute(generations.render)
QUERY = StatusRoute(unified.render_query)

CREATES = {
    "/v1/videos": HotCreate(videos.CREATE, VIDEOS),
    "/v1/video/generations": HotCreate(generations.CREATE, GENERATIONS),
    "/v1/video/create": HotCreate(unified.CREATE,
                                  StatusRoute(lambda task, _links: unified.render_created(task))),
}

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


class HotRoutes:
    """Answers the hot routes for cached keys; `answer` says whether it did."""

    def __init__(self, services: Any) -> None:
        self.services = services
        self._base_urls: dict[tuple[Any, ...], str] = {}

    async def answer(self, scope: Scope, receive: Receive, send: Send) -> bool:
        if scope["type"] != "http":
            return False
        method, path = scope["method"], scope["path"]
        if method == "GET":
            found = match(path, scope["query_string"])
            create = None
        elif method == "POST":
            found = None
            create = CREATES.get(path)
        else:
            return False
        if found is None and create is None:
            return False
        headers = _headers(scope)
        if create is not None and not is_json(headers.get(b"content-type", b"").decode("latin-1")):
            return False  # multipart: FastAPI's form parser
        digest = bearer_digest(headers.get(b"authorization", b"").decode("latin-1"))
        key = self.services.key_cache.get(digest) if digest else None
        if key is None:
            return False
        try:
            await self.services.limiter.check(key.id, key.rpm_limit)
            if found is not None:
                answer = await self._read(scope, headers, key, *found)
            else:
                answer = await self._create(scope, receive, headers, key, create)
        except ApiError as error:
            answer = _error(error, path)
        except ClientDisconnect:
            return True  # nobody to answer; nothing was created
        except Exception:  # the same last resort as the FastAPI app's handler
            log.exception("unhandled error on %s", path)
            answer = _error(INTERNAL_ERROR, path)
        status, data, extra_headers = answer
        await send_json(send, data, status, extra_headers)
        return True

    async def _read(self, scope: Scope, headers: dict[bytes, bytes], key: Any,
                    route: StatusRoute, task_id: str) -> Answer:
        task = await self.services.tasks.get(key.id, task_id)
        return self._render(scope, headers, route, task)

    async def _create(self, scope: Scope, receive: Receive, headers: dict[bytes, bytes],
                      key: Any, create: HotCreate) -> Answer:
        services = self.services
        body = await json_body(_chunks(receive), headers.get(b"content-length", b"").decode(),
                               services.settings.max_upload_bytes)
        idempotency_key = headers.get(b"idempotency-key")
        task = await create.route.create(
            services.tasks, key.id, body,
            idempotency_key.decode("latin-1") if idempotency_key is not None else None)
        return self._render(scope, headers, create.answer, task)

    def _render(self, scope: Scope, headers: dict[bytes, bytes], route: StatusRoute,
                task: Task) -> Answer:
        links = self.services.links_at(task, self._base_url(scope, headers.get(b"host", b"")))
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


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """The request's headers by lower-case name; the first of repeated ones, as Starlette's
    `Headers.get` reads them."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        found.setdefault(name, value)
    return found


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    """The request body as it arrives (Starlette's `Request.stream`, without the Request)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


def _error(error: ApiError, path: str) -> Answer:
    return error.status, error_body(error, path), error.headers or {}
