"""A fake of Luma's Dream Machine API (the video subset vidgate speaks), held to what Luma
publishes.

Read: the official `lumaai` Python SDK 1.21.0 (`_client.py`: Bearer auth, base URL
https://api.lumalabs.ai/dream-machine/v1; `resources/generations/generations.py`: create is
`POST /generations/video`, get `GET /generations/{id}`, delete `DELETE /generations/{id}`
answering no content; `types/generation_create_params.py`: `model` ray-2 / ray-flash-2,
`aspect_ratio`, `resolution` 540p / 720p / 1080p / 4k, `duration` "5s" / "9s", `keyframes`
`frame0` `{"type": "image", "url"}`, `loop`, `concepts`; `types/generation.py`: `id`, `state`
queued / dreaming / completed / failed, `failure_reason`, `assets.video`, `created_at`,
`model`, `generation_type`, `request`), docs.lumalabs.ai "Video Generation" (the same create
as `POST /generations`; keyframe images only as URLs: "currently this is the only way to
pass an image"), and the Error object `{"detail": ...}` of github.com/lumalabs/lumaai-api
openapi.yaml.

A generation's fate comes from tags in its prompt: [moderation] and [fail] fail (Luma
publishes no failure codes; the reasons' wording here is ours), [stuck] keeps dreaming.
Pixel sizes: 16:9 at 540p / 720p / 1080p is 960x540 / 1280x720 / 1920x1080, 9:16 the same
turned; the fake renders nothing else. Videos live on a separate CDN host.
"""

from __future__ import annotations

import asyncio
import datetime
import threading
import time
import uuid
from dataclasses import dataclass, field

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .clips import Clips, Log
from .faults import FaultMiddleware, Faults
from .upstream import FileHost

MODELS = {"ray-2", "ray-flash-2"}
ASPECT_RATIOS = {"1:1", "16:9", "9:16", "4:3", "3:4", "21:9", "9:21"}
RESOLUTIONS = {"540p", "720p", "1080p", "4k"}
DURATIONS = {"5s": 5, "9s": 9}
_HEIGHTS = {"540p": 540, "720p": 720, "1080p": 1080}
PREFIX = "/dream-machine/v1"


def pixels(aspect_ratio: str, resolution: str) -> tuple[int, int] | None:
    """The frame the fake renders; None for combinations it does not model."""
    short = _HEIGHTS.get(resolution)
    if short is None or aspect_ratio not in ("16:9", "9:16"):
        return None
    long = short * 16 // 9
    return (long, short) if aspect_ratio == "16:9" else (short, long)


def _json(data, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _detail(message: str, status: int = 400) -> Response:
    return _json({"detail": message}, status)


@dataclass
class Generation:
    id: str
    path: str
    body: dict
    width: int
    height: int
    seconds: int
    created: float = field(default_factory=time.monotonic)
    created_at: str = field(default_factory=lambda: datetime.datetime.now(
        datetime.UTC).isoformat().replace("+00:00", "Z"))
    deleted: bool = False
    video_url: str | None = None

    def has(self, tag: str) -> bool:
        return f"[{tag}]" in (self.body.get("prompt") or "")


class FakeLuma:
    def __init__(self, *, key: str, clips: Clips, cdn: FileHost,
                 faults: Faults | None = None, job_seconds: float = 0.4) -> None:
        self.key = key
        self.clips = clips
        self.cdn = cdn
        self.faults = faults or Faults()
        self.job_seconds = job_seconds
        self.log = Log()
        self.generations: dict[str, Generation] = {}
        self.deletes: list[str] = []
        self.origin = ""
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.origin + PREFIX

    def app(self):
        inner = Starlette(routes=[
            Route(PREFIX + "/generations/video", self._create, methods=["POST"]),
            Route(PREFIX + "/generations", self._create, methods=["POST"]),
            Route(PREFIX + "/generations/{id}", self._get, methods=["GET"]),
            Route(PREFIX + "/generations/{id}", self._delete, methods=["DELETE"]),
        ])
        return FaultMiddleware(inner, self.faults, _classify, self.log)

    def _denied(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return _detail("Invalid API key provided", 401)
        return None

    async def _create(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _detail("Request body is not JSON.")
        problem = _check(body)
        if problem:
            return _detail(problem)
        size = pixels(body.get("aspect_ratio", "16:9"), body.get("resolution", "720p"))
        if size is None:
            return _detail("The fake renders only 16:9 and 9:16 at 540p, 720p and 1080p.")
        gen = Generation(str(uuid.uuid4()), request.url.path, body, *size,
                         DURATIONS[body.get("duration", "5s")])
        with self._lock:
            self.generations[gen.id] = gen
        if not (gen.has("moderation") or gen.has("fail") or gen.has("stuck")):
            asyncio.get_running_loop().create_task(self._render(gen))
        return _json(self.view(gen), 201)

    async def _render(self, gen: Generation) -> None:
        video = await asyncio.to_thread(self.clips.get, gen.width, gen.height, gen.seconds)
        gen.video_url = self.cdn.add(f"{gen.id}.mp4", video)

    async def _get(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        gen = self.generations.get(request.path_params["id"])
        if gen is None or gen.deleted:
            return _detail("Generation not found", 404)
        return _json(self.view(gen))

    async def _delete(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        gen = self.generations.get(request.path_params["id"])
        if gen is None or gen.deleted:
            return _detail("Generation not found", 404)
        gen.deleted = True
        self.deletes.append(gen.id)
        return Response(status_code=204)

    def view(self, gen: Generation) -> dict:
        elapsed = time.monotonic() - gen.created
        obj = {"id": gen.id, "generation_type": "video", "model": gen.body["model"],
               "created_at": gen.created_at, "request": gen.body, "failure_reason": None,
               "assets": None}
        if elapsed < self.job_seconds / 3:
            return {**obj, "state": "queued"}
        if gen.has("moderation"):
            return {**obj, "state": "failed",
                    "failure_reason": "The prompt was blocked by content moderation."}
        if gen.has("fail"):
            return {**obj, "state": "failed",
                    "failure_reason": "The generation failed. Please try again."}
        if gen.has("stuck") or elapsed < self.job_seconds or gen.video_url is None:
            return {**obj, "state": "dreaming"}
        return {**obj, "state": "completed",
                "assets": {"video": gen.video_url, "image": None, "progress_video": None}}


def _check(body: object) -> str | None:
    if not isinstance(body, dict):
        return "Request body must be an object."
    if body.get("model") not in MODELS:
        return f"model: must be one of {sorted(MODELS)}"
    if "prompt" in body and not isinstance(body["prompt"], str):
        return "prompt: must be a string"
    for name, allowed in (("aspect_ratio", ASPECT_RATIOS), ("resolution", RESOLUTIONS),
                          ("duration", DURATIONS)):
        if name in body and body[name] not in allowed:
            return f"{name}: must be one of {sorted(allowed)}"
    keyframes = body.get("keyframes")
    if keyframes is not None:
        frame = keyframes.get("frame0") if isinstance(keyframes, dict) else None
        if not isinstance(frame, dict) or frame.get("type") != "image":
            return "keyframes.frame0: an image keyframe is required"
        url = frame.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return "keyframes.frame0.url: must be an image URL"
    return None


def _classify(method: str, path: str) -> str | None:
    if method == "DELETE":
        return "cancel"
    if method == "POST":
        return "submit"
    return "poll"
