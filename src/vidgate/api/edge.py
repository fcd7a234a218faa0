"""Bounds every route's inputs share: 64-bit integers, database-safe text, clean URLs.

A value the database cannot hold (an integer past 64 bits, a NUL character, which
PostgreSQL refuses in text) must be a 400 naming the parameter here, never a 500 from the
driver. Route modules take their parameter types from this module.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import unquote_to_bytes

from fastapi import Query
from pydantic import AfterValidator
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import ApiError, invalid
from .errors import error_answer
from .responses import send_json

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MAX = 2**31 - 1
MAX_URL_BYTES = 8192

# A query integer that fits a BIGINT column.
Int64Query = Annotated[int | None, Query(ge=INT64_MIN, le=INT64_MAX)]


def check_text(value: str, param: str) -> str:
    """Text the database can store: no NUL character."""
    if "\x00" in value:
        raise invalid(f"'{param}' must not contain NUL characters.", param=param)
    return value


def _no_nul(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


# A pydantic string field the database can store.
Text = Annotated[str, AfterValidator(_no_nul)]


class UrlGuard:
    """ASGI: refuse a path or query string that holds a NUL (raw or %00) or is too long,
    before any route reads it, so that no handler has to remember to."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            error = _url_error(scope)
            if error is not None:
                status, body, headers = error_answer(error, scope["path"])
                await send_json(send, body, status, headers)
                return
        await self.app(scope, receive, send)


def _url_error(scope: Scope) -> ApiError | None:
    raw_path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
    query = scope.get("query_string", b"")
    if len(raw_path) + len(query) > MAX_URL_BYTES:
        return ApiError(414, "invalid_request", f"The URL is longer than {MAX_URL_BYTES} bytes.")
    # a NUL can only arrive percent-encoded; decode only when one might be there
    if "\x00" in scope["path"] or (b"%00" in query and b"\x00" in unquote_to_bytes(query)):
        return invalid("The URL must not contain NUL characters.")
    return None
