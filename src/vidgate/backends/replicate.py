"""Replicate's predictions API: `POST {base}/models/{owner}/{name}/predictions` (an official
model) or `POST {base}/predictions` with a `version`, then `GET {base}/predictions/{id}`.

Read from replicate 1.0.7 (`replicate/client.py`: Bearer token, `REPLICATE_API_TOKEN`,
base URL; `replicate/prediction.py`: the Prediction fields, `create` / `get` / `cancel`
paths, `wait` until succeeded | failed | canceled, `Prediction.Progress` parsed from the
tqdm lines of `logs`; `replicate/model.py`: the official-model path;
`replicate/exceptions.py`: errors as RFC 7807 problem details) and Replicate's HTTP API
reference (create a prediction, get, cancel; status starting | processing | succeeded |
failed | canceled; `output` a URL or a list of URLs on replicate.delivery) and the API
pages of google/veo-3, google/veo-3-fast, google/veo-3.1, kwaivgi/kling-v2.1-master and
minimax/hailuo-02.

Replicate has no progress field; the official client reads progress from the tqdm bars a
model prints in `logs` (`45%|####  | 45/100`), and so do we: absent bars mean unknown.
A content refusal is a failed prediction whose `error` says the input or output was
flagged as sensitive or NSFW (Replicate's E005): `moderation_blocked`.

Callbacks: a submit with `Job.callback_url` asks for `webhook` with
`webhook_events_filter: ["completed"]` (the SDK's `CreatePredictionParams`; the events are
start, output, logs, completed), so Replicate posts the prediction once it ends. Its
deliveries are signed with Standard Webhooks; the key is the channel's
`webhook_secret_env`, or else `GET {base}/webhooks/default/secret` (`replicate/webhook.py`),
fetched once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from ..domain import COMPLETED, FAILED, IN_PROGRESS, QUEUED
from ..images import data_url
from .base import UNKNOWN, CallbackRefused, Job, PollResult, TransientError, UpstreamFailed
from .framing import aspect_ratio, fit_reference, resolution
from .http.answers import (
    check_cancel,
    check_poll,
    check_submit,
    clean_message,
    failure_code,
    json_body,
    upstream_id,
)
from .http.base import HttpBackend
from .http.client import UpstreamResponse
from .http.signatures import standard_webhook

_STATES = {"starting": QUEUED, "processing": IN_PROGRESS, "succeeded": COMPLETED,
           "failed": FAILED, "canceled": FAILED}
# replicate.prediction.Prediction.Progress._pattern, read from the last matching line
_PROGRESS = re.compile(r"^\s*(?P<percentage>\d+)%\s*\|.+?\|\s*(?P<current>\d+)\/(?P<total>\d+)")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_VERSION = re.compile(r"^[A-Za-z0-9]+$")


@dataclass(frozen=True)
class Spelling:
    """How a family of Replicate models names the image and the frame (from its API page)."""

    image: str             # the input that takes the first frame
    aspect_ratio: bool     # takes `aspect_ratio` without an image
    image_aspect_ratio: bool  # ...and with one (else the image's frame decides)
    resolution: bool       # takes `resolution` ("720p", "1080p")


# google/veo-3, veo-3-fast, veo-3.1: prompt, image, aspect_ratio 16:9 | 9:16, duration
# (int), resolution 720p | 1080p, negative_prompt, seed. kwaivgi/kling-v2.1(-master):
# start_image, aspect_ratio (ignored with an image), duration 5 | 10. minimax/hailuo-02:
# first_frame_image (its frame decides), duration 6 | 10, resolution 512p | 768p | 1080p.
SPELLINGS: tuple[tuple[str, Spelling], ...] = (
    ("google/veo-", Spelling("image", True, True, True)),
    ("kwaivgi/kling-", Spelling("start_image", True, False, False)),
    ("minimax/hailuo-", Spelling("first_frame_image", False, False, True)),
)
GENERIC = Spelling("image", True, True, True)


def spelling_for(model: str) -> Spelling:
    return next((s for prefix, s in SPELLINGS if model.startswith(prefix)), GENERIC)


def replicate_input(job: Job, model: str, extra: dict[str, Any],
                    image_field: str | None = None) -> dict[str, Any]:
    """The model's input: channel extras first, the client's request over them."""
    req = job.request
    spelling = spelling_for(model)
    body = dict(extra)
    body["prompt"] = req.prompt
    body["duration"] = req.seconds
    image = job.reference is not None
    if spelling.image_aspect_ratio if image else spelling.aspect_ratio:
        body["aspect_ratio"] = aspect_ratio(req.width, req.height)
    if spelling.resolution:
        body["resolution"] = resolution(req.width, req.height)
    if job.reference is not None:
        fitted = fit_reference(job.reference, req.width, req.height)
        body[image_field or spelling.image] = data_url(fitted)
    return body


def read_progress(logs: Any) -> int | None:
    """The last tqdm bar's percentage in `logs`, as the official client reads it."""
    if not isinstance(logs, str):
        return None
    for line in reversed(logs.split("\n")):
        match = _PROGRESS.match(line.strip())
        if match:
            return max(0, min(100, int(match["percentage"])))
    return None


