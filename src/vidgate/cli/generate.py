"""`vidgate generate`: one video from a prompt, from the command line, with live progress.

It speaks the public API like any client (create, poll honouring `openai-poll-after-ms`,
download), so it works against any vidgate, local or not. Ctrl-C while waiting asks whether
to cancel the task (DELETE) or leave it running.
"""

from __future__ import annotations

import mimetypes
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .client import Api, ApiKey, BaseUrl, fail, poll_after
from .progress import display_for

FINISHED = ("completed", "failed")
INTERRUPTED = 130  # what a shell reports for a command ended by SIGINT


def generate(
    prompt: str = typer.Argument(..., help="What the video shows."),
    model: str = typer.Option(None, metavar="MODEL", help="e.g. sora-2 (default: the server's)."),
    size: str = typer.Option(None, metavar="WxH", help="e.g. 1280x720 (default: the model's)."),
    seconds: int = typer.Option(None, metavar="N", help="Length (default: the model's)."),
    image: str = typer.Option(None, metavar="PATH_OR_URL",
                              help="A first frame: a local image file or an http(s) URL."),
    out: Annotated[Path | None, typer.Option(
        "-o", "--output", metavar="PATH", help="Where to save the MP4 (default: ID.mp4).")] = None,
    base_url: str = BaseUrl,
    api_key: str = ApiKey,
) -> None:
    """Make a video: create a task, show its progress, download the MP4, print its path."""
    _check_paths(image, out)  # before anything is created or charged
    api = Api(base_url, api_key)
    console = Console(stderr=True)
    video_id = None
    try:
        video = _create(api, prompt, model, size, seconds, image)
        video_id = video["id"]
        console.print(f"created {video_id} ({video['model']}, {video['size']}, "
                      f"{video['seconds']} s)", highlight=False)
        video = _watch(api, video, console)
        if video["status"] == "failed":
            error = video.get("error") or {}
            fail(f"{video_id} failed: {error.get('code')}: {error.get('message')}")
        target = out or Path(f"{video_id}.mp4")
        size_bytes = api.download(video_id, target)
    except KeyboardInterrupt:
        if video_id is None:
            fail("interrupted before the task was created; if the request reached the "
                 "server, `vidgate videos list` shows it", INTERRUPTED)
        _interrupted(api, video_id)
    finally:
        api.close()
    console.print(f"saved {video_id} ({size_bytes / 1e6:.1f} MB)", highlight=False)
    typer.echo(str(target.resolve()))


def _is_url(image: str) -> bool:
    return image.startswith(("http://", "https://"))


def _check_paths(image: str | None, out: Path | None) -> None:
    if image is not None and not _is_url(image) and not Path(image).is_file():
        fail(f"--image: no such file: {image} (give a local image file or an http(s) URL)", 2)
    if out is not None and not out.resolve().parent.is_dir():
        fail(f"--output: no such folder: {out.resolve().parent}", 2)


def _create(api: Api, prompt: str, model: str | None, size: str | None,
            seconds: int | None, image: str | None) -> dict:
    fields = {"prompt": prompt, "model": model, "size": size,
              "seconds": None if seconds is None else str(seconds)}
    fields = {k: v for k, v in fields.items() if v is not None}
    if image is None:
        return api.request("POST", "/videos", json=fields).json()
    if _is_url(image):
        return api.request("POST", "/videos", json={**fields, "image_url": image}).json()
    path = Path(image)
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    with open(path, "rb") as f:  # multipart, as the openai SDK sends input_reference
        return api.request("POST", "/videos", data=fields,
                           files={"input_reference": (path.name, f, kind)}).json()


def _watch(api: Api, video: dict, console: Console) -> dict:
    """Poll until the task finishes, showing its real state and progress."""
    display = display_for(console, video["id"])
    wait = 1.0
    try:
        while True:
            display.update(video["status"], video.get("progress") or 0)
            if video["status"] in FINISHED:
                return video
            time.sleep(wait)  # the pace the server asked for, not a synchronisation guess
            response = api.video(video["id"])
            video, wait = response.json(), poll_after(response)
    finally:
        display.close()


def _interrupted(api: Api, video_id: str) -> None:
    """Ctrl-C while waiting: cancel the task, or leave it running and say how to fetch it."""
    try:
        cancel = typer.confirm(f"\nCancel {video_id}?", default=False, err=True)
    except (typer.Abort, KeyboardInterrupt, EOFError):
        cancel = False
    if cancel:
        api.delete(video_id)
        fail(f"cancelled and deleted {video_id}", INTERRUPTED)
    fail(f"{video_id} keeps running. Later: `vidgate videos show {video_id}`, "
         f"`vidgate videos download {video_id} -o out.mp4`", INTERRUPTED)
