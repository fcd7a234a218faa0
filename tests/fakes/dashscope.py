"""A fake Alibaba Cloud Model Studio (DashScope) video-synthesis API for the Wan models.

Written from:
- the `dashscope` SDK 2.0.2: dashscope/aigc/video_synthesis.py (VideoSynthesis.async_call
  / fetch / wait / cancel; the input fields prompt, negative_prompt, img_url, audio_url and
  the parameters size "W*H", duration, seed, prompt_extend, watermark, resolution "720P",
  shot_type, audio_setting), api_entities/http_request.py (the `X-DashScope-Async: enable`
  header of async calls), client/base_api.py (`GET {base}/tasks/{id}`, `POST
  {base}/tasks/{id}/cancel`, "Only tasks whose status is PENDING can be canceled"),
  common/constants.py TaskStatus (PENDING, SUSPENDED, RUNNING, SUCCEEDED, FAILED, CANCELED,
  UNKNOWN), api_entities/dashscope_response.py (output.task_id, task_status, video_url;
  usage.video_count, video_duration, video_ratio), common/utils.py (error bodies `code`,
  `message`, `request_id`).
- Model Studio "Wan - text-to-video API reference" and "Wan - image-to-video API reference"
  (alibabacloud.com/help/en/model-studio): the size table per tier (480P 832*480, 480*832,
  624*624; 720P 1280*720, 720*1280, 960*960, 1088*832, 832*1088; 1080P 1920*1080, 1080*1920,
  1440*1440, 1632*1248, 1248*1632), i2v's `resolution` tier with the output keeping the
  first frame's aspect ratio, `img_url` as a URL or a Base64 data URL, durations, the
  24-hour `video_url`, and the error codes (`DataInspectionFailed` for content inspection,
  `InvalidParameter`).

Results are served from a second origin (the `FileHost`, standing in for OSS). A task's fate
comes from tags in its prompt: [refuse] (DataInspectionFailed at submit), [moderation] (the
task FAILS with DataInspectionFailed), [fail], [stuck], [queued] (stays PENDING).
"""

from __future__ import annotations

import base64
import io
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vidgate.backends.sandbox.sample import SampleMedia

from .faults import FaultMiddleware, Faults
from .renders import render
from .upstream import FakeWorld, FileHost, Recorder

TIERS = {
    "480P": ((832, 480), (480, 832), (624, 624)),
    "720P": ((1280, 720), (720, 1280), (960, 960), (1088, 832), (832, 1088)),
    "1080P": ((1920, 1080), (1080, 1920), (1440, 1440), (1632, 1248), (1248, 1632)),
}
SIZES = {f"{w}*{h}" for sizes in TIERS.values() for w, h in sizes}
DURATIONS = (5, 10, 15)
# `extend_prompt` and `function` are what the SDK itself adds to `input`.
INPUT_FIELDS = {"prompt", "negative_prompt", "img_url", "audio_url", "extend_prompt", "function"}
PARAMETER_FIELDS = {"size", "duration", "seed", "prompt_extend", "watermark", "resolution",
                    "ratio", "shot_type", "audio_setting"}


