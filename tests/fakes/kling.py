"""A fake of Kling's video API, written from Kling's public API reference
(app.klingai.com/global/dev/document-api; Kling publishes no official Python SDK on PyPI):

- "General Information": Bearer JWT, HS256 over header {"alg": "HS256", "typ": "JWT"} and
  payload {iss: access key, exp, nbf} signed with the secret key (the docs' example: exp =
  now + 1800, nbf = now - 5); the error table: 401 with 1001 (Authorization empty), 1002
  (invalid), 1003 (not yet valid), 1004 (expired); 429 with 1102 (resource pack depleted);
  400 with 1201 (invalid parameters) and 1301 (content security policy).
- "Concurrency Rules": 429 / 1303 "parallel task over resource pack limit".
- Text to Video and Image to Video: `POST /v1/videos/text2video|image2video` with
  model_name, prompt, negative_prompt, cfg_scale, mode (std|pro), aspect_ratio (16:9, 9:16,
  1:1; text only), duration ("5"|"10"), callback_url, image (a URL or Base64 *without* a
  data: prefix); `GET /v1/videos/{kind}/{task_id}`; every answer {code, message,
  request_id, data}; data {task_id, task_status (submitted|processing|succeed|failed),
  task_status_msg, task_info, task_result {videos [{id, url, duration}]}, created_at,
  updated_at}. The docs have a "Callback Schema" page, not read here: the fake assumes
  the callback body is that same data object (to be checked when callbacks are wired).

What the fake makes: std is 720p, pro 1080p, in the requested aspect (text) or the aspect
of the image nearest to 16:9, 9:16 or 1:1 (image), for `duration` seconds; the result URL
is on the FileHost (Kling serves results from its CDN, another origin).

Prompt tags: [moderation] refused at create with 1301; [fail] the task fails;
[stuck] never finishes; [busy] refused at create with 429/1303.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import itertools
import os
import threading
import time
import uuid
from dataclasses import dataclass, field

import jwt
import orjson
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vidgate.channels import ChannelConfig

from .callbacks import Deliveries
from .faults import FaultMiddleware, Faults
from .gateway import FAST
from .serving import ServerThread
from .sized import SizedVideos
from .upstream import FileHost, Recorder

SIZES = {"std": {"16:9": (1280, 720), "9:16": (720, 1280), "1:1": (720, 720)},
         "pro": {"16:9": (1920, 1080), "9:16": (1080, 1920), "1:1": (1080, 1080)}}
RATIOS = {"16:9": 16 / 9, "9:16": 9 / 16, "1:1": 1.0}


@dataclass
class KlingTask:
    id: str
    kind: str
    prompt: str
    width: int
    height: int
    seconds: int
    created: float = field(default_factory=time.monotonic)
    created_ms: int = field(default_factory=lambda: int(time.time() * 1000))

    def has(self, tag: str) -> bool:
        return f"[{tag}]" in self.prompt


def _answer(data: dict | None, *, code: int = 0, message: str = "SUCCEED",
            status: int = 200) -> Response:
    body = {"code": code, "message": message, "request_id": str(uuid.uuid4()), "data": data}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


class FakeKling:
    def __init__(self, *, access_key: str, secret_key: str, videos: SizedVideos,
                 files: FileHost, faults: Faults | None = None,
                 job_seconds: float = 0.3) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.videos = videos
        self.files = files
        self.faults = faults or Faults()
        self.job_seconds = job_seconds
        self.recorder = Recorder()
        self.tasks: dict[str, KlingTask] = {}
        self.creates: list[dict] = []        # accepted create bodies, the image as its size
        self.claims: list[dict] = []         # the verified payload of every accepted token
        self.rejected: list[tuple[int, str]] = []  # (Kling code, path) of every 401
        self.deliveries = Deliveries()  # the callbacks it pushed, with vidgate's answers
        self.origin = ""
        self._ids = itertools.count(860_000_000_000_000_001)
        self._lock = threading.Lock()

    # ---- auth ---------------------------------------------------------------------------

    def _deny(self, request: Request) -> Response | None:
        auth = request.headers.get("authorization") or ""
        code = 0
        if not auth.startswith("Bearer "):
            code = 1001
        else:
            token = auth.removeprefix("Bearer ")
            try:
                header = jwt.get_unverified_header(token)
                if header.get("alg") != "HS256" or header.get("typ") != "JWT":
                    raise jwt.InvalidTokenError("not an HS256 JWT")
                claims = jwt.decode(token, self.secret_key, algorithms=["HS256"],
                                    issuer=self.access_key,
                                    options={"require": ["iss", "exp", "nbf"]})
            except jwt.ExpiredSignatureError:
                code = 1004
            except jwt.ImmatureSignatureError:
                code = 1003
            except jwt.InvalidTokenError:
                code = 1002
            else:
                with self._lock:
                    self.claims.append(claims)
        if not code:
            return None
        with self._lock:
            self.rejected.append((code, request.url.path))
        return _answer(None, code=code, message="Authentication failed", status=401)

    # ---- routes -------------------------------------------------------------------------

    async def _create(self, request: Request) -> Response:
        if (denied := self._deny(request)) is not None:
            return denied
        kind = request.path_params["kind"]
        if kind not in ("text2video", "image2video"):
            return _answer(None, code=1202, message="invalid request method", status=404)
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _answer(None, code=1200, message="invalid request body", status=400)
        problem, size = self._check(kind, body)
        if problem:
            return _answer(None, code=1201, message=problem, status=400)
        prompt = body.get("prompt") or ""
        if "[moderation]" in prompt:
            return _answer(None, code=1301, message="Trigger the content security policy",
                           status=400)
        if "[busy]" in prompt:
            return _answer(None, code=1303, message="parallel task over resource pack limit",
                           status=429)
        width, height = size
        task = KlingTask(str(next(self._ids)), kind, prompt, width, height,
                         int(body["duration"]))
        with self._lock:
            self.tasks[task.id] = task
            self.creates.append({**body, "image": (body.get("image") and
                                                   self._image_size(body["image"]))})
        if isinstance(body.get("callback_url"), str):
            asyncio.get_running_loop().create_task(self._push(task, body["callback_url"]))
        return _answer({"task_id": task.id, "task_status": "submitted",
                        "task_info": {}, "created_at": task.created_ms,
                        "updated_at": task.created_ms})

    def _check(self, kind: str, body: dict) -> tuple[str, tuple[int, int]]:
        mode = body.get("mode", "std")
        duration = body.get("duration", "5")
        if mode not in SIZES:
            return f"mode must be std or pro, not {mode!r}", (0, 0)
        if duration not in ("5", "10"):  # a string, as the docs say
            return f"duration must be \"5\" or \"10\", not {duration!r}", (0, 0)
        body["duration"] = duration
        if kind == "text2video":
            if not body.get("prompt"):
                return "prompt is required", (0, 0)
            ratio = body.get("aspect_ratio", "16:9")
            if ratio not in RATIOS:
                return f"aspect_ratio {ratio!r} is not supported", (0, 0)
            return "", SIZES[mode][ratio]
        image = body.get("image")
        if not isinstance(image, str) or not image:
            return "image is required", (0, 0)
        if image.startswith("data:"):
            return "image: Base64 without any data: prefix", (0, 0)
        size = self._image_size(image)
        if size is None:
            return "image could not be read", (0, 0)
        shape = size[0] / size[1]
        nearest = min(RATIOS, key=lambda r: abs(RATIOS[r] - shape))
        return "", SIZES[mode][nearest]

    @staticmethod
    def _image_size(image: str) -> tuple[int, int] | None:
        try:
            with Image.open(io.BytesIO(base64.b64decode(image, validate=True))) as img:
                return img.size
        except (binascii.Error, ValueError, OSError):
            return None

    async def _push(self, task: KlingTask, url: str) -> None:
        """When the task ends (succeed or failed), POST it to `callback_url`; the body is
        the task as a query's `data` carries it (third-party accounts of Kling's callback:
        "Kling POSTs the full result"; Kling documents no signature)."""
        while self.state(task) in ("submitted", "processing"):
            await asyncio.sleep(0.02)
        data = await asyncio.to_thread(self.task_data, task)
        await self.deliveries.post(url, {}, orjson.dumps(data))

    def state(self, task: KlingTask) -> str:
        elapsed = time.monotonic() - task.created
        if elapsed < self.job_seconds / 3:
            return "submitted"
        if task.has("stuck") or elapsed < self.job_seconds:
            return "processing"
        return "failed" if task.has("fail") else "succeed"

    def task_data(self, task: KlingTask) -> dict:
        """The query's `data` (assumed to be the callback body too: see the docstring)."""
        status = self.state(task)
        data = {"task_id": task.id, "task_status": status, "task_status_msg": "",
                "task_info": {}, "created_at": task.created_ms,
                "updated_at": int(time.time() * 1000)}
        if status == "failed":
            data["task_status_msg"] = "The video generation failed."
        if status == "succeed":
            video = self.videos.get(task.width, task.height, task.seconds)
            url = self.files.add(f"kling-{task.id}.mp4", video)
            data["task_result"] = {"videos": [{"id": f"v{task.id}", "url": url,
                                               "duration": str(task.seconds)}]}
        return data

    async def _query(self, request: Request) -> Response:
        if (denied := self._deny(request)) is not None:
            return denied
        task = self.tasks.get(request.path_params["task_id"])
        if task is None or task.kind != request.path_params["kind"]:
            return _answer(None, code=1203, message="task not found", status=404)
        return _answer(self.task_data(task))

    def app(self):
        kinds = "{kind:str}"
        inner = Starlette(routes=[
            Route(f"/v1/videos/{kinds}", self._create, methods=["POST"]),
            Route(f"/v1/videos/{kinds}/{{task_id}}", self._query, methods=["GET"]),
        ])
        return FaultMiddleware(inner, self.faults, self.classify, self.recorder)

    @staticmethod
    def classify(method: str, path: str) -> str | None:
        if not path.startswith("/v1/videos/"):
            return None
        return "submit" if method == "POST" else "poll"


