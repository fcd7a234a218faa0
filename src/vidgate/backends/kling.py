"""Kling (Kuaishou): `POST {base}/v1/videos/text2video` or `/image2video`, then
`GET {base}/v1/videos/{text2video|image2video}/{task_id}`, every answer in a
`{"code", "message", "request_id", "data"}` envelope, signed with a JWT vidgate makes.

Read: the Kling API reference (app.klingai.com/global/dev/document-api): "General
Information" (API domain https://api-singapore.klingai.com, which replaced
https://api.klingai.com for servers outside China; JWT authentication; the error code
table), "Concurrency Rules" (code 1303), the text-to-video and image-to-video pages (create
and query task fields, `task_status`, `task_result.videos[].url`/`duration`, `callback_url`).
Kling publishes no official Python SDK on PyPI; the JWT recipe is the one in its docs.

The query path needs the task's kind, so the upstream id vidgate stores is
"text2video:<id>" or "image2video:<id>" (clients never see it). Kling has no cancel.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import jwt
import orjson

from ..domain import COMPLETED, FAILED, IN_PROGRESS, MODERATION_BLOCKED, QUEUED, UPSTREAM_ERROR
from .base import UNKNOWN, Job, PollResult, SubmitRefused, TransientError, UpstreamFailed
from .framing import fit_reference
from .http.answers import clean_message, dig, failure_code, json_body, retry_after, upstream_id
from .http.base import HttpBackend
from .http.client import UpstreamResponse
from .http.credentials import Credentials
from .tables import KLING_RATIOS, KLING_SIZES

# The docs' token: valid from 5 s ago (clock skew) for 30 minutes.
TOKEN_SECONDS = 1800
NOT_BEFORE_SKEW = 5
# A new token is signed this long before the old one expires, so no request carries a token
# that dies in flight.
RENEW_MARGIN = 300

KINDS = ("text2video", "image2video")
STATES = {"submitted": QUEUED, "processing": IN_PROGRESS, "succeed": COMPLETED,
          "failed": FAILED}

# The docs' error codes. 1301: the content security policy refused the request.
MODERATION_CODES = frozenset({1301})
# The request itself was judged and refused: bad parameters, a platform policy.
REJECTED_CODES = frozenset({1200, 1201, 1300})
# Everything else the table lists is the channel's problem, not the request's: auth
# (1000-1004), account and balance (1100-1103), rate and concurrency limits and the IP
# allow-list (1302-1304), the API's own errors (1202, 1203, 5000-5002). Another channel
# may take the job.
_KLING_MODERATION = re.compile(r"content security", re.IGNORECASE)


class KlingToken:
    """The HS256 JWT Kling wants (`iss` = access key, `exp`, `nbf`), signed with the secret
    key and renewed `margin` seconds before it expires. `clock` is injectable for tests."""

    def __init__(self, access_key: str, secret_key: str, *, lifetime: int = TOKEN_SECONDS,
                 margin: int = RENEW_MARGIN, clock: Callable[[], float] = time.time) -> None:
        if margin >= lifetime:
            raise ValueError("the renewal margin must be shorter than the token's lifetime")
        self._access_key = access_key
        self._secret_key = secret_key
        self._lifetime = lifetime
        self._margin = margin
        self._clock = clock
        self._token = ""
        self._expires = 0.0

    def token(self) -> str:
        now = int(self._clock())
        if not self._token or now >= self._expires - self._margin:
            payload = {"iss": self._access_key, "exp": now + self._lifetime,
                       "nbf": now - NOT_BEFORE_SKEW}
            self._token = jwt.encode(payload, self._secret_key, algorithm="HS256",
                                     headers={"alg": "HS256", "typ": "JWT"})
            self._expires = now + self._lifetime
        return self._token

    async def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}


class KlingBackend(HttpBackend):
    # Kling POSTs the task to `callback_url` when it ends (succeed or failed); it documents
    # no signature, so vidgate's own signed per-task URL is the guard (engine/callbacks.py).
    supports_callbacks = True

    def credentials(self) -> Credentials | None:
        access, secret = self.config.api_key(), self.config.secret_key()
        if not access or not secret:
            return None  # the config loader names the missing variable; Kling answers 1001
        return KlingToken(access, secret, lifetime=TOKEN_SECONDS, margin=RENEW_MARGIN)

    async def submit(self, job: Job) -> str:
        req = job.request
        mode = self.config.extra_fields.get("mode", "std")
        sizes = KLING_SIZES.get(mode, ())
        if req.size not in sizes:
            raise UpstreamFailed(f"Kling's {mode} mode cannot produce {req.size}.")
        # The channel's and the client's extra fields first: the canonical request wins.
        body: dict[str, Any] = {
            **self.extra_fields(req),
            "model_name": self.config.upstream_model(req.model),
            "prompt": req.prompt,
            "mode": mode,
            "duration": str(req.seconds),
        }
        if job.reference is not None:
            kind = "image2video"
            # The video takes the image's shape: crop it to the requested one first.
            image = await asyncio.to_thread(fit_reference, job.reference, req.width,
                                            req.height)
            body["image"] = base64.b64encode(image).decode()  # the docs: no data: prefix
        else:
            kind = "text2video"
            body["aspect_ratio"] = KLING_RATIOS[sizes.index(req.size)]
        if job.callback_url:  # set by the engine when VIDGATE_PUBLIC_URL is
            body["callback_url"] = job.callback_url
        response = await self.client.request("POST", f"/v1/videos/{kind}", submit=True,
                                             json=body)
        return f"{kind}:{upstream_id(accepted(response), 'task_id')}"

    async def poll(self, job: Job) -> PollResult:
        kind, _, task_id = (job.upstream_id or "").partition(":")
        if kind not in KINDS or not task_id:
            raise UpstreamFailed("The task's Kling id is unreadable.")
        response = await self.client.request(
            "GET", f"/v1/videos/{kind}/{quote(task_id, safe='')}")
        body = json_body(response)
        if response.status_code != 200 or not isinstance(body, dict) or body.get("code") != 0:
            raise TransientError(f"Kling query answered HTTP {response.status_code}, code "
                                 f"{body.get('code') if isinstance(body, dict) else None}",
                                 retry_after=retry_after(response))
        return read_task(body)

    async def cancel(self, job: Job) -> None:
        """Kling's API has no cancel: the task runs out on Kling's side."""

    async def verify_callback(self, headers: Mapping[str, str], body: bytes,
                              now: float) -> str | None:
        """Kling signs nothing and names no delivery id: the signed URL was checked."""
        return None

    def read_callback(self, body: bytes) -> PollResult:
        """The pushed task (a query's `data`, or the whole envelope) read as a poll would."""
        try:
            return read_task(orjson.loads(body))
        except orjson.JSONDecodeError:
            return PollResult(UNKNOWN)


def accepted(response: UpstreamResponse) -> dict:
    """The envelope of an accepted create, or the error its code means."""
    body = json_body(response)
    envelope = body if isinstance(body, dict) else {}
    code = envelope.get("code")
    message = clean_message(envelope.get("message"), "Kling refused the request.")
    if code in MODERATION_CODES:
        raise UpstreamFailed(message, code=MODERATION_BLOCKED)
    if code in REJECTED_CODES:
        raise UpstreamFailed(message, code=UPSTREAM_ERROR)
    status = response.status_code
    if 200 <= status < 300 and code == 0 and isinstance(envelope.get("data"), dict):
        return envelope
    if status == 400 and code is not None:
        raise UpstreamFailed(message, code=UPSTREAM_ERROR)
    raise SubmitRefused(f"Kling create answered HTTP {status}, code {code}",
                        retry_after=retry_after(response))


def read_task(body: Any) -> PollResult:
    """A PollResult from a query answer (the envelope) or its `data` alone (what a callback
    is expected to carry)."""
    if not isinstance(body, dict):
        return PollResult(UNKNOWN)
    task = body["data"] if isinstance(body.get("data"), dict) else body
    status = task.get("task_status")
    state = STATES.get(status, UNKNOWN) if isinstance(status, str) else UNKNOWN
    if state == FAILED:
        message = str(task.get("task_status_msg") or "")
        code = (MODERATION_BLOCKED if _KLING_MODERATION.search(message)
                else failure_code("", message))
        return PollResult(FAILED, error_code=code,
                          error_message=clean_message(message, "Kling failed the task."))
    if state == COMPLETED:
        videos = dig(task, ("task_result", "videos"))
        first = videos[0] if isinstance(videos, list) and videos else {}
        url = first.get("url") if isinstance(first, dict) else None
        return PollResult(COMPLETED, 100,
                          result_url=url if isinstance(url, str) and url else None)
    return PollResult(state)
