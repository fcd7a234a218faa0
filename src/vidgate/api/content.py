"""Streaming stored assets with Range/206, ETag/304 and HEAD, from any blob store.

A local blob is handed to Starlette's FileResponse (read in 256 KiB chunks: uvicorn has no
sendfile); a remote one (S3) is streamed through in chunks, never held whole in memory.
"""

from __future__ import annotations

import re

from fastapi import Request
from starlette.responses import FileResponse, Response, StreamingResponse

from ..domain import CONTENT_TYPES
from ..errors import ApiError
from ..store.blobs import BlobStore

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")

# Starlette's FileResponse reads 64 KiB per worker-thread hop, which caps a 50 MB download at
# ~40% of nginx's speed on one core; 256 KiB per hop reaches ~90% while a download still holds
# only about a megabyte in memory (bench/RESULTS.md, "Downloads").
CHUNK_BYTES = 256 * 1024

def expired() -> ApiError:
    return ApiError(410, "video_expired", "The video's assets are no longer available.")


async def asset_response(request: Request, blobs: BlobStore, key: str, variant: str) -> Response:
    info = await blobs.stat(key)
    if info is None:
        raise expired()
    headers = {"etag": info.etag, "cache-control": "private, max-age=3600",
               "accept-ranges": "bytes"}
    wanted = request.headers.get("if-none-match")
    if wanted and info.etag in [t.strip() for t in wanted.split(",")]:
        return Response(status_code=304, headers=headers)
    media_type = CONTENT_TYPES[variant]
    local = blobs.local_path(key)
    if local is not None:
        response = FileResponse(local, media_type=media_type, headers=headers)
        response.chunk_size = CHUNK_BYTES
        return response

    start, end = 0, info.size - 1
    status = 200
    byte_range = _parse_range(request.headers.get("range"), info.size)
    if byte_range == "unsatisfiable":
        return Response(status_code=416, headers={**headers,
                                                  "content-range": f"bytes */{info.size}"})
    if byte_range is not None:
        start, end = byte_range
        status = 206
        headers["content-range"] = f"bytes {start}-{end}/{info.size}"
    headers["content-length"] = str(end - start + 1)
    if request.method == "HEAD" or info.size == 0:
        return Response(status_code=status, headers=headers, media_type=media_type)
    return StreamingResponse(blobs.read_range(key, start, end), status_code=status,
                             headers=headers, media_type=media_type)


def _parse_range(value: str | None, size: int):
    """One byte range of RFC 9110 (first, first-last or -suffix); several ranges or a
    malformed header are ignored (the whole body is sent, as the RFC allows)."""
    if not value:
        return None
    match = _RANGE.match(value.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None
    first, last = match.groups()
    if not first:
        length = int(last)
        if length == 0:
            return "unsatisfiable"
        return max(0, size - length), size - 1
    start = int(first)
    if start >= size:
        return "unsatisfiable"
    end = min(int(last), size - 1) if last else size - 1
    if end < start:
        return None
    return start, end
