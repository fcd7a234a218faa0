"""A fake of MiniMax's Hailuo video API, written from MiniMax's API reference
(platform.minimax.io/docs: Video Generation (text and image to video), Query Video
Generation Task, Retrieve File, Error Codes) and the official MiniMax-MCP package
(minimax-mcp 0.0.19: minimax_mcp/client.py, server.py generate_video and
query_video_generation), whose client a test drives against this fake:

- `POST /v1/video_generation` {model, prompt, duration (6|10), resolution (768P|1080P;
  1080P is 6 s only), first_frame_image (a URL or a data URL)} -> {task_id, base_resp}.
- `GET /v1/query/video_generation?task_id=` -> {task_id, status (Preparing, Queueing,
  Processing, Success, Fail), file_id, video_width, video_height, base_resp}.
- `GET /v1/files/retrieve?file_id=` -> {file {file_id, bytes, created_at, filename,
  purpose, download_url}, base_resp}; the download URL is on another origin (the FileHost).
- Errors are `base_resp.status_code` with HTTP 200: 1002 rate limit, 1004 not authorized,
  1008 insufficient balance, 1026 sensitive input, 1027 sensitive output, 2013 invalid
  parameters, 1000 unknown error.

What the fake makes: 768P is 1366x768 and 1080P 1920x1080 for text; with a first frame the
video has the frame's aspect ratio (the nearest of 16:9, 9:16, 1:1) at that resolution.

Prompt tags: [moderation] refused at create with 1026; [blocked] the task fails with 1027;
[fail] the task fails with 1000; [stuck] never finishes; [busy] create answers 1002.
"""

from __future__ import annotations

import base64
import binascii
import io
import itertools
import os
import threading
import time
from dataclasses import dataclass, field

import orjson
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vidgate.channels import ChannelConfig

from .faults import FaultMiddleware, Faults
from .gateway import FAST
from .serving import ServerThread
from .sized import SizedVideos
from .upstream import FileHost, Recorder

HEIGHTS = {"768P": 768, "1080P": 1080}
LONG_SIDE = {"768P": 1366, "1080P": 1920}
KEY = "mm-test-api-key"


@dataclass
class HailuoTask:
    id: str
    prompt: str
    width: int
    height: int
    seconds: int
    created: float = field(default_factory=time.monotonic)

    def has(self, tag: str) -> bool:
        return f"[{tag}]" in self.prompt


def _answer(body: dict, code: int = 0, message: str = "success") -> Response:
    body = {**body, "base_resp": {"status_code": code, "status_msg": message}}
    return Response(orjson.dumps(body), media_type="application/json")


