"""Reading request bodies that may be JSON or multipart/form-data, the same way for every family.

Every body is read within a bound named after `VIDGATE_MAX_UPLOAD_BYTES` and refused with a
413 as soon as it passes it; what the client has not sent yet is drained by
`api/early_answers.py` so that the answer reaches it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartParser

from ..errors import ApiError, invalid

# What a multipart body may carry beside its file: the other fields and the parts' headers.
FORM_OVERHEAD_BYTES = 1024 * 1024
MAX_FIELD_BYTES = 1024 * 1024  # one non-file form field (a prompt is at most 32000 chars)


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


def form_limit(max_upload_bytes: int) -> int:
    return max_upload_bytes + FORM_OVERHEAD_BYTES


def mib(size: int) -> str:
    """A byte count as people configure it: `20 MiB`, `0.5 MiB`."""
    return f"{size / 2**20:g} MiB"


def too_large(max_upload_bytes: int, param: str | None = None) -> ApiError:
    """The one 413: it names the configured limit, not the derived byte bound of a format."""
    what = f"'{param}'" if param else "The request body"
    return ApiError(413, "invalid_request",
                    f"{what} is too large: uploads are limited to {mib(max_upload_bytes)}.",
                    param=param)


def is_json(content_type: str) -> bool:
    ctype = content_type.split(";")[0].strip().lower()
    return ctype in ("", "application/json") or ctype.endswith("+json")


async def read_body(request: Request, max_upload_bytes: int) -> Body:
    """JSON, multipart or url-encoded; a body that is a JSON object is read as JSON whatever
    its Content-Type says (`curl -d '{...}'` labels it form-urlencoded)."""
    content_type = request.headers.get("content-type", "")
    content_length = request.headers.get("content-length", "")
    if is_json(content_type):
        return await json_body(request.stream(), content_length, max_upload_bytes)
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        return await _multipart(request, content_length, max_upload_bytes)
    raw = await _bounded(request.stream(), content_length, json_limit(max_upload_bytes),
                         max_upload_bytes)
    if raw.lstrip()[:1] == b"{":
        return Body(_json(raw))
    if ctype == "application/x-www-form-urlencoded":
        return _urlencoded(raw)
    raise ApiError(415, "invalid_request",
                   f"Unsupported Content-Type '{ctype}'; send JSON or multipart/form-data.")


async def json_body(chunks: AsyncIterator[bytes], content_length: str,
                    max_upload_bytes: int) -> Body:
    """A JSON object body, read as it arrives and refused with a 413 once it passes the
    limit, so a huge request never sits whole in memory."""
    return Body(_json(await _bounded(chunks, content_length, json_limit(max_upload_bytes),
                                     max_upload_bytes)))


async def _bounded(chunks: AsyncIterator[bytes], content_length: str, limit: int,
                   max_upload_bytes: int) -> bytes:
    parts = [chunk async for chunk in _limited(chunks, content_length, limit, max_upload_bytes)]
    return b"".join(parts)


async def _limited(chunks: AsyncIterator[bytes], content_length: str, limit: int,
                   max_upload_bytes: int) -> AsyncIterator[bytes]:
    """The body's chunks, refused with the 413 before the first one when Content-Length
    already says too much, else as soon as the running total passes `limit`."""
    if content_length.isascii() and content_length.isdigit() and int(content_length) > limit:
        raise too_large(max_upload_bytes)
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise too_large(max_upload_bytes)
        yield chunk


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


def _urlencoded(raw: bytes) -> Body:
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError as exc:
        raise invalid("The form body is not valid UTF-8.") from exc
    return Body(_fields(pairs))


async def _multipart(request: Request, content_length: str, max_upload_bytes: int) -> Body:
    stream = _limited(request.stream(), content_length, form_limit(max_upload_bytes),
                      max_upload_bytes)
    parser = MultiPartParser(request.headers, stream, max_part_size=MAX_FIELD_BYTES)
    try:
        form = await parser.parse()
    except ApiError:
        raise
    except Exception as exc:  # python-multipart raises several types for malformed bodies
        raise invalid(f"Malformed form body: {exc}") from exc
    files: dict[str, bytes] = {}
    values: list[tuple[str, str]] = []
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read(max_upload_bytes + 1)
                if len(data) > max_upload_bytes:
                    raise too_large(max_upload_bytes, param=name)
                files[name] = data
            else:
                values.append((name, value))
    finally:
        await form.close()
    return Body(_fields(values), files)


def _fields(items: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Form fields as a JSON body would hold them: `name[]` collects a list, `outer[inner]`
    (such as input_reference[image_url]) builds a nested object."""
    fields: dict[str, Any] = {}
    for name, value in items:
        if name.endswith("[]"):
            values = fields.setdefault(name[:-2], [])
            if isinstance(values, list):
                values.append(value)
        elif "[" in name and name.endswith("]"):
            outer, inner = name[:-1].split("[", 1)
            nested = fields.setdefault(outer, {})
            if isinstance(nested, dict):
                nested[inner] = value
        else:
            fields[name] = value
    return fields
