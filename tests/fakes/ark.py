"""A fake Volcengine Ark / BytePlus ModelArk content-generation API (Seedance), on 127.0.0.1.

Written from:
- `volcengine-python-sdk` 5.0.54 (`volcengine-ark-runtime`): volcenginesdkarkruntime/
  resources/content_generation/tasks.py (create/get/delete paths and the create body's
  fields), types/content_generation/content_generation_task.py (the task object: id, model,
  status, error{code,message}, content{video_url}, seed, resolution, ratio, duration...),
  content_generation_task_id.py (`{"id"}` answer), create_task_content_param.py (text and
  image_url items, `role`), _constants.py (the Volcengine base URL).
- BytePlus ModelArk "Video Generation API" (docs.byteplus.com/docs/ModelArk/1520757) and the
  "Cancel or delete a video generation task" page: DELETE cancels a `queued` task (it becomes
  `cancelled`), refuses a `running` or `cancelled` one, and deletes the record of a
  `succeeded`/`failed`/`expired` one. The status and body of that refusal are not documented;
  the fake answers 400 with an `error` object.
- Ark API reference, error codes: content-safety refusals are 400 BadRequest with codes such
  as `InputTextSensitiveContentDetected`, `InputImageSensitiveContentDetected`,
  `OutputVideoSensitiveContentDetected`, `InputTextRiskDetection`; bad parameters are
  `InvalidParameter`.
- The Seedance 1.5 pro / 2.0 table of width x height per `resolution` and `ratio`, as
  republished on Runware's Seedance 1.5 Pro model page (1080p 21:9 was cut off there, so
  it is left out); 720p 3:4 = 834x1112 and 480p 1:1 = 640x640 also appear in Seedance 2.0's
  input limits.

Results live on a second origin (the `FileHost`, standing in for the object-storage CDN the
real `video_url` points at), so tests can check the key never goes there. A task's fate is
read from tags in its prompt: [refuse] (400 at submit), [moderation] (fails with an output
refusal), [fail], [expired] (the task expires; with `chaos=True` its result URL is gone
instead, as the shared chaos scenarios want), [stuck] (runs forever), [queued] (stays
queued), [slowdl].
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vidgate.backends.sandbox.sample import SampleMedia

from .faults import FaultMiddleware, Faults
from .renders import render
from .upstream import FakeWorld, FileHost, Recorder

TABLE = {
    ("480p", "16:9"): (864, 496), ("480p", "4:3"): (752, 560), ("480p", "1:1"): (640, 640),
    ("480p", "3:4"): (560, 752), ("480p", "9:16"): (496, 864), ("480p", "21:9"): (992, 432),
    ("720p", "16:9"): (1280, 720), ("720p", "4:3"): (1112, 834), ("720p", "1:1"): (960, 960),
    ("720p", "3:4"): (834, 1112), ("720p", "9:16"): (720, 1280), ("720p", "21:9"): (1470, 630),
    ("1080p", "16:9"): (1920, 1080), ("1080p", "4:3"): (1664, 1248),
    ("1080p", "1:1"): (1440, 1440), ("1080p", "3:4"): (1248, 1664),
    ("1080p", "9:16"): (1080, 1920),
}
CREATE_FIELDS = {  # the create body's fields in the SDK
    "model", "content", "safety_identifier", "callback_url", "return_last_frame",
    "service_tier", "execution_expires_after", "priority", "generate_audio", "draft",
    "camera_fixed", "watermark", "seed", "resolution", "ratio", "duration", "frames", "tools",
    "output_format", "omni_reference_task_type",
}


def _json(data, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _error(status: int, code: str, message: str) -> Response:
    return _json({"error": {"code": code, "message": message}}, status)


@dataclass
class ArkTask:
    id: str
    model: str
    prompt: str
    body: dict
    width: int
    height: int
    duration: int
    created: float = field(default_factory=time.monotonic)
    status_override: str | None = None
    deleted: bool = False
    video: Path | None = None

    def has(self, tag: str) -> bool:
        return f"[{tag}]" in self.prompt

    @property
    def image(self) -> dict | None:
        return next((c for c in self.body["content"] if c.get("type") == "image_url"), None)


class FakeArk:
    kind = "ark"

    def __init__(self, *, key: str, media: SampleMedia, files: FileHost, work: Path,
                 faults: Faults | None = None, job_seconds: float = 0.3,
                 chaos: bool = False) -> None:
        self.key = key
        self.media = media
        self.files = files
        self.work = work
        self.faults = faults or Faults()
        self.job_seconds = job_seconds
        self.chaos = chaos  # serve the small sample instead of rendering each size
        self.recorder = Recorder()
        self.tasks: dict[str, ArkTask] = {}
        self.cancels: list[str] = []
        self.submits: Counter = Counter()
        self.origin = ""
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.origin + "/api/v3"

    # ---- app ----------------------------------------------------------------------------

    def app(self):
        path = "/api/v3/contents/generations/tasks"
        inner = Starlette(routes=[
            Route(path, self._create, methods=["POST"]),
            Route(path + "/{id}", self._get, methods=["GET"]),
            Route(path + "/{id}", self._delete, methods=["DELETE"]),
        ])
        return FaultMiddleware(inner, self.faults, self.classify, self.recorder)

    @staticmethod
    def classify(method: str, path: str) -> str | None:
        return {"POST": "submit", "DELETE": "cancel", "GET": "poll"}.get(method)

    def _denied(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return _error(401, "AuthenticationError", "The API key in the request is invalid.")
        return None

    # ---- create ---------------------------------------------------------------------------

    async def _create(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _error(400, "InvalidParameter", "The request body is not JSON.")
        problem = self._check(body)
        if problem:
            return _error(400, "InvalidParameter", problem)
        prompt = next(c["text"] for c in body["content"] if c.get("type") == "text")
        if "[refuse]" in prompt:
            return _error(400, "InputTextSensitiveContentDetected",
                          "The request failed because the input text may contain sensitive "
                          "information.")
        width, height = TABLE[(body["resolution"], body["ratio"])]
        with self._lock:
            task = ArkTask(f"cgt-{time.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(3)}",
                           body["model"], prompt, body, width, height, body["duration"])
            self.tasks[task.id] = task
            self.submits[task.id] += 1
        if not self.chaos:
            self._render(width, height, task.duration)
        return _json({"id": task.id})

    @staticmethod
    def _check(body) -> str | None:
        if not isinstance(body, dict):
            return "The request body must be an object."
        unknown = set(body) - CREATE_FIELDS
        if unknown:
            return f"Unknown fields: {sorted(unknown)}."
        if not body.get("model"):
            return "The parameter `model` is required."
        content = body.get("content")
        if not isinstance(content, list) or not any(
                isinstance(c, dict) and c.get("type") == "text" for c in content):
            return "The parameter `content` needs a text item."
        for item in content:
            if item.get("type") == "image_url":
                url = (item.get("image_url") or {}).get("url", "")
                if not url.startswith(("data:image/", "http")) or item.get("role") not in (
                        None, "first_frame", "last_frame", "reference_image"):
                    return "The parameter `content.image_url` is invalid."
        if (body.get("resolution"), body.get("ratio")) not in TABLE:
            return "The parameters `resolution` and `ratio` are invalid."
        duration = body.get("duration")
        if not isinstance(duration, int) or isinstance(duration, bool) or not 4 <= duration <= 15:
            return "The parameter `duration` must be an integer in [4, 15]."
        return None

    def _render(self, width: int, height: int, seconds: int) -> Future:
        return render(self.work, width, height, seconds)

    def _video(self, task: ArkTask) -> Path | None:
        """The result file once it exists (the task keeps `running` until then)."""
        if self.chaos:
            return self.media.video
        rendering = self._render(task.width, task.height, task.duration)
        return rendering.result() if rendering.done() else None

    # ---- query ------------------------------------------------------------------------------

    def status(self, task: ArkTask) -> str:
        if task.status_override:
            return task.status_override
        elapsed = time.monotonic() - task.created
        if elapsed < self.job_seconds / 3 or task.has("queued"):
            return "queued"
        if elapsed < self.job_seconds or task.has("stuck"):
            return "running"
        if task.has("moderation") or task.has("fail"):
            return "failed"
        if task.has("expired") and not self.chaos:
            return "expired"
        if self._video(task) is None:
            return "running"
        return "succeeded"

    def task_object(self, task: ArkTask) -> dict:
        status = self.status(task)
        now = int(time.time())
        obj = {"id": task.id, "model": task.model, "status": status, "created_at": now,
               "updated_at": now, "seed": task.body.get("seed", 42),
               "resolution": task.body["resolution"], "ratio": task.body["ratio"],
               "duration": task.duration, "framespersecond": 24}
        if status == "succeeded":
            obj["content"] = {"video_url": self._result_url(task)}
            obj["usage"] = {"completion_tokens": 108900, "total_tokens": 108900}
        if status == "failed":
            obj["error"] = (
                {"code": "OutputVideoSensitiveContentDetected",
                 "message": "The request failed because the output video may contain "
                            "sensitive information."}
                if task.has("moderation") else
                {"code": "InternalServiceError",
                 "message": "The service encountered an unexpected internal error."})
        return obj

    def _result_url(self, task: ArkTask) -> str:
        name = f"{task.id}.mp4"
        if task.has("expired"):  # chaos: the URL is gone by the time it is fetched
            return f"{self.files.url}/files/{name}"
        video = self._video(task)
        return self.files.add(name, video, slow=task.has("slowdl"))

    async def _get(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        task = self.tasks.get(request.path_params["id"])
        if task is None or task.deleted:
            return _error(404, "ResourceNotFound", "The specified task is not found.")
        return _json(self.task_object(task))

    async def _delete(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        task = self.tasks.get(request.path_params["id"])
        if task is None or task.deleted:
            return _error(404, "ResourceNotFound", "The specified task is not found.")
        status = self.status(task)
        if status in ("running", "cancelled"):
            return _json({"error": {"message": f"A {status} task cannot be cancelled."}}, 400)
        if status == "queued":
            task.status_override = "cancelled"
            self.cancels.append(task.id)
        else:
            task.deleted = True
        return _json({})


def serve_ark(world: FakeWorld, work: Path, key: str = "ark-secret-key", **kwargs) -> FakeArk:
    """A FakeArk served beside `world`'s other fakes; its results go to `world.files`."""
    ark = FakeArk(key=key, media=world.media, files=world.files, work=work, **kwargs)
    ark.origin = world.thread.serve(ark.app())
    world.upstreams.append(ark)
    return ark