class FakeMiniMax:
    def __init__(self, *, key: str, videos: SizedVideos, files: FileHost,
                 faults: Faults | None = None, job_seconds: float = 0.3) -> None:
        self.key = key
        self.videos = videos
        self.files = files
        self.faults = faults or Faults()
        self.job_seconds = job_seconds
        self.recorder = Recorder()
        self.tasks: dict[str, HailuoTask] = {}
        self.creates: list[dict] = []   # accepted bodies, the first frame as its size
        self.retrieves = 0
        self.origin = ""
        self._ids = itertools.count(106_916_112_212_032)
        self._lock = threading.Lock()

    def _denied(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return _answer({}, 1004, "login fail: Please carry the API secret key in the "
                                     "'Authorization' field of the request header")
        return None

    async def _create(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _answer({}, 2013, "invalid params, body is not JSON")
        problem, size = self._check(body)
        if problem:
            return _answer({"task_id": ""}, 2013, f"invalid params, {problem}")
        prompt = body.get("prompt") or ""
        if "[moderation]" in prompt:
            return _answer({"task_id": ""}, 1026, "input new_sensitive")
        if "[busy]" in prompt:
            return _answer({"task_id": ""}, 1002, "rate limit exceeded")
        task = HailuoTask(str(next(self._ids)), prompt, *size, int(body["duration"]))
        with self._lock:
            self.tasks[task.id] = task
            self.creates.append({**body, "first_frame_image": body.get("first_frame_image")
                                 and self._frame_size(body["first_frame_image"])})
        return _answer({"task_id": task.id})

    def _check(self, body: dict) -> tuple[str, tuple[int, int]]:
        resolution = body.get("resolution", "768P")
        duration = body.get("duration", 6)
        if not body.get("model"):
            return "model is required", (0, 0)
        if resolution not in HEIGHTS:
            return f"resolution {resolution!r}", (0, 0)
        if duration not in (6, 10) or (resolution == "1080P" and duration != 6):
            return f"duration {duration!r} at {resolution}", (0, 0)
        body["duration"] = duration
        frame = body.get("first_frame_image")
        if frame is None:
            if not body.get("prompt"):
                return "prompt is required without a first frame", (0, 0)
            return "", (LONG_SIDE[resolution], HEIGHTS[resolution])
        size = self._frame_size(frame)
        if size is None:
            return "first_frame_image is not a URL or a data URL of an image", (0, 0)
        shape = size[0] / size[1]
        short, long = HEIGHTS[resolution], LONG_SIDE[resolution]
        options = {16 / 9: (long, short), 9 / 16: (short, long), 1.0: (short, short)}
        return "", options[min(options, key=lambda r: abs(r - shape))]

    @staticmethod
    def _frame_size(frame: object) -> tuple[int, int] | None:
        if not isinstance(frame, str) or not frame.startswith("data:image/"):
            return None  # the fake does not fetch URLs
        try:
            data = base64.b64decode(frame.split(",", 1)[1], validate=True)
            with Image.open(io.BytesIO(data)) as img:
                return img.size
        except (IndexError, binascii.Error, ValueError, OSError):
            return None

    def status(self, task: HailuoTask) -> str:
        elapsed = time.monotonic() - task.created
        if elapsed < self.job_seconds / 4:
            return "Preparing"
        if elapsed < self.job_seconds / 2:
            return "Queueing"
        if task.has("stuck") or elapsed < self.job_seconds:
            return "Processing"
        return "Fail" if task.has("fail") or task.has("blocked") else "Success"

    async def _query(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        task = self.tasks.get(request.query_params.get("task_id", ""))
        if task is None:
            return _answer({"task_id": "", "status": ""}, 2013, "invalid params, task_id")
        status = self.status(task)
        body = {"task_id": task.id, "status": status}
        if status == "Success":
            body.update(file_id=task.id, video_width=task.width, video_height=task.height)
        if status == "Fail":
            code, message = ((1027, "output new_sensitive") if task.has("blocked")
                             else (1000, "unknown error"))
            return _answer(body, code, message)
        return _answer(body)

    async def _retrieve(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        task = self.tasks.get(request.query_params.get("file_id", ""))
        if task is None or self.status(task) != "Success":
            return _answer({}, 2013, "invalid params, file_id")
        video = self.videos.get(task.width, task.height, task.seconds)
        url = self.files.add(f"hailuo-{task.id}.mp4", video)
        with self._lock:
            self.retrieves += 1
        return _answer({"file": {"file_id": int(task.id), "bytes": video.stat().st_size,
                                 "created_at": int(time.time()), "filename": "output.mp4",
                                 "purpose": "video_generation", "download_url": url}})

    def app(self):
        inner = Starlette(routes=[
            Route("/v1/video_generation", self._create, methods=["POST"]),
            Route("/v1/query/video_generation", self._query, methods=["GET"]),
            Route("/v1/files/retrieve", self._retrieve, methods=["GET"]),
        ])
        return FaultMiddleware(inner, self.faults, self.classify, self.recorder)

    @staticmethod
    def classify(method: str, path: str) -> str | None:
        if path == "/v1/video_generation":
            return "submit"
        return "poll" if path.startswith("/v1/") else None


class MiniMaxWorld:
    """MiniMax fakes plus the CDN they put results on, all served until close()."""

    def __init__(self, videos: SizedVideos) -> None:
        self.videos = videos
        self.thread = ServerThread()
        self.files = FileHost()
        self.files.url = self.thread.serve(self.files.app())

    def add(self, **kwargs) -> FakeMiniMax:
        fake = FakeMiniMax(key=KEY, videos=self.videos, files=self.files, **kwargs)
        fake.origin = self.thread.serve(fake.app())
        return fake

    def close(self) -> None:
        self.thread.stop()


def minimax_channel(fake: FakeMiniMax, name: str = "hailuo", **overrides) -> ChannelConfig:
    """A minimax channel on `fake`, its key through an environment variable; `sora-2` maps
    to MiniMax-Hailuo-02 and clients may set prompt_optimizer."""
    os.environ["VG_TEST_MINIMAX_KEY"] = fake.key
    fields = {"name": name, "kind": "minimax", "base_url": fake.origin,
              "api_key_env": "VG_TEST_MINIMAX_KEY", "models": {"sora-2": "MiniMax-Hailuo-02"},
              "metadata_fields": ["prompt_optimizer"], **FAST, **overrides}
    return ChannelConfig(**fields)
