"""A fake of Runway's API (the subset vidgate speaks), held to what Runway publishes.

Read: the official `runwayml` Python SDK 5.24.0 (`_client.py`: Bearer auth, the
`X-Runway-Version` header, default version 2024-11-06, default host api.dev.runwayml.com with
`/v1` paths; `resources/image_to_video.py`, `resources/text_to_video.py`,
`types/image_to_video_create_params.py`, `types/text_to_video_create_params.py`: the
`promptImage` / `promptText` / `ratio` / `duration` / `model` / `seed` fields, the answer
`{"id", "estimatedCost"}`; `resources/tasks.py`, `types/task_retrieve_response.py`: statuses
PENDING, THROTTLED, RUNNING (with `progress`), SUCCEEDED (`output` URLs), FAILED (`failure`,
`failureCode`), CANCELLED, and DELETE answering no content), and Runway's docs:
docs.dev.runwayml.com api-details/errors (400 answers `{"error": "..."}`; 429, 502-504 may be
retried), errors/task-failures (SAFETY.INPUT.TEXT, INPUT_PREPROCESSING.INTERNAL),
assets/inputs (data URIs up to 5 MB, HTTPS URLs).

A task's fate comes from tags in its prompt: [moderation] fails with SAFETY.INPUT.TEXT,
[fail] with INPUT_PREPROCESSING.INTERNAL, [stuck] keeps running, [throttled] waits as
THROTTLED first. `duration` is required here although the SDK marks it optional for
gen4_turbo: Runway's default is not published, and vidgate always sends it. Results live
on a separate CDN host (another origin), as Runway's do.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
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

VERSION = "2024-11-06"
# gen4_turbo / gen4.5 image-to-video ratios (types/image_to_video_create_params.py), and
# gen4.5 text-to-video's two (types/text_to_video_create_params.py).
IMAGE_RATIOS = {"1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672"}
TEXT_RATIOS = {"1280:720", "720:1280"}
IMAGE_MODELS = {"gen4_turbo", "gen4.5"}
TEXT_MODELS = {"gen4.5"}


def _json(data, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _error(message: str, status: int = 400) -> Response:
    return _json({"error": message}, status)


@dataclass
class RunwayTask:
    id: str
    path: str
    body: dict
    width: int
    height: int
    seconds: int
    created: float = field(default_factory=time.monotonic)
    created_at: str = field(default_factory=lambda: datetime.datetime.now(
        datetime.UTC).isoformat().replace("+00:00", "Z"))
    cancelled: bool = False
    deleted: bool = False
    video_url: str | None = None

    def has(self, tag: str) -> bool:
        return f"[{tag}]" in (self.body.get("promptText") or "")


class FakeRunway:
    def __init__(self, *, key: str, clips: Clips, cdn: FileHost,
                 faults: Faults | None = None, job_seconds: float = 0.4) -> None:
        self.key = key
        self.clips = clips
        self.cdn = cdn
        self.faults = faults or Faults()
        self.job_seconds = job_seconds
        self.log = Log()
        self.tasks: dict[str, RunwayTask] = {}
        self.versions: list[str | None] = []   # X-Runway-Version of every API request
        self.cancels: list[str] = []
        self.origin = ""
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.origin + "/v1"

    def app(self):
        inner = Starlette(routes=[
            Route("/v1/image_to_video", self._image_to_video, methods=["POST"]),
            Route("/v1/text_to_video", self._text_to_video, methods=["POST"]),
            Route("/v1/tasks/{id}", self._get, methods=["GET"]),
            Route("/v1/tasks/{id}", self._delete, methods=["DELETE"]),
        ])
        return FaultMiddleware(inner, self.faults, _classify, self.log)

    # ---- requests -------------------------------------------------------------------

    def _gate(self, request: Request) -> Response | None:
        self.versions.append(request.headers.get("x-runway-version"))
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return _error("Invalid API key.", 401)
        if request.headers.get("x-runway-version") != VERSION:
            return _error("X-Runway-Version header is missing or unsupported.")
        return None

    async def _image_to_video(self, request: Request) -> Response:
        return await self._create(request, image=True)

    async def _text_to_video(self, request: Request) -> Response:
        return await self._create(request, image=False)

    async def _create(self, request: Request, *, image: bool) -> Response:
        if (denied := self._gate(request)) is not None:
            return denied
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _error("Request body is not JSON.")
        problem = _check(body, image)
        if problem:
            return _error(problem)
        width, height = (int(n) for n in body["ratio"].split(":"))
        task = RunwayTask(str(uuid.uuid4()), request.url.path, body, width,
                          height, body["duration"])
        with self._lock:
            self.tasks[task.id] = task
        if not (task.has("moderation") or task.has("fail") or task.has("stuck")):
            asyncio.get_running_loop().create_task(self._render(task))
        return _json({"id": task.id, "estimatedCost": {"credits": 5 * task.seconds}})

    async def _render(self, task: RunwayTask) -> None:
        video = await asyncio.to_thread(self.clips.get, task.width, task.height, task.seconds)
        task.video_url = self.cdn.add(f"{task.id}.mp4", video)

    async def _get(self, request: Request) -> Response:
        if (denied := self._gate(request)) is not None:
            return denied
        task = self.tasks.get(request.path_params["id"])
        if task is None or task.deleted:
            return _error("Task not found.", 404)
        return _json(self.view(task))

    async def _delete(self, request: Request) -> Response:
        if (denied := self._gate(request)) is not None:
            return denied
        task = self.tasks.get(request.path_params["id"])
        if task is None or task.deleted:
            return _error("Task not found.", 404)
        status = self.view(task)["status"]
        if status in ("PENDING", "THROTTLED", "RUNNING"):
            task.cancelled = True
        else:  # finished tasks are deleted, and cannot be fetched again
            task.deleted = True
        self.cancels.append(task.id)
        return Response(status_code=204)

    # ---- state ----------------------------------------------------------------------

    def view(self, task: RunwayTask) -> dict:
        base = {"id": task.id, "createdAt": task.created_at}
        if task.cancelled:
            return {**base, "status": "CANCELLED", "cost": {"credits": 0}}
        elapsed = time.monotonic() - task.created
        estimated = {"estimatedCost": {"credits": 5 * task.seconds}}
        if elapsed < self.job_seconds / 3:
            status = "THROTTLED" if task.has("throttled") else "PENDING"
            return {**base, **estimated, "status": status}
        if task.has("moderation"):
            return {**base, "status": "FAILED", "cost": {"credits": 0},
                    "failure": "The prompt text did not pass content moderation.",
                    "failureCode": "SAFETY.INPUT.TEXT"}
        if task.has("fail"):
            return {**base, "status": "FAILED", "cost": {"credits": 0},
                    "failure": "There was a problem performing content moderation.",
                    "failureCode": "INPUT_PREPROCESSING.INTERNAL"}
        if task.has("stuck") or elapsed < self.job_seconds or task.video_url is None:
            progress = 0.5 if task.has("stuck") else min(0.99, elapsed / self.job_seconds)
            return {**base, **estimated, "status": "RUNNING", "progress": round(progress, 3)}
        return {**base, "status": "SUCCEEDED", "cost": {"credits": 5 * task.seconds},
                "output": [task.video_url]}


def _check(body: object, image: bool) -> str | None:
    """The 400s Runway documents for the fields vidgate sends."""
    if not isinstance(body, dict):
        return "Request body must be an object."
    model = body.get("model")
    if model not in (IMAGE_MODELS if image else TEXT_MODELS):
        return f"model: {model!r} is not supported on this endpoint."
    prompt = body.get("promptText")
    required = not image or model == "gen4.5"  # gen4_turbo image-to-video may omit it
    if (required or prompt is not None) and (not isinstance(prompt, str) or not prompt
                                             or len(prompt) > 1000):
        return "promptText: must be a non-empty string of at most 1000 characters."
    if body.get("ratio") not in (IMAGE_RATIOS if image else TEXT_RATIOS):
        return f"ratio: {body.get('ratio')!r} is not a valid ratio for {model}."
    duration = body.get("duration")
    if not isinstance(duration, int) or isinstance(duration, bool) or (
            model == "gen4_turbo" and duration not in (5, 10)) or not 2 <= duration <= 10:
        return f"duration: {duration!r} is not a valid duration for {model}."
    if image:
        return _check_image(body.get("promptImage"))
    if "promptImage" in body:
        return "promptImage: not accepted by text_to_video."
    return None


def _check_image(value: object) -> str | None:
    if not isinstance(value, str):
        return "promptImage: a HTTPS URL or data URI is required."
    if value.startswith("https://"):
        return None
    head, _, payload = value.partition(",")
    if not head.startswith("data:image/") or not head.endswith(";base64"):
        return "promptImage: Invalid data URI."
    if len(value) > 5 * 1024 * 1024:
        return "promptImage: data URI is larger than 5MB."
    try:
        base64.b64decode(payload, validate=True)
    except binascii.Error:
        return "promptImage: Invalid data URI."
    return None


def _classify(method: str, path: str) -> str | None:
    if method == "DELETE":
        return "cancel"
    if method == "POST":
        return "submit"
    return "poll"