class KlingWorld:
    """Kling fakes plus the CDN they put results on, all served until close()."""

    def __init__(self, videos: SizedVideos, access_key: str, secret_key: str) -> None:
        self.videos = videos
        self.access_key, self.secret_key = access_key, secret_key
        self.thread = ServerThread()
        self.files = FileHost()
        self.files.url = self.thread.serve(self.files.app())

    def add(self, **kwargs) -> FakeKling:
        fake = FakeKling(access_key=self.access_key, secret_key=self.secret_key,
                         videos=self.videos, files=self.files, **kwargs)
        fake.origin = self.thread.serve(fake.app())
        return fake

    def close(self) -> None:
        self.thread.stop()


ACCESS, SECRET = "ak-test-access", "sk-test-secret-key-of-32-bytes-or-more"


def kling_channel(fake: FakeKling, name: str = "kling", **overrides) -> ChannelConfig:
    """A kling channel on `fake`, both keys through environment variables as in production;
    `sora-2` maps to a Kling model, and clients may set negative_prompt and cfg_scale."""
    os.environ["VG_TEST_KLING_AK"], os.environ["VG_TEST_KLING_SK"] = ACCESS, SECRET
    fields = {"name": name, "kind": "kling", "base_url": fake.origin,
              "api_key_env": "VG_TEST_KLING_AK", "secret_key_env": "VG_TEST_KLING_SK",
              "models": {"sora-2": "kling-v2-6"},
              "metadata_fields": ["negative_prompt", "cfg_scale"], **FAST, **overrides}
    return ChannelConfig(**fields)
