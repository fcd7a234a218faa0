"""Streaming stored assets with Range/206, ETag/304 and HEAD, from any blob store.

A local blob is sent straight from the page cache (`MappedFileResponse`); a remote one (S3)
is streamed through in chunks, never held whole in memory.
"""

from __future__ import annotations

import mmap
import re
from typing import BinaryIO

from fastapi import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from ..domain import CONTENT_TYPES
from ..errors import expired
from ..store.blobs import BlobStore
from .contract import FILE, answers

# What a download answers: the asset, a part of it, "not modified", and the asset's own errors
# (not ready: 400; expired: 410; a range past its end: 416)
ASSET = {media: FILE for media in dict.fromkeys(CONTENT_TYPES.values())}


def asset_answers(*errors: int) -> dict:
    """The `openapi_extra` of a route answered by `asset_response`, plus its own `errors`."""
    return answers(ASSET, errors=(400, 404, 410, 416, *errors),
                   more={206: {"content": {m: {"schema": s} for m, s in ASSET.items()}},
                         304: {}})

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")

# How much of a file is mapped at a time: the most a download adds to the process's RSS
# (more only while a slow client's socket holds a window), and big enough that mapping
# costs nothing next to the copy into the socket.
WINDOW_BYTES = 1024 * 1024


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
    local = blobs.local_path(key)
    if local is not None:
        try:
            file = open(local, "rb")  # closed by the response when it is sent
        except FileNotFoundError:
            raise expired() from None
        return MappedFileResponse(file, start, end, status_code=status, headers=headers,
                                  media_type=media_type)
    return StreamingResponse(blobs.read_range(key, start, end), status_code=status,
                             headers=headers, media_type=media_type)


class MappedFileResponse(Response):
    """Bytes `start`..`end` of an open file, sent from memory-mapped windows.

    uvicorn has no sendfile, and Starlette's FileResponse reads each chunk into a new bytes
    object in a worker thread before the socket copies it again: about half of nginx's
    speed on one core (bench/RESULTS.md, "Downloads"). Handing the server a view of a mapped
    window lets the kernel copy from the page cache into the socket once. A window is
    unmapped as soon as nothing refers to it; if the server keeps a view for a slow client,
    it lives until that view is sent. Safe because stored blobs never change in place (a
    new version is a new file moved into place), so a mapped file is never truncated.
    A page not yet in the page cache is read from disk inside the socket write, on the
    event loop; downloads of just-mirrored videos, the common case, are cached already.
    """

    def __init__(self, file: BinaryIO, start: int, end: int, *, status_code: int,
                 headers: dict[str, str], media_type: str) -> None:
        super().__init__(status_code=status_code, headers=headers, media_type=media_type)
        self.file = file
        self.start = start
        self.end = end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})
            offset = self.start
            while offset <= self.end:
                base = offset - offset % mmap.ALLOCATIONGRANULARITY
                length = min(base + WINDOW_BYTES, self.end + 1) - base
                window = mmap.mmap(self.file.fileno(), length, offset=base,
                                   access=mmap.ACCESS_READ)
                view = memoryview(window)[offset - base:]
                offset = base + length
                await send({"type": "http.response.body", "body": view,
                            "more_body": offset <= self.end})
                del view, window  # unmapped here, or when the server lets go of the view
        finally:
            self.file.close()


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