def _json(data, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _error(status: int, code: str, message: str) -> Response:
    return _json({"request_id": str(uuid.uuid4()), "code": code, "message": message}, status)


@dataclass
class WanTask:
    id: str
    model: str
    body: dict
    width: int
    height: int
    duration: int
    created: float = field(default_factory=time.monotonic)
    cancelled: bool = False

    @property
    def prompt(self) -> str:
        return self.body["input"].get("prompt") or ""

    def has(self, tag: str) -> bool:
        return f"[{tag}]" in self.prompt


def _frame_size(img_url: str) -> tuple[int, int] | None:
    if not img_url.startswith("data:image/") or ";base64," not in img_url:
        return None
    try:
        data = base64.b64decode(img_url.split(",", 1)[1], validate=True)
        return Image.open(io.BytesIO(data)).size
    except Exception:
        return None


class FakeDashScope:
    kind = "dashscope"

    def __init__(self, *, key: str, media: SampleMedia, files: FileHost, work: Path,
                 faults: Faults | None = None, job_seconds: float = 0.3) -> None:
        self.key = key
        self.media = media
        self.files = files
        self.work = work
        self.faults = faults or Faults()
        self.job_seconds = job_seconds
        self.recorder = Recorder()
        self.tasks: dict[str, WanTask] = {}
        self.cancels: list[str] = []
        self.origin = ""
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.origin + "/api/v1"

    def app(self):
        inner = Starlette(routes=[
            Route("/api/v1/services/aigc/video-generation/video-synthesis", self._create,
                  methods=["POST"]),
            Route("/api/v1/tasks/{id}", self._get, methods=["GET"]),
            Route("/api/v1/tasks/{id}/cancel", self._cancel, methods=["POST"]),
        ])
        return FaultMiddleware(inner, self.faults, self.classify, self.recorder)

    @staticmethod
    def classify(method: str, path: str) -> str | None:
        if path.endswith("/cancel"):
            return "cancel"
        return "submit" if method == "POST" else "poll"

    def _denied(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return _error(401, "InvalidApiKey", "Invalid API-key provided.")
        return None

    # ---- submit -------------------------------------------------------------------------

    async def _create(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        if request.headers.get("x-dashscope-async") != "enable":
            return _error(403, "AccessDenied",
                          "current user api does not support synchronous calls")
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _error(400, "InvalidParameter", "The request body is not valid JSON.")
        checked = self._check(body)
        if isinstance(checked, str):
            return _error(400, "InvalidParameter", checked)
        width, height, duration = checked
        if "[refuse]" in (body["input"].get("prompt") or ""):
            return _error(400, "DataInspectionFailed",
                          "Input data may contain inappropriate content.")
        task = WanTask(str(uuid.uuid4()), body["model"], body, width, height, duration)
        with self._lock:
            self.tasks[task.id] = task
        render(self.work, width, height, duration)
        return _json({"request_id": str(uuid.uuid4()),
                      "output": {"task_id": task.id, "task_status": "PENDING"}})

    @staticmethod
    def _check(body) -> tuple[int, int, int] | str:
        """(width, height, duration) the task will produce, or what is wrong."""
        if not isinstance(body, dict) or not body.get("model"):
            return "Model not specified."
        inputs, params = body.get("input"), body.get("parameters") or {}
        if not isinstance(inputs, dict) or not isinstance(params, dict):
            return "input and parameters must be objects."
        if set(inputs) - INPUT_FIELDS or set(params) - PARAMETER_FIELDS:
            return f"Unknown fields: {sorted(set(inputs) - INPUT_FIELDS)} " \
                   f"{sorted(set(params) - PARAMETER_FIELDS)}."
        duration = params.get("duration", 5)
        if duration not in DURATIONS:
            return f"duration must be one of {DURATIONS}."
        model = body["model"]
        if "-t2v" in model:
            if "img_url" in inputs or not inputs.get("prompt"):
                return "Text-to-video takes a prompt and no img_url."
            size = params.get("size", "1920*1080")
            if size not in SIZES:
                return f"size {size} is not supported."
            width, height = (int(v) for v in size.split("*"))
            return width, height, duration
        if "-i2v" in model:
            frame = _frame_size(inputs.get("img_url") or "")
            tier = params.get("resolution", "1080P")
            if frame is None or tier not in TIERS or "size" in params:
                return "Image-to-video takes img_url and a resolution tier, not a size."
            # The output keeps the first frame's aspect ratio, at the tier's size for it.
            aspect = frame[0] / frame[1]
            width, height = min(TIERS[tier], key=lambda s: abs(s[0] / s[1] - aspect))
            return width, height, duration
        return f"Model {model} is not a video-synthesis model."

    # ---- query and cancel ---------------------------------------------------------------

    def status(self, task: WanTask) -> str:
        if task.cancelled:
            return "CANCELED"
        elapsed = time.monotonic() - task.created
        if elapsed < self.job_seconds / 3 or task.has("queued"):
            return "PENDING"
        if elapsed < self.job_seconds or task.has("stuck"):
            return "RUNNING"
        if task.has("moderation") or task.has("fail"):
            return "FAILED"
        if not render(self.work, task.width, task.height, task.duration).done():
            return "RUNNING"
        return "SUCCEEDED"

    def task_output(self, task: WanTask) -> dict:
        status = self.status(task)
        output = {"task_id": task.id, "task_status": status,
                  "submit_time": "2026-12-03 08:00:00.000"}
        if status == "SUCCEEDED":
            video = render(self.work, task.width, task.height, task.duration).result()
            output["video_url"] = self.files.add(f"{task.id}.mp4", video)
            output["orig_prompt"] = task.prompt
        if status == "FAILED":
            output.update(
                {"code": "DataInspectionFailed",
                 "message": "Output data may contain inappropriate content."}
                if task.has("moderation") else
                {"code": "InternalError", "message": "Internal server error."})
        return output

    async def _get(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        task = self.tasks.get(request.path_params["id"])
        request_id = str(uuid.uuid4())
        if task is None:
            return _json({"request_id": request_id,
                          "output": {"task_id": request.path_params["id"],
                                     "task_status": "UNKNOWN"}})
        body = {"request_id": request_id, "output": self.task_output(task)}
        if body["output"]["task_status"] == "SUCCEEDED":
            body["usage"] = {"video_duration": task.duration, "video_count": 1,
                             "video_ratio": f"{task.width}*{task.height}"}
        return _json(body)

    async def _cancel(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        task = self.tasks.get(request.path_params["id"])
        if task is None or self.status(task) != "PENDING":
            return _error(400, "UnsupportedOperation",
                          "Failed to cancel the task, please confirm if the task is in "
                          "PENDING status.")
        task.cancelled = True
        self.cancels.append(task.id)
        return _json({"request_id": str(uuid.uuid4())})


def serve_dashscope(world: FakeWorld, work: Path, key: str = "sk-dashscope-secret",
                    **kwargs) -> FakeDashScope:
    """A FakeDashScope served beside `world`'s fakes; results go to `world.files`."""
    fake = FakeDashScope(key=key, media=world.media, files=world.files, work=work, **kwargs)
    fake.origin = world.thread.serve(fake.app())
    world.upstreams.append(fake)
    return fake
