"""The fast path: status reads and JSON creates of the three families, before FastAPI.

Clients poll a task's status every second or so for as long as it runs, and creates are the
other half of their traffic. FastAPI's middleware, routing and dependency solving cost
several times the work of a status read (bench/RESULTS.md), so `HotRoutes` is plain ASGI
wrapped around the FastAPI app (`app.create_app`; middleware vidgate adds wraps both). It
answers the common case: a well-formed status read or a JSON create, with a key this
process verified in the last `VIDGATE_KEY_CACHE_SECONDS`. Everything else (an unknown or
missing key, multipart bodies, a malformed query, any other route or method) goes on to
FastAPI, which authenticates from scratch.

What it answers and how comes from the route table (`api/families.py`): the same
`authenticate`, the same `families.create` / `families.read` handlers and the same
`errors.error_answer` as FastAPI's routes (tests/test_hot_routes.py compares the two paths'
answers byte for byte). Per request it builds no Request object and solves no dependencies.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import ApiError
from ..observability.metrics import ROUTE_KEY
from ..services import Services
from . import families
from .auth import authenticate
from .bodies import is_json, json_body
from .errors import error_answer, unexpected_error
from .responses import send_json


class HotRoutes:
    """ASGI: answers the hot routes for cached keys and hands every other request to `app`."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services
        self._base_urls: dict[tuple[Any, ...], str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not await self.answer(scope, receive, send):
            await self.app(scope, receive, send)

    async def answer(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer the request if it is a hot route with a cached key; say whether it did."""
        if scope["type"] != "http":
            return False
        method, path = scope["method"], scope["path"]
        if method == "GET":
            found = families.match_read(path, scope["query_string"])
            create = None
        elif method == "POST":
            found = None
            create = families.CREATES.get(path)
        else:
            return False
        if found is None and create is None:
            return False
        headers = _headers(scope)
        if create is not None and not is_json(headers.get(b"content-type", b"").decode("latin-1")):
            return False  # multipart: FastAPI's form parser
        services = self.services
        try:
            key = await authenticate(services, headers.get(b"authorization", b"").decode("latin-1"),
                                     cached_only=True)
            if key is None:
                return False
            base_url = self._base_url(scope, headers.get(b"host", b""))
            if found is not None:
                answer = await families.read(services, found[0], key.id, found[1], base_url)
            else:
                body = await json_body(_chunks(receive),
                                       headers.get(b"content-length", b"").decode(),
                                       services.settings.max_upload_bytes)
                idempotency_key = headers.get(b"idempotency-key")
                answer = await families.create(
                    services, create, key.id, body,
                    None if idempotency_key is None else idempotency_key.decode("latin-1"),
                    base_url)
        except ApiError as error:
            answer = error_answer(error, path)
        except ClientDisconnect:
            return True  # nobody to answer; nothing was created
        except Exception as exc:  # the same last resort as the FastAPI app's handler
            answer = error_answer(unexpected_error(exc, path), path)
        status, data, extra_headers = answer
        # the metrics' route label: the template from the route table, never the raw path
        scope[ROUTE_KEY] = create.create_path if create is not None else found[0].status_path
        await send_json(send, data, status, extra_headers)
        return True

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
