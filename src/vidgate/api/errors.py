"""Rendering errors in the shape of the route family that received the request.

Family A (`/v1/videos`, `/files`) answers with OpenAI's error object; families B and C
(`/v1/video/...`) answer with the gateway envelope that also carries OpenAI's object.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import compile_path

from ..errors import ApiError
from ..store.database import is_unreachable
from .responses import json_response

log = logging.getLogger("vidgate.api")

# Canonical codes are the gateway's (spec section 7); OpenAI clients know these names instead.
_OPENAI_CODES = {"unauthorized": "invalid_api_key", "task_not_exist": "video_not_found"}

# What a client sees of a bug: no detail, the detail goes to the log.
INTERNAL_ERROR = ApiError(500, "internal_error", "The server had an error processing the request.",
                          type="server_error")


# The database is down or restarting: the request did nothing; a retry will likely succeed.
DATABASE_UNAVAILABLE = ApiError(
    503, "service_unavailable", "The service is temporarily unavailable; retry shortly.",
    type="server_error", headers={"Retry-After": "2"})


def unexpected_error(exc: BaseException, path: str) -> ApiError:
    """What a client sees of an exception no route handled: 503 when the database is out of
    reach, else the 500 with no detail (the detail goes to the log)."""
    if is_unreachable(exc):
        log.warning("database unreachable on %s: %r", path, exc)
        return DATABASE_UNAVAILABLE
    log.exception("unhandled error on %s", path, exc_info=exc)
    return INTERNAL_ERROR


def uses_envelope(path: str) -> bool:
    return path.startswith("/v1/video/")


def error_body(error: ApiError, path: str) -> dict:
    if uses_envelope(path):
        return {
            "code": error.code,
            "message": error.message,
            "data": None,
            "error": {
                "message": error.message,
                "type": error.type,
                "param": error.param,
                "code": error.code,
            },
        }
    return {
        "error": {
            "message": error.message,
            "type": error.type,
            "param": error.param,
            "code": _OPENAI_CODES.get(error.code, error.code),
        }
    }


def error_answer(error: ApiError, path: str) -> tuple[int, dict, dict[str, str]]:
    """Status, body and headers of an error on `path`: what both paths send."""
    return error.status, error_body(error, path), error.headers or {}


def error_response(error: ApiError, path: str) -> Response:
    status, body, headers = error_answer(error, path)
    return json_response(body, status, headers)


def allowed_methods(document: dict, path: str) -> str | None:
    """Every method the document's routes take on `path`: Starlette's 405 names only those of
    the first route that matched it (`/v1/videos` takes GET and POST), RFC 9110 all of them."""
    methods = {method.upper() for template, item in document["paths"].items()
               if compile_path(template)[0].match(path) for method in item}
    return ", ".join(sorted(methods)) or None


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return error_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body")]
        param = loc[0] if loc else None
        message = f"Invalid value for '{param}': {first.get('msg', 'invalid')}" if param else (
            "Invalid request."
        )
        return error_response(ApiError(400, "invalid_request", message, param=param),
                              request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        codes = {404: "not_found", 405: "method_not_allowed"}
        message = "Unknown URL." if exc.status_code == 404 else str(exc.detail)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(app.openapi(), request.url.path) or \
                headers.get("Allow", "")
        error = ApiError(exc.status_code, codes.get(exc.status_code, "invalid_request"), message,
                         headers=headers)
        return error_response(error, request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        return error_response(unexpected_error(exc, request.url.path), request.url.path)
