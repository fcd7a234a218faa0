"""fal.ai's queue: `POST {base}/{app id}`, then the request's status and result URLs.

Read from fal-client 1.0.3 (`fal_client/client.py`: `AsyncClient.submit`, `AsyncRequestHandle`
`.status/.get/.cancel/.from_request_id`, `AppId`, `_BaseRequestHandle._parse_status`;
`fal_client/auth.py`: the `Key` header) and fal's docs (Queue API, Inference API, Get request
result, Cancel a request, Model Errors, Request Error Types).

- The submit answer names `response_url`; `status_url` and `cancel_url` are that URL plus
  `/status` and `/cancel`, which is also how fal-client rebuilds a handle from a request id
  in another process (`from_request_id`) -- our situation after a restart. So the job id we
  keep is the response URL's path under the channel's base, e.g.
  `fal-ai/veo3/requests/<request_id>`, and the key only ever goes to the channel's origin:
  a response URL elsewhere is not followed, the path is rebuilt as fal-client does.
- Status answers 202 while the request waits or runs and 200 once it is `COMPLETED`;
  completion says nothing of success. The result endpoint answers with the model's own
  status and body: 200 and the output (`video.url` on fal's CDN, fetched without the key),
  or a model error (422, `detail` a list of `{loc, msg, type}`, `content_policy_violation`
  for a refusal), or a request error after fal's own retries (`error_type` in the body and
  `X-Fal-Error-Type`). A status may itself carry `error` / `error_type` (fal-client reads them).
- Cancel is `PUT cancel_url`; fal answers OK, CANCELLATION_REQUESTED, ALREADY_COMPLETED or
  NOT_FOUND, all of which end our interest in the request.
- fal reports no progress, only a queue position, so progress stays unknown.
- Callbacks: a submit with `Job.callback_url` adds `?fal_webhook=<url>` (the docs' Webhooks
  page; fal-client's `submit(webhook_url=)` does the same). fal posts `{request_id,
  gateway_request_id, status: OK | ERROR, payload, error, payload_error}` once the request
  ends, signed with ED25519; the keys come from the channel's `jwks_url` (default fal's
  own, `DEFAULT_JWKS_URL`), so a test or a proxy can stand in for it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from ..channels import ChannelConfig, origin_of
from ..domain import COMPLETED, FAILED, IN_PROGRESS, QUEUED, UPSTREAM_ERROR
from ..images import data_url
from .base import (
    UNKNOWN,
    Job,
    PollResult,
    SubmitRefused,
    TransientError,
    UpstreamFailed,
)
from .framing import aspect_ratio, fit_reference, resolution
from .http.answers import (
    check_cancel,
    check_submit,
    clean_message,
    dig,
    failure_code,
    json_body,
    retry_after,
    upstream_id,
)
from .http.base import HttpBackend
from .http.client import UpstreamResponse
from .http.credentials import Credentials, StaticHeaders
from .http.signatures import Jwks, fal_message

DEFAULT_JWKS_URL = "https://rest.alpha.fal.ai/.well-known/jwks.json"
_STATES = {"IN_QUEUE": QUEUED, "IN_PROGRESS": IN_PROGRESS, "COMPLETED": COMPLETED}
_SEGMENT = re.compile(r"^[A-Za-z0-9._~-]+$")
# fal-client's APP_NAMESPACES: an app id that starts with one of these has one more part.
_NAMESPACES = ("workflows", "comfy")


@dataclass(frozen=True)
class Spelling:
    """How a family of fal apps spells the canonical frame and length (from its API page)."""

    duration: str                # format of `duration`: "{}s" -> "8s", "{}" -> "5"
    resolution: bool             # takes `resolution` ("720p", "1080p")
    aspect_ratio: bool           # its text-to-video app takes `aspect_ratio`
    image_aspect_ratio: bool     # its image-to-video app does too


# fal-ai/veo3, fal-ai/veo3/fast, fal-ai/veo3/image-to-video: aspect_ratio 16:9 | 9:16
# ("auto" too for images), duration "4s" | "6s" | "8s", resolution 720p | 1080p.
# fal-ai/kling-video/v2.1/master/text-to-video (and v1.6, v2): duration "5" | "10",
# aspect_ratio 16:9 | 9:16 | 1:1; the image-to-video apps take image_url and no aspect_ratio.
SPELLINGS: tuple[tuple[str, Spelling], ...] = (
    ("fal-ai/veo3", Spelling("{}s", resolution=True, aspect_ratio=True,
                             image_aspect_ratio=True)),
    ("fal-ai/kling-video/", Spelling("{}", resolution=False, aspect_ratio=True,
                                     image_aspect_ratio=False)),
)
# Any other app: the fields most fal video apps share; a channel's `extra_fields` adds more.
GENERIC = Spelling("{}", resolution=True, aspect_ratio=True, image_aspect_ratio=True)


def spelling_for(app: str) -> Spelling:
    for prefix, spelling in SPELLINGS:
        if app == prefix or app.startswith(prefix if prefix.endswith("/") else prefix + "/"):
            return spelling
    return GENERIC


def fal_input(job: Job, app: str, extra: dict[str, Any]) -> dict[str, Any]:
    """The app's input: the channel's extra fields, then the canonical request over them
    (the client's size and length are never overridden by a default)."""
    req = job.request
    spelling = spelling_for(app)
    body = dict(extra)
    body["prompt"] = req.prompt
    body["duration"] = spelling.duration.format(req.seconds)
    image = job.reference is not None
    if spelling.image_aspect_ratio if image else spelling.aspect_ratio:
        body["aspect_ratio"] = aspect_ratio(req.width, req.height)
    if spelling.resolution:
        body["resolution"] = resolution(req.width, req.height)
    if job.reference is not None:
        body["image_url"] = data_url(fit_reference(job.reference, req.width, req.height))
    return body


def fal_error(body: Any) -> tuple[str, str]:
    """(type, message) from a model error (`detail`: list of {loc, msg, type}) or a request
    error (`detail`: text, `error_type`), or from a status's `error` / `error_type`."""
    if not isinstance(body, dict):
        return "", ""
    detail = body.get("detail")
    if isinstance(detail, list):
        items = [d for d in detail if isinstance(d, dict)]
        types = [str(d.get("type") or "") for d in items]
        # a refusal anywhere in the list is the refusal, whatever else went wrong
        kind = next((t for t in types if failure_code(t, "") != UPSTREAM_ERROR),
                    types[0] if types else "")
        return kind, "; ".join(str(d.get("msg") or "") for d in items if d.get("msg"))
    message = detail if isinstance(detail, str) else body.get("error")
    return str(body.get("error_type") or ""), str(message or "")


def _as_openai_error(response: UpstreamResponse) -> UpstreamResponse:
    """fal's error body in the `{"error": {code, message}}` shape check_submit reads, so
    the rules for which statuses refuse and which fail stay in one place."""
    if 200 <= response.status_code < 300:
        return response
    code, message = fal_error(json_body(response))
    if not code and not message:
        return response
    return UpstreamResponse(response.status_code, response.headers,
                            orjson.dumps({"error": {"code": code, "message": message}}))


def read_status(body: Any) -> PollResult:
    """A status answer. COMPLETED without an error still needs the result for its URL:
    it comes back as COMPLETED with no result_url."""
    if not isinstance(body, dict):
        return PollResult(UNKNOWN)
    state = _STATES.get(body.get("status"), UNKNOWN) if isinstance(body.get("status"), str) \
        else UNKNOWN
    if state == COMPLETED and (body.get("error") or body.get("error_type")):
        return _failed(*fal_error(body))
    return PollResult(state)


def read_output(body: Any) -> PollResult:
    """A finished request's output (the result endpoint's 200 body, or a webhook's
    `payload`): the video on fal's CDN."""
    url = dig(body, ("video", "url"))
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        url = None
    return PollResult(COMPLETED, 100, result_url=url)


def read_result(response: UpstreamResponse) -> PollResult:
    """The result endpoint's answer, which is the model's own answer."""
    status = response.status_code
    body = json_body(response)
    if status == 200:
        if not isinstance(body, dict):
            raise TransientError("the result answered 200 without a JSON object")
        return read_output(body)
    if status in (400, 422):
        return _failed(*fal_error(body))
    error_type = response.headers.get("x-fal-error-type") or (
        body.get("error_type") if isinstance(body, dict) else None)
    if status >= 500 and error_type:
        # a request error fal reports after its own retries: the request is over
        return _failed(str(error_type), fal_error(body)[1])
    raise TransientError(f"the result answered HTTP {status}", retry_after=retry_after(response))


def read_webhook(body: Any) -> PollResult:
    """A webhook delivery: `status` OK with the output as `payload`, or ERROR with the
    error's details as `payload` (a model error's `detail` list, say) and `error` text."""
    if not isinstance(body, dict):
        return PollResult(UNKNOWN)
    if body.get("status") == "OK" and isinstance(body.get("payload"), dict):
        return read_output(body["payload"])
    if body.get("status") == "ERROR":
        code, message = fal_error(body.get("payload"))
        return _failed(code, message or str(body.get("error") or ""))
    return PollResult(UNKNOWN)


def _failed(code: str, message: str) -> PollResult:
    return PollResult(FAILED, error_code=failure_code(code, message),
                      error_message=clean_message(message, "fal failed the request."))


class FalBackend(HttpBackend):
    supports_callbacks = True

    def __init__(self, config: ChannelConfig) -> None:
        super().__init__(config)
        url = config.jwks_url or DEFAULT_JWKS_URL
        self.jwks = Jwks(lambda: self.client.get_json(url))

    def credentials(self) -> Credentials | None:
        key = self.config.api_key()
        return StaticHeaders({"Authorization": f"Key {key}"}) if key else None

    def app_for(self, job: Job) -> str:
        """The app id: the image-to-video app when there is an image and one is named."""
        model = job.request.model
        app = self.config.upstream_model(model)
        if job.reference is not None:
            app = self.config.image_to_video_models.get(model, app)
        if job.reference is not None and app.endswith("/text-to-video"):
            # the app would ignore the image: better a clear failure than a silent drop
            raise UpstreamFailed(f"This channel names no image-to-video app for '{model}' "
                                 f"(image_to_video_models); '{app}' takes no image.")
        parts = app.strip("/").split("/")
        if len(parts) < 2 or not all(_SEGMENT.match(p) and p not in (".", "..") for p in parts):
            raise UpstreamFailed(f"'{app}' is not a fal app id (owner/app[/path]).")
        return "/".join(parts)

    async def submit(self, job: Job) -> str:
        app = self.app_for(job)
        response = await self.client.request(
            "POST", "/" + app, submit=True,
            json=fal_input(job, app, self.extra_fields(job.request)),
            params={"fal_webhook": job.callback_url} if job.callback_url else None)
        answer = check_submit(_as_openai_error(response))
        return self.request_path(answer, app)

    def request_path(self, answer: dict, app: str) -> str:
        """`owner/app/requests/<id>`: where this request's status, result and cancel live."""
        request_id = upstream_id(answer, "request_id")
        url = answer.get("response_url")
        if isinstance(url, str) and self.client.origin and origin_of(url) == self.client.origin:
            prefix = urlsplit(self.client.base).path.rstrip("/") + "/"
            path = urlsplit(url).path
            if path.startswith(prefix):
                parts = path[len(prefix):].split("/")
                if all(_SEGMENT.match(p) and p not in (".", "..") for p in parts) \
                        and len(path) - len(prefix) <= 255:
                    return "/".join(parts)
        # fal-client's own construction: owner/alias (after a namespace), never the subpath
        parts = app.split("/")
        root = parts[:3] if parts[0] in _NAMESPACES else parts[:2]
        if not _SEGMENT.match(request_id):
            raise SubmitRefused("the submit answer carries an unusable request id")
        return "/".join([*root, "requests", request_id])

    async def poll(self, job: Job) -> PollResult:
        path = self._path(job)
        response = await self.client.request("GET", f"/{path}/status")
        if response.status_code not in (200, 202):
            raise TransientError(f"status answered HTTP {response.status_code}",
                                 retry_after=retry_after(response))
        result = read_status(json_body(response))
        if result.state != COMPLETED:
            return result
        return read_result(await self.client.request("GET", f"/{path}"))

    async def cancel(self, job: Job) -> None:
        """Best effort: every answer fal documents ends our interest in the request."""
        if job.upstream_id:
            check_cancel(await self.client.request("PUT", f"/{self._path(job)}/cancel"))

    async def verify_callback(self, headers: Mapping[str, str], body: bytes,
                              now: float) -> str | None:
        message, signature = fal_message(headers, body, now)
        await self.jwks.verify(message, signature)
        return signature.hex()  # fal names no delivery id; a replay repeats the signature

    def read_callback(self, body: bytes) -> PollResult:
        try:
            return read_webhook(orjson.loads(body))
        except orjson.JSONDecodeError:
            return PollResult(UNKNOWN)

    @staticmethod
    def _path(job: Job) -> str:
        return quote(job.upstream_id or "", safe="/")
