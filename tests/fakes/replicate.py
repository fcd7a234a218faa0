"""A fake Replicate API (`api.replicate.com/v1`) and its CDN (replicate.delivery), on
127.0.0.1.

Written from replicate 1.0.7's source (`replicate/client.py`: `Authorization: Bearer`, base
URL without `/v1`; `replicate/prediction.py`: the Prediction fields id, model, version,
status, input, output, logs, error, metrics, created_at, started_at, completed_at, urls
{get, cancel}; `POST /v1/predictions` with `version` + `input`, `GET /v1/predictions/{id}`,
`POST /v1/predictions/{id}/cancel`, the tqdm progress pattern read from `logs`;
`replicate/model.py`: `POST /v1/models/{owner}/{name}/predictions`; `replicate/exceptions.py`:
errors as problem details type/title/status/detail) and Replicate's HTTP API reference
(statuses starting, processing, succeeded, failed, canceled; `output` a URL or a list of
URLs) and the API pages of google/veo-3*, kwaivgi/kling-v2.1-master, minimax/hailuo-02
(inputs prompt, duration as an integer, aspect_ratio, resolution, image / start_image /
first_frame_image; output a URI).

Callbacks, from the same SDK (`CreatePredictionParams`: `webhook`, `webhook_events_filter`
of start | output | logs | completed; `replicate/webhook.py`: `GET /v1/webhooks/default/secret`
answers `{"key": "whsec_..."}`, `Webhooks.validate` checks `webhook-id`,
`webhook-timestamp`, `webhook-signature`) and Replicate's "Verify webhooks" page (Standard
Webhooks: HMAC-SHA256 over `{id}.{timestamp}.{body}`, `v1,<base64>`): a prediction created
with a `webhook` whose filter has `completed` (or no filter) is posted, as its prediction
object, to that URL once it ends, signed with `webhook_secret`.

The fake renders a real MP4 of the frame and length the input asks for (see fakes.fal's
frame_of). A prediction's fate is read from tags in its prompt:
  [moderation]  fails: flagged as sensitive (E005)     [fail]  fails with a model error
  [stuck]       never leaves processing                [list]  output is a list of URLs
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .callbacks import Deliveries
from .clips import Clips
from .fal import frame_of
from .faults import FaultMiddleware, Faults
from .upstream import FileHost, Recorder

IMAGE_FIELDS = ("image", "start_image", "first_frame_image")


def _json(data, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _problem(status: int, title: str, detail: str) -> Response:
    return _json({"type": None, "title": title, "status": status, "detail": detail}, status)


def version_of(model: str) -> str:
    """A stable version id per model, like Replicate's 64-hex ids."""
    return hashlib.sha256(model.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Prediction:
    id: str
    model: str
    version: str
    input: dict
    created_at: str = field(default_factory=_now)
    created: float = field(default_factory=time.monotonic)
    clip: asyncio.Future | None = None
    canceled: bool = False
    webhook: str | None = None
    events: list | None = None

    def has(self, tag: str) -> bool:
        return f"[{tag}]" in str(self.input.get("prompt", ""))


def sign_webhook(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """Standard Webhooks, as Replicate signs (and `Webhooks.validate` checks)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class FakeReplicate:
    def __init__(self, *, key: str, cdn: FileHost, clips: Clips, faults: Faults | None = None,
                 job_seconds: float = 0.3) -> None:
        self.key = key
        self.cdn = cdn
        self.clips = clips
        self.faults = faults or Faults()
        self.job_seconds = job_seconds
        self.recorder = Recorder()
        self.predictions: dict[str, Prediction] = {}
        self.cancels: list[str] = []
        self.calls: list[tuple[float, str, str]] = []
        self.origin = ""
        self._lock = threading.Lock()
        self.webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        self.deliveries = Deliveries()
        self.callbacks_on = True  # False: accept `webhook` but never call (a lost callback)

    @property
    def url(self) -> str:
        return self.origin + "/v1"

    def app(self):
        inner = Starlette(routes=[
            Route("/v1/models/{owner}/{name}/predictions", self._create_official,
                  methods=["POST"]),
            Route("/v1/predictions", self._create_version, methods=["POST"]),
            Route("/v1/predictions/{id}", self._get, methods=["GET"]),
            Route("/v1/predictions/{id}/cancel", self._cancel, methods=["POST"]),
            Route("/v1/webhooks/default/secret", self._secret, methods=["GET"]),
        ])
        return FaultMiddleware(inner, self.faults, self.classify, self._record)

    def _record(self, method: str, path: str, auth: str | None) -> None:
        self.recorder(method, path, auth)
        with self._lock:
            self.calls.append((time.monotonic(), method, path))

    @staticmethod
    def classify(method: str, path: str) -> str | None:
        if path.endswith("/secret"):
            return "content"
        if path.endswith("/cancel"):
            return "cancel"
        return "submit" if method == "POST" else "poll"

    def _denied(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return _problem(401, "Unauthenticated",
                            "You did not pass a valid authentication token")
        return None

    # ---- predictions -------------------------------------------------------------------

    def status(self, p: Prediction) -> str:
        elapsed = time.monotonic() - p.created
        if p.canceled:
            return "canceled"
        if elapsed < self.job_seconds / 3:
            return "starting"
        if p.has("stuck") or elapsed < self.job_seconds or not p.clip.done():
            return "processing"
        return "failed" if p.has("fail") or p.has("moderation") else "succeeded"

    def render(self, p: Prediction) -> dict:
        status = self.status(p)
        base = f"{self.url}/predictions/{p.id}"
        obj = {"id": p.id, "model": p.model, "version": p.version, "input": p.input,
               "logs": "", "output": None, "error": None, "status": status,
               "created_at": p.created_at, "started_at": None, "completed_at": None,
               "urls": {"get": base, "cancel": base + "/cancel"}, "metrics": {}}
        if status != "starting":
            obj["started_at"] = p.created_at
            share = min(1.0, (time.monotonic() - p.created) / self.job_seconds)
            done = 50 if p.has("stuck") else int(100 * share)
            obj["logs"] = f"Generating...\n {done}%|{'#' * (done // 10):<10}| {done}/100"
        if status in ("succeeded", "failed", "canceled"):
            obj["completed_at"] = _now()
            obj["metrics"] = {"predict_time": self.job_seconds}
        if status == "succeeded":
            url = self.cdn.add(f"{p.id}.mp4", p.clip.result())
            obj["output"] = [url] if p.has("list") else url
        elif status == "failed" and p.has("moderation"):
            obj["error"] = ("The input or output was flagged as sensitive. Please try again "
                            "with different inputs. (E005)")
        elif status == "failed":
            obj["error"] = "Prediction failed: the model ran out of memory."
        return obj

    async def _new(self, request: Request, model: str, version: str) -> Response:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            body = None
        data = body.get("input") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not data.get("prompt"):
            return _problem(422, "Input validation failed", "- input: prompt is required")
        p = Prediction(secrets.token_hex(13), model, version, data)
        image = next((f for f in IMAGE_FIELDS if data.get(f)), "image")
        width, height = frame_of(data, image)
        p.clip = asyncio.get_running_loop().run_in_executor(
            None, self.clips.get, width, height, int(data.get("duration", 5)))
        if isinstance(body.get("webhook"), str):
            p.webhook, p.events = body["webhook"], body.get("webhook_events_filter")
            asyncio.get_running_loop().create_task(self._call_back(p))
        with self._lock:
            self.predictions[p.id] = p
        return _json(self.render(p), 201)

    async def _call_back(self, p: Prediction) -> None:
        """Post the prediction once it ends (the `completed` event), as Replicate does."""
        await asyncio.wait([p.clip])
        while self.status(p) in ("starting", "processing"):
            await asyncio.sleep(0.02)  # the fake's own clock: its jobs end by time
        if not self.callbacks_on or (p.events is not None and "completed" not in p.events):
            return
        body = orjson.dumps(self.render(p))
        msg_id = "msg_" + secrets.token_hex(12)
        timestamp = str(int(time.time()))
        await self.deliveries.post(p.webhook, {
            "webhook-id": msg_id, "webhook-timestamp": timestamp,
            "webhook-signature": sign_webhook(self.webhook_secret, msg_id, timestamp, body),
        }, body)

    async def _secret(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        return _json({"key": self.webhook_secret})

    async def _create_official(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        model = f"{request.path_params['owner']}/{request.path_params['name']}"
        return await self._new(request, model, version_of(model))

    async def _create_version(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        try:
            version = orjson.loads(await request.body()).get("version")
        except (orjson.JSONDecodeError, AttributeError):
            version = None
        model = next((m for m in self.known_models if version_of(m) == version), None)
        if model is None:
            return _problem(422, "Invalid version", "The specified version does not exist")
        return await self._new(request, model, version)

    known_models: tuple[str, ...] = ("acme/wan-custom",)

    async def _get(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        p = self.predictions.get(request.path_params["id"])
        if p is None:
            return _problem(404, "Not found", "The requested resource could not be found")
        return _json(self.render(p))

    async def _cancel(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        p = self.predictions.get(request.path_params["id"])
        if p is None:
            return _problem(404, "Not found", "The requested resource could not be found")
        if self.status(p) in ("starting", "processing"):
            p.canceled = True
            self.cancels.append(p.id)
        return _json(self.render(p))
