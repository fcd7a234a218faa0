"""Reading request bodies that may be JSON or multipart/form-data, the same way for every family."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import Request
from starlette.datastructures import UploadFile

from ..errors import ApiError, invalid


@dataclass
class Body:
    fields: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)

    def first(self, *names: str) -> Any:
        for name in names:
            value = self.fields.get(name)
            if value not in (None, ""):
                return value
        return None


def json_limit(max_upload_bytes: int) -> int:
    """A JSON body may carry one image as a base64 data: URL (4/3 of its bytes) plus fields."""
    return max_upload_bytes * 4 // 3 + 1024 * 1024


def is_json(content_type: str) -> bool:
    ctype = content_type.split(";")[0].strip().lower()
    return ctype in ("", "application/json") or ctype.endswith("+json")


async def read_body(request: Request, max_upload_bytes: int) -> Body:
    ctype = request.headers.get("content-type", "")
    if is_json(ctype):
        return await json_body(request.stream(), request.headers.get("content-length", ""),
                               max_upload_bytes)
    ctype = ctype.split(";")[0].strip().lower()
    if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return await _form(request, max_upload_bytes)
    raise ApiError(415, "invalid_request",
                   f"Unsupported Content-Type '{ctype}'; send JSON or multipart/form-data.")


async def json_body(chunks: AsyncIterator[bytes], content_length: str,
                    max_upload_bytes: int) -> Body:
    """A JSON object body, read as it arrives and refused with a 413 once it passes the
    limit, so a huge request never sits whole in memory."""
    limit = json_limit(max_upload_bytes)
    if content_length.isdigit() and int(content_length) > limit:
        raise _too_large(limit)
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
    return Body(_json(b"".join(parts)))


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "invalid_request", f"The request body is larger than {limit} bytes.")


def _json(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise invalid("The request body is empty; send a JSON object.")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise invalid("The request body must be a JSON object.")
    return data


async def _form(request: Request, max_upload_bytes: int) -> Body:
    try:
        form = await request.form(max_part_size=1024 * 1024)
    except Exception as exc:  # python-multipart raises several types for malformed bodies
        raise invalid(f"Malformed form body: {exc}") from exc
    fields: dict[str, Any] = {}
    files: dict[str, bytes] = {}
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read(max_upload_bytes + 1)
                if len(data) > max_upload_bytes:
                    raise ApiError(413, "invalid_request",
                                   f"'{name}' is larger than {max_upload_bytes} bytes.",
                                   param=name)
                files[name] = data
            elif name.endswith("[]"):
                fields.setdefault(name[:-2], []).append(value)
            elif "[" in name and name.endswith("]"):
                # bracketed keys such as input_reference[image_url] form a nested object
                outer, inner = name[:-1].split("[", 1)
                nested = fields.setdefault(outer, {})
                if isinstance(nested, dict):
                    nested[inner] = value
            else:
                fields[name] = value
    finally:
        await form.close()
    return Body(fields, files)
