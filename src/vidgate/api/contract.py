"""What a route declares of itself for the OpenAPI document (assembled by api/openapi.py).

A route passes `openapi_extra=answers(...)`: its success answer, the error statuses it gives
itself (their bodies are filled in by api/openapi.py, in the family's shape), and, as a
`FormBody`, the body it reads with api/bodies.read_body, which FastAPI cannot see.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .schemas import Schema

# Statuses and what they mean, for the document's descriptions.
STATUS_TEXT = {
    200: "OK", 201: "Created", 206: "Partial content (a Range request)",
    304: "Not modified (If-None-Match)", 400: "Invalid request", 401: "Missing or unknown key",
    402: "Insufficient balance", 403: "Forbidden", 404: "Not found",
    409: "Idempotency-Key reused with a different request", 410: "Assets expired",
    413: "Body too large", 414: "URL too long", 415: "Unsupported Content-Type",
    416: "Range not satisfiable", 429: "Rate limited", 503: "Temporarily unavailable",
}
READ_BODY_ERRORS = (400, 413, 415)  # api/bodies.read_body
IDEMPOTENCY_KEY = {"name": "Idempotency-Key", "in": "header", "required": False,
                   "description": "The same key and request from the same owner returns the "
                                  "same task; a different request with it is a 409.",
                   "schema": {"type": "string", "maxLength": 255}}
FILE = {"type": "string", "format": "binary"}


@dataclass(frozen=True)
class FormBody:
    """A body read by api/bodies.read_body: a JSON object, or a form (multipart or
    url-encoded) whose values are text, and in multipart also file parts (`files`)."""

    json: dict[str, Schema]
    form: dict[str, Schema]
    files: tuple[str, ...] = ()
    json_required: tuple[str, ...] = ()
    form_required: tuple[str, ...] = ()
    example: dict[str, Any] | None = None  # a JSON body the default catalog accepts

    def request_body(self) -> dict[str, Any]:
        def schema(properties: dict[str, Schema], required: tuple[str, ...]) -> Schema:
            return {"type": "object", "properties": properties,
                    **({"required": list(required)} if required else {})}

        texts = {name: value for name, value in self.form.items() if name not in self.files}
        files = {name: FILE for name in self.files}
        example = {"example": self.example} if self.example else {}
        content = {"application/json": {"schema": schema(self.json, self.json_required),
                                        **example},
                   "multipart/form-data": {"schema": schema({**texts, **files},
                                                            self.form_required)}}
        if not set(self.form_required) & set(self.files):  # url-encoded carries no file
            content["application/x-www-form-urlencoded"] = {
                "schema": schema(texts, self.form_required)}
        return {"required": True, "content": content}


def answers(ok: Schema | dict[str, Schema] | None = None, *, status: int = 200,
            errors: Iterable[int] = (), body: FormBody | None = None,
            idempotent: bool = False, more: dict[int, dict] | None = None) -> dict[str, Any]:
    """A route's `openapi_extra`: its success answer (a JSON schema, or media type ->
    schema), the error statuses only it gives, and the body it reads itself."""
    content = None
    if ok is not None:
        by_type = ok if "$ref" not in ok and "type" not in ok else {"application/json": ok}
        content = {media: {"schema": schema} for media, schema in by_type.items()}
    responses: dict[str, Any] = {str(status): {"description": STATUS_TEXT[status],
                                               **({"content": content} if content else {})}}
    for code, response in (more or {}).items():
        responses[str(code)] = {"description": STATUS_TEXT[code], **response}
    statuses = set(errors) | (set(READ_BODY_ERRORS) if body else set())
    for code in sorted(statuses):
        responses[str(code)] = {"description": STATUS_TEXT[code]}
    extra: dict[str, Any] = {"responses": responses}
    if body is not None:
        extra["requestBody"] = body.request_body()
    if idempotent:
        extra["parameters"] = [IDEMPOTENCY_KEY]
    return extra
