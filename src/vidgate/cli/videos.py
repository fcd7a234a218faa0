"""`vidgate videos list|show|download|delete`: a key's videos over the API (any server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .client import Api, ApiKey, BaseUrl
from .help import command, new_app

videos_app = new_app("List, show, download and delete videos through the API.")

_EXTENSIONS = {"video": "mp4", "thumbnail": "webp", "spritesheet": "jpg"}


def _line(obj: dict) -> None:
    typer.echo(json.dumps(obj, separators=(",", ":")))


@command(videos_app, "list")
def videos_list(
    limit: int = typer.Option(20, metavar="N", min=1,
                              help="How many, newest first (pages through more than 100)."),
    base_url: str = BaseUrl,
    api_key: str = ApiKey,
) -> None:
    """The key's videos, newest first, one JSON object per line."""
    api = Api(base_url, api_key)
    try:
        after, left = None, limit
        while left > 0:
            params = {"limit": min(left, 100), **({"after": after} if after else {})}
            page = api.request("GET", "/videos", params=params).json()
            for video in page["data"]:
                _line(video)
            left -= len(page["data"])
            if not page["has_more"] or not page["data"]:
                break
            after = page["last_id"]
    finally:
        api.close()


@command(videos_app, "show")
def videos_show(video_id: str, base_url: str = BaseUrl, api_key: str = ApiKey) -> None:
    """One video object as a JSON line."""
    api = Api(base_url, api_key)
    try:
        _line(api.video(video_id).json())
    finally:
        api.close()


@command(videos_app, "download")
def videos_download(
    video_id: str,
    out: Annotated[Path | None, typer.Option(
        "-o", "--output", metavar="PATH",
        help="Where to write it (default: ID.mp4, .webp or .jpg).")] = None,
    variant: str = typer.Option("video", metavar="VARIANT",
                                help="video, thumbnail or spritesheet."),
    base_url: str = BaseUrl,
    api_key: str = ApiKey,
) -> None:
    """Download a finished video (or its thumbnail or spritesheet); prints the path."""
    target = out or Path(f"{video_id}.{_EXTENSIONS.get(variant, 'bin')}")
    api = Api(base_url, api_key)
    try:
        api.download(video_id, target, variant)
    finally:
        api.close()
    typer.echo(str(target.resolve()))


@command(videos_app, "delete")
def videos_delete(video_id: str, base_url: str = BaseUrl, api_key: str = ApiKey) -> None:
    """Delete a video; an unfinished one is cancelled first."""
    api = Api(base_url, api_key)
    try:
        _line(api.delete(video_id))
    finally:
        api.close()
