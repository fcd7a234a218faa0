"""A fake fal.ai queue (`queue.fal.run`) and its CDN, on 127.0.0.1.

Written from fal-client 1.0.3's source (`fal_client/client.py`: `AsyncClient.submit` reads
`request_id`, `response_url`, `status_url`, `cancel_url` from the submit answer;
`_BaseRequestHandle._parse_status` reads `status`, `queue_position`, `logs`, `metrics`,
`error`, `error_type`; `status()` sends `?logs=`; `cancel()` is `PUT cancel_url`;
`from_request_id` builds `{queue}/{owner}/{alias}/requests/{id}`; `auth.py`: `Key` header)
and fal's docs: Queue API (endpoints; the subpath is left out of status/result/cancel URLs),
Inference API (status answers 202 until COMPLETED, then 200), Get request result (the
model's own status and body, errors included), Cancel a request (OK, CANCELLATION_REQUESTED,
ALREADY_COMPLETED, NOT_FOUND), Model Errors (422, `detail` list of loc/msg/type/url/input,
`content_policy_violation`), Request Error Types (`detail` text + `error_type`, header
`X-Fal-Error-Type`), and the app pages of fal-ai/veo3, fal-ai/veo3/image-to-video and
fal-ai/kling-video/v2.1/master (inputs prompt, aspect_ratio, duration, resolution,
image_url; output `video` as a File: url, content_type, file_name, file_size).

Callbacks, from fal's docs (Webhooks: the `fal_webhook` query parameter of a queue submit;
the delivery `{request_id, gateway_request_id, status: OK | ERROR, error, payload}`;
"Verifying your webhook": headers X-Fal-Webhook-Request-Id, -User-Id, -Timestamp and
-Signature, ED25519 over `request_id`, `user_id`, `timestamp`, `sha256_hex(body)` joined
with newlines, the hex signature, keys published as a JWKS of `x` values) and fal-client's
`submit(webhook_url=)` (`?fal_webhook=<url>`): a request submitted with `fal_webhook` is
posted there once it ends, signed with the fake's own key, whose JWKS the fake serves at
`/.well-known/jwks.json` (`jwks_url`).

The fake renders a real MP4 of the frame and length the input asks for: aspect_ratio and
resolution when given (1080p for apps without a resolution), else the frame of image_url;
duration "8s" or "5". A request's fate is read from tags in its prompt:
  [moderation]  result 422 content_policy_violation     [fail]  status COMPLETED with
  [stuck]       never leaves IN_PROGRESS                          error; result 504 request_timeout
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import threading
import time
import uuid
from dataclasses import dataclass, field

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .callbacks import Deliveries
from .clips import Clips
from .faults import FaultMiddleware, Faults
from .upstream import FileHost, Recorder


def _json(data, status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json",
                    headers=headers)


@dataclass
class FalRequest:
    id: str
    app: str
    root: str                 # owner/alias: where status, result and cancel live
    input: dict
    created: float = field(default_factory=time.monotonic)
    clip: asyncio.Future | None = None
    cancelled: bool = False
    webhook: str | None = None

    def has(self, tag: str) -> bool:
        return f"[{tag}]" in str(self.input.get("prompt", ""))


def frame_of(body: dict, image_field: str = "image_url") -> tuple[int, int]:
    """The frame an app renders for this input: aspect_ratio and resolution when given
    (1080p without one), else the frame of the image, else 16:9."""
    ratio = body.get("aspect_ratio")
    if (not isinstance(ratio, str) or ratio == "auto") and body.get(image_field):
        raw = base64.b64decode(str(body[image_field]).split(",", 1)[1])
        with Image.open(io.BytesIO(raw)) as img:
            a, b = img.size
    elif isinstance(ratio, str) and ":" in ratio:
        a, b = (int(x) for x in ratio.split(":"))
    else:
        a, b = 16, 9
    tier = int(str(body.get("resolution", "1080p")).rstrip("p"))
    if a >= b:
        return round(tier * a / b / 2) * 2, tier
    return tier, round(tier * b / a / 2) * 2


def seconds_of(body: dict) -> int:
    return int(str(body.get("duration", "5")).rstrip("s"))


class FakeFal:
    def __init__(self, *, key: str, cdn: FileHost, clips: Clips, faults: Faults | None = None,
                 job_seconds: float = 0.3) -> None:
        self.key = key
        self.cdn = cdn
        self.clips = clips
        self.faults = faults or Faults()
        self.job_seconds = job_seconds
        self.recorder = Recorder()
        self.requests: dict[str, FalRequest] = {}
        self.cancels: list[str] = []
        self.calls: list[tuple[float, str, str]] = []  # (monotonic time, method, path)
        self.origin = ""
        self._lock = threading.Lock()
        self.signing_key = Ed25519PrivateKey.generate()
        self.user_id = "fake-user-" + uuid.uuid4().hex[:8]
        self.deliveries = Deliveries()
        self.callbacks_on = True  # False: take `fal_webhook` but never call (a lost callback)

    @property
    def url(self) -> str:
        return self.origin

    @property
    def jwks_url(self) -> str:
        return self.origin + "/.well-known/jwks.json"

    def app(self):
        inner = Starlette(routes=[
            Route("/.well-known/jwks.json", self._jwks, methods=["GET"]),
            Route("/{owner}/{alias}/requests/{rid}/status", self._status, methods=["GET"]),
            Route("/{owner}/{alias}/requests/{rid}/cancel", self._cancel, methods=["PUT"]),
            Route("/{owner}/{alias}/requests/{rid}", self._result, methods=["GET"]),
            Route("/{app:path}", self._submit, methods=["POST"]),
        ])
        return FaultMiddleware(inner, self.faults, self.classify, self._record)

    def _record(self, method: str, path: str, auth: str | None) -> None:
        self.recorder(method, path, auth)
        with self._lock:
            self.calls.append((time.monotonic(), method, path))

    @staticmethod
    def classify(method: str, path: str) -> str | None:
        if method == "POST":
            return "submit"
        if method == "PUT":
            return "cancel"
        return "poll" if path.endswith("/status") else "content"

    def _denied(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Key {self.key}":
            return _json({"detail": "Unauthorized"}, 401)
        return None

    def _urls(self, req: FalRequest) -> dict:
        base = f"{self.origin}/{req.root}/requests/{req.id}"
        return {"response_url": base, "status_url": base + "/status",
                "cancel_url": base + "/cancel"}

    def _find(self, request: Request) -> FalRequest | None:
        p = request.path_params
        req = self.requests.get(p["rid"])
        return req if req is not None and req.root == f"{p['owner']}/{p['alias']}" else None

    def state(self, req: FalRequest) -> str:
        elapsed = time.monotonic() - req.created
        if req.cancelled or elapsed < self.job_seconds / 3:
            return "IN_QUEUE"
        if req.has("stuck") or elapsed < self.job_seconds or not req.clip.done():
            return "IN_PROGRESS"
        return "COMPLETED"

    async def _submit(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        app = request.path_params["app"]
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict) or not body.get("prompt"):
            return _json({"detail": [{"loc": ["body", "prompt"], "msg": "Field required",
                                      "type": "missing"}]}, 422)
        req = FalRequest(str(uuid.uuid4()), app, "/".join(app.split("/")[:2]), body)
        width, height = frame_of(body)
        req.clip = asyncio.get_running_loop().run_in_executor(
            None, self.clips.get, width, height, seconds_of(body))
        req.webhook = request.query_params.get("fal_webhook")
        with self._lock:
            self.requests[req.id] = req
        if req.webhook:
            asyncio.get_running_loop().create_task(self._call_back(req))
        return _json({"request_id": req.id, **self._urls(req), "status": "IN_QUEUE"})

    async def _call_back(self, req: FalRequest) -> None:
        """Post the outcome once the request ends, signed as fal signs."""
        await asyncio.wait([req.clip])
        while self.state(req) != "COMPLETED":
            if req.cancelled:
                return
            await asyncio.sleep(0.02)  # the fake's own clock: its requests end by time
        if not self.callbacks_on:
            return
        status, payload, _ = self.outcome(req)
        delivery = {"request_id": req.id, "gateway_request_id": req.id,
                    "status": "OK" if status == 200 else "ERROR", "payload": payload}
        if status != 200:
            delivery["error"] = f"Invalid status code: {status}"
        body = orjson.dumps(delivery)
        await self.deliveries.post(req.webhook, self.sign(req.id, body), body)

    def sign(self, request_id: str, body: bytes, timestamp: int | None = None,
             user_id: str | None = None) -> dict[str, str]:
        """The X-Fal-Webhook-* headers of a delivery."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        user = user_id or self.user_id
        message = "\n".join([request_id, user, stamp, hashlib.sha256(body).hexdigest()])
        return {"x-fal-webhook-request-id": request_id, "x-fal-webhook-user-id": user,
                "x-fal-webhook-timestamp": stamp,
                "x-fal-webhook-signature": self.signing_key.sign(message.encode()).hex()}

    async def _jwks(self, _request: Request) -> Response:
        raw = self.signing_key.public_key().public_bytes_raw()
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        return _json({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x}]})

    async def _status(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        req = self._find(request)
        if req is None:
            return _json({"detail": "Request not found"}, 404)
        state = self.state(req)
        logs = [] if request.query_params.get("logs") in ("1", "true") else None
        body = {"status": state, "request_id": req.id, "response_url": self._urls(req)[
            "response_url"], "logs": logs}
        if state == "IN_QUEUE":
            body["queue_position"] = 0
            return _json(body, 202)
        if state == "IN_PROGRESS":
            return _json(body, 202)
        body["metrics"] = {"inference_time": self.job_seconds}
        if req.has("fail"):
            body.update(error="Request timed out", error_type="request_timeout")
        return _json(body)

    async def _result(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        req = self._find(request)
        if req is None:
            return _json({"detail": "Request not found"}, 404)
        if self.state(req) != "COMPLETED":
            return _json({"detail": "Request is still in progress"}, 400)
        status, body, headers = self.outcome(req)
        return _json(body, status, headers=headers)

    def outcome(self, req: FalRequest) -> tuple[int, dict, dict | None]:
        """A finished request's result: (HTTP status, body, headers), as the result
        endpoint answers it and a webhook carries it as `payload`."""
        if req.has("moderation"):
            return 422, {"detail": [{
                "loc": ["body", "prompt"], "msg": "The content was flagged by a content checker.",
                "type": "content_policy_violation",
                "url": "https://docs.fal.ai/errors#content_policy_violation",
                "input": req.input["prompt"]}]}, None
        if req.has("fail"):
            return 504, {"detail": "Request timed out", "error_type": "request_timeout"}, \
                {"X-Fal-Error-Type": "request_timeout"}
        clip = req.clip.result()
        url = self.cdn.add(f"{req.id}.mp4", clip)
        return 200, {"video": {"url": url, "content_type": "video/mp4",
                               "file_name": "output.mp4", "file_size": clip.stat().st_size}}, None

    async def _cancel(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        req = self._find(request)
        if req is None:
            return _json({"status": "NOT_FOUND"}, 404)
        if self.state(req) == "COMPLETED":
            return _json({"status": "ALREADY_COMPLETED"}, 400)
        req.cancelled = True
        self.cancels.append(req.id)
        return _json({"status": "CANCELLATION_REQUESTED"}, 202)
