"""Assembling vidgate's OpenAPI document (`/openapi.json`) from the routes' declarations.

FastAPI writes the skeleton: paths, path and query parameters, and the admin routes' pydantic
bodies; each route adds what only it knows with `openapi_extra=answers(...)`
(api/contract.py). `install` then adds to every operation what follows from the route's
own declarations, so that no route repeats it:

- its credential (the security scheme FastAPI writes for a dependency on `require_key` or
  `require_admin`): 401, and 429 (a key's rate limit) or 403 (not the admin token);
- a path parameter: 404;
- every route: 400 (a malformed URL or query parameter), 414 (api/edge.UrlGuard) and 503
  with Retry-After (the database out of reach, api/errors.DATABASE_UNAVAILABLE);
- every error status's body, in the shape of the route's family (api/errors.uses_envelope).

tests/test_openapi.py runs schemathesis against a live server over every operation, so the
document and the server cannot disagree unseen.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from .contract import STATUS_TEXT
from .errors import uses_envelope
from .schemas import COMPONENTS, ref

EVERY_ROUTE = (400, 414, 503)  # query parameters and UrlGuard; the database out of reach
# what each credential's scheme (api/auth.API_KEY_SCHEME, api/admin.ADMIN_SCHEME) may refuse
CREDENTIAL_ERRORS = {"ApiKey": (401, 429), "AdminToken": (401, 403)}
RETRY_AFTER = {"Retry-After": {"required": True, "description": "seconds to wait",
                               "schema": {"type": "string", "pattern": r"^\d+$"}}}
METHODS = ("get", "head", "post", "put", "patch", "delete")


def install(api: FastAPI) -> None:
    """Serve the completed document at /openapi.json (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            api.openapi_schema = document(api)
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]


def document(api: FastAPI) -> dict[str, Any]:
    doc = get_openapi(title=api.title, version=api.version, description=api.description,
                      routes=api.routes)
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                complete(path, operation)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):  # errors are 400s, as `Error`
        schemas.pop(unused, None)
    schemas.update(COMPONENTS)
    return doc


def complete(path: str, operation: dict[str, Any]) -> None:
    """Add what the route's declarations imply (module docstring) to its operation."""
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)  # a validation error is a 400 here (api/errors.install)
    statuses = set(EVERY_ROUTE)
    for requirement in operation.setdefault("security", []):  # [] : no credential
        for scheme in requirement:
            statuses |= set(CREDENTIAL_ERRORS[scheme])
    if any(param["in"] == "path" for param in operation.get("parameters", [])):
        statuses.add(404)
    error = ref("EnvelopeError" if uses_envelope(path) else "Error")
    for code in statuses | {int(code) for code in responses if int(code) >= 400}:
        response = responses.setdefault(str(code), {"description": STATUS_TEXT[code]})
        response["content"] = {"application/json": {"schema": error}}
        if code in (429, 503):
            response["headers"] = RETRY_AFTER
    for response in responses.values():  # FastAPI's placeholder beside a declared type
        content = response.get("content", {})
        if len(content) > 1 and content.get("application/json", {}).get("schema") == {}:
            del content["application/json"]
    operation["responses"] = dict(sorted(responses.items()))
