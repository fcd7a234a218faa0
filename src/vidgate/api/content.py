"""Streaming stored assets: Range/206 and HEAD via Starlette's FileResponse, plus ETag/304."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from fastapi import Request
from starlette.responses import FileResponse, Response

from ..domain import CONTENT_TYPES


def _etag(path: Path, stat: os.stat_result) -> str:
    # Stored assets never change in place (a new attempt writes a new key), so the path and
    # size identify the bytes.
    digest = hashlib.sha256(f"{path}:{stat.st_size}".encode()).hexdigest()[:32]
    return f'"{digest}"'


def asset_response(request: Request, variant: str, path: Path) -> Response:
    stat = os.stat(path)
    etag = _etag(path, stat)
    headers = {"etag": etag, "cache-control": "private, max-age=3600"}
    wanted = request.headers.get("if-none-match")
    if wanted and etag in [t.strip() for t in wanted.split(",")]:
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type=CONTENT_TYPES[variant], headers=headers,
                        stat_result=stat)