def first_url(output: Any) -> str | None:
    """`output` is a URL, or a list whose first URL is the video."""
    items = output if isinstance(output, list) else [output]
    return next((o for o in items
                 if isinstance(o, str) and o.startswith(("http://", "https://"))), None)


def read_prediction(body: Any) -> PollResult:
    """A prediction object (a GET answer, and the body of Replicate's webhooks) as a
    PollResult; unknown shapes keep the task polling."""
    if not isinstance(body, dict) or not isinstance(body.get("status"), str):
        return PollResult(UNKNOWN)
    status = body["status"]
    state = _STATES.get(status, UNKNOWN)
    if state == COMPLETED:
        return PollResult(COMPLETED, 100, result_url=first_url(body.get("output")))
    if state == FAILED:
        if status == "canceled":
            return PollResult(FAILED, error_code="upstream_error",
                              error_message="The prediction was canceled on Replicate.")
        error = body.get("error")
        message = error if isinstance(error, str) else ""
        return PollResult(FAILED, error_code=failure_code("", message),
                          error_message=clean_message(message, "Replicate failed the job."))
    return PollResult(state, read_progress(body.get("logs")) if state == IN_PROGRESS else None)


def _as_openai_error(response: UpstreamResponse) -> UpstreamResponse:
    """Replicate's problem details (`title`, `detail`) in the shape check_submit reads."""
    body = json_body(response)
    if 200 <= response.status_code < 300 or not isinstance(body, dict):
        return response
    title, detail = body.get("title"), body.get("detail")
    if not isinstance(detail, str) and not isinstance(title, str):
        return response
    error = {"code": str(title or ""), "message": str(detail or title or "")}
    return UpstreamResponse(response.status_code, response.headers,
                            orjson.dumps({"error": error}))


class ReplicateBackend(HttpBackend):
    supports_callbacks = True
    _webhook_secret: str | None = None  # fetched from the API when the channel names none

    def model_for(self, job: Job) -> str:
        model = job.request.model
        name = self.config.upstream_model(model)
        if job.reference is not None:
            name = self.config.image_to_video_models.get(model, name)
        return name

    async def submit(self, job: Job) -> str:
        name = self.model_for(job)
        ref, _, version = name.partition(":")
        owner, _, model = ref.partition("/")
        if not (_NAME.match(owner) and _NAME.match(model)) or (version and
                                                                not _VERSION.match(version)):
            raise UpstreamFailed(f"'{name}' is not a Replicate model (owner/name[:version]).")
        body: dict[str, Any] = {"input": replicate_input(
            job, ref, self.extra_fields(job.request), self.config.image_field)}
        if job.callback_url:
            body["webhook"] = job.callback_url
            body["webhook_events_filter"] = ["completed"]
        if version:
            body["version"] = version
            path = "/predictions"
        else:
            path = f"/models/{owner}/{model}/predictions"
        response = await self.client.request("POST", path, submit=True, json=body)
        return upstream_id(check_submit(_as_openai_error(response)), "id")

    async def poll(self, job: Job) -> PollResult:
        response = await self.client.request("GET", f"/predictions/{_id(job)}")
        body = check_poll(response)
        if not isinstance(body, dict):
            raise TransientError("the prediction answer is not a JSON object")
        return read_prediction(body)

    async def cancel(self, job: Job) -> None:
        if job.upstream_id:
            check_cancel(await self.client.request("POST", f"/predictions/{_id(job)}/cancel"))

    async def verify_callback(self, headers: Mapping[str, str], body: bytes,
                              now: float) -> str | None:
        secret = self.config.webhook_secret() or await self._secret_from_api()
        return standard_webhook(secret, headers, body, now)

    def read_callback(self, body: bytes) -> PollResult:
        try:
            return read_prediction(orjson.loads(body))
        except orjson.JSONDecodeError:
            return PollResult(UNKNOWN)

    async def _secret_from_api(self) -> str:
        if self._webhook_secret is None:
            try:
                response = await self.client.request("GET", "/webhooks/default/secret")
            except TransientError as exc:
                raise CallbackRefused("Replicate's webhook secret cannot be fetched now",
                                      status=503) from exc
            answer = json_body(response) if response.status_code == 200 else None
            key = answer.get("key") if isinstance(answer, dict) else None
            if not isinstance(key, str) or not key.startswith("whsec_"):
                raise CallbackRefused("Replicate did not give its webhook secret", status=503)
            self._webhook_secret = key
        return self._webhook_secret


def _id(job: Job) -> str:
    return quote(job.upstream_id or "", safe="")
