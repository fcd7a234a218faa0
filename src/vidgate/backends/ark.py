"""ByteDance Seedance on Volcengine Ark and BytePlus ModelArk: one protocol, two base URLs.

`POST {base}/contents/generations/tasks` with `model`, `content` items (the prompt as a
`text` item, the first frame as an `image_url` item with `role: first_frame`) and the video
parameters as JSON fields (`resolution`, `ratio`, `duration`, `seed`, `camera_fixed`,
`watermark`: the form the `volcengine-python-sdk` Ark runtime sends, rather than the older
`--resolution 720p` commands inside the text); `GET {base}/contents/generations/tasks/{id}`
until `succeeded` (`content.video_url`) or `failed`/`expired`/`cancelled` (`error`
{code, message}); `DELETE` on the same path cancels a queued task.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from ..domain import COMPLETED, FAILED, IN_PROGRESS, MODERATION_BLOCKED, QUEUED, UPSTREAM_ERROR
from ..images import data_url
from .base import UNKNOWN, Job, PollResult, UpstreamFailed
from .http.answers import (
    check_cancel,
    check_poll,
    check_submit,
    clean_message,
    dig,
    error_fields,
    failure_code,
    json_body,
    upstream_id,
)
from .http.base import HttpBackend
from .tables import ARK_SIZES

VOLCENGINE_URL = "https://ark.cn-beijing.volces.com/api/v3"
BYTEPLUS_URL = "https://ark.ap-southeast.bytepluses.com/api/v3"

SIZES = ARK_SIZES  # canonical size -> (resolution, ratio): backends/tables.py

# Create-task fields a channel's `extra_fields` (or allowed `metadata`) may set; resolution,
# ratio and duration come from the canonical size and length and are never overridden.
PASS_THROUGH = (
    "camera_fixed", "watermark", "seed", "generate_audio", "service_tier",
    "execution_expires_after", "return_last_frame", "draft", "priority", "safety_identifier",
)

STATUS = {"queued": QUEUED, "running": IN_PROGRESS, "succeeded": COMPLETED,
          "failed": FAILED, "expired": FAILED, "cancelled": FAILED}

# Content-safety refusals: Input/Output{Text,Image,Video,Audio}SensitiveContentDetected[.x]
# and Input/Output...RiskDetection (ContentSecurityDetectionError is the checker failing).
_REFUSAL = re.compile(r"^(Input|Output)\w*(SensitiveContentDetected|RiskDetection)")


def refusal_code(code: str, message: str) -> str:
    """moderation_blocked for Ark's content-safety codes, else the shared reading."""
    if _REFUSAL.match(code):
        return MODERATION_BLOCKED
    if code.startswith("ContentSecurity"):  # the checker itself failed: not a refusal
        return UPSTREAM_ERROR
    return failure_code(code, message)


def read_task(body: Any) -> PollResult:
    """A PollResult from a task object: a poll answer, or later a callback's body."""
    if not isinstance(body, dict):
        return PollResult(UNKNOWN)
    status = body.get("status")
    state = STATUS.get(status, UNKNOWN) if isinstance(status, str) else UNKNOWN
    if state == COMPLETED:
        url = dig(body, ("content", "video_url"))
        return PollResult(COMPLETED, 100, result_url=url if isinstance(url, str) else None)
    if state == FAILED:
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        code, message = str(error.get("code") or ""), str(error.get("message") or "")
        fallback = {"expired": "The task expired at the provider before it finished.",
                    "cancelled": "The task was cancelled at the provider."}.get(
                        status, "The provider failed the task.")
        return PollResult(FAILED, error_code=refusal_code(code, message),
                          error_message=clean_message(message, fallback))
    return PollResult(state)


class ArkBackend(HttpBackend):
    def task_body(self, job: Job, callback_url: str | None = None) -> dict[str, Any]:
        """The create-task body. `callback_url` is the hook for provider push completion
        (the Ark field of that name); the engine does not pass one yet."""
        req = job.request
        if req.size not in SIZES:
            raise UpstreamFailed(f"Seedance cannot produce {req.size}; this channel's sizes "
                                 f"must come from its table ({', '.join(SIZES)}).")
        resolution, ratio = SIZES[req.size]
        content: list[dict[str, Any]] = [{"type": "text", "text": req.prompt}]
        if job.reference is not None:
            content.append({"type": "image_url", "image_url": {"url": data_url(job.reference)},
                            "role": "first_frame"})
        extra = self.extra_fields(req)
        body: dict[str, Any] = {k: extra[k] for k in PASS_THROUGH if k in extra}
        if req.seed:  # 0 is "no seed given"
            body["seed"] = req.seed
        body.update(model=self.config.upstream_model(req.model), content=content,
                    resolution=resolution, ratio=ratio, duration=req.seconds)
        if callback_url:
            body["callback_url"] = callback_url
        return body

    async def submit(self, job: Job) -> str:
        response = await self.client.request("POST", "/contents/generations/tasks",
                                             submit=True, json=self.task_body(job))
        try:
            return upstream_id(check_submit(response), "id")
        except UpstreamFailed as exc:
            # A refusal at submit carries the same error codes as a failed task.
            code, message = error_fields(json_body(response))
            raise UpstreamFailed(exc.message, code=refusal_code(code, message)) from None

    async def poll(self, job: Job) -> PollResult:
        response = await self.client.request("GET", _path(job))
        return read_task(check_poll(response))

    async def cancel(self, job: Job) -> None:
        """DELETE takes a queued task off the queue; a running one cannot be stopped (Ark
        refuses the DELETE, and the engine's cancel is best effort), so it runs out."""
        if job.upstream_id:
            check_cancel(await self.client.request("DELETE", _path(job)))


def _path(job: Job) -> str:
    return f"/contents/generations/tasks/{quote(job.upstream_id or '', safe='')}"

