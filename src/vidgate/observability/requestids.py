"""Request ids: `X-Request-Id` from the client (when it is short and plain) or a new one,
returned on every response and set in a context variable for the logs (logs.py) and the
task a request creates (tasks.py keeps it in the task's params, the engine logs with it).
"""

from __future__ import annotations

import contextvars
import itertools
import re
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
MAX_LENGTH = 128
# Safe in a header, a log line and a JSON string without escaping.
_SAFE = re.compile(rb"[A-Za-z0-9._:+/=-]{1,%d}" % MAX_LENGTH)

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "vidgate_request_id", default=None)


def current() -> str | None:
    """The id of the request (or task) this code runs for, if any."""
    return request_id.get()


# A random prefix per process and a counter: unique across processes without a random draw
# per request (os.urandom was a tenth of a fast-path status read).
_PREFIX = "req_" + secrets.token_hex(8) + "_"
_COUNTER = itertools.count(1)


def new_id() -> str:
    return f"{_PREFIX}{next(_COUNTER):x}"


def accept(value: bytes | None) -> str:
    """The client's id when it is acceptable, else a new one."""
    if value is not None and _SAFE.fullmatch(value):
        return value.decode("ascii")
    return new_id()


class RequestIds:
    """ASGI middleware: every HTTP response carries `X-Request-Id`, and code serving the
    request sees it through `current()`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = None
        for name, value in scope["headers"]:
            if name == HEADER:
                given = value
                break
        rid = accept(given)
        header = (HEADER, rid.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = request_id.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
