"""Runway's API: `POST {base}/image_to_video` or `{base}/text_to_video`, then
`GET {base}/tasks/{id}` until SUCCEEDED or FAILED; `DELETE {base}/tasks/{id}` cancels.

Read from the official `runwayml` SDK (5.24.0: `_client.py`, `resources/image_to_video.py`,
`resources/text_to_video.py`, `resources/tasks.py`, `types/task_retrieve_response.py`) and
Runway's docs (api-details/errors, errors/task-failures, assets/inputs). Every request carries
`X-Runway-Version`, the API version the SDK pins; the ratio is the output's own pixel size
("1280:720" is 1280x720), so the canonical size maps onto it exactly.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ..domain import COMPLETED, FAILED, IN_PROGRESS, MODERATION_BLOCKED, QUEUED, UPSTREAM_ERROR
from ..images import data_url
from .base import UNKNOWN, Job, PollResult
from .http.answers import (
    check_cancel,
    check_poll,
    check_submit,
    clean_message,
    parse_progress,
    upstream_id,
)
from .http.base import HttpBackend

# The version `runwayml` 5.24.0 sends by default (RunwayML(runway_version="2024-11-06")).
RUNWAY_VERSION = "2024-11-06"

# GET /tasks/{id} `status` (the SDK's TaskRetrieveResponse union). THROTTLED means the task
# waits for the organisation's concurrency to free up: still queued.
_STATES = {
    "PENDING": QUEUED,
    "THROTTLED": QUEUED,
    "RUNNING": IN_PROGRESS,
    "SUCCEEDED": COMPLETED,
    "FAILED": FAILED,
    "CANCELLED": FAILED,
}

# docs errors/task-failures: SAFETY.INPUT.* / SAFETY.OUTPUT.* are content moderation, and so
# is INPUT_PREPROCESSING.SAFETY.TEXT; every other code (INTERNAL.BAD_OUTPUT.*, ...) is not.
_MODERATION_PREFIXES = ("SAFETY.", "INPUT_PREPROCESSING.SAFETY.")


def ratio(width: int, height: int) -> str:
    """Runway's `ratio` names the output's pixel size: 1280x720 is "1280:720"."""
    return f"{width}:{height}"


def read_task(body: Any) -> PollResult:
    """A PollResult from a Runway task object (a GET answer; one place for any later
    callback body too). Anything unreadable keeps the task polling."""
    if not isinstance(body, dict):
        return PollResult(UNKNOWN)
    status = body.get("status")
    state = _STATES.get(status, UNKNOWN) if isinstance(status, str) else UNKNOWN
    if state == COMPLETED:
        output = body.get("output")
        url = output[0] if isinstance(output, list) and output else None
        if not (isinstance(url, str) and url.startswith(("http://", "https://"))):
            return PollResult(UNKNOWN)  # SUCCEEDED without a usable URL: ask again
        return PollResult(COMPLETED, 100, result_url=url)
    if state == FAILED:
        if status == "CANCELLED":
            return PollResult(FAILED, error_code=UPSTREAM_ERROR,
                              error_message="The task was cancelled or deleted at Runway.")
        code = body.get("failureCode")
        code = code if isinstance(code, str) else ""
        blocked = code.startswith(_MODERATION_PREFIXES)
        message = clean_message(body.get("failure"), "Runway failed the task.")
        return PollResult(FAILED, error_code=MODERATION_BLOCKED if blocked else UPSTREAM_ERROR,
                          error_message=message)
    # `progress` is a fraction (0..1) while RUNNING.
    raw = body.get("progress")
    progress = None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        progress = parse_progress(raw * 100)
    return PollResult(state, progress)


class RunwayBackend(HttpBackend):
    """Text-to-video without a reference image, image-to-video (the image as a data URI,
    which Runway accepts up to 5 MB) with one."""

    async def submit(self, job: Job) -> str:
        req = job.request
        # The channel's extra fields (e.g. `contentModeration`, `seed`) go first, so they
        # can never override what the request itself decided.
        body: dict[str, Any] = dict(self.extra_fields(req))
        body.update(model=self.config.upstream_model(req.model), promptText=req.prompt,
                    ratio=ratio(req.width, req.height), duration=req.seconds)
        path = "/text_to_video"
        if job.reference is not None:
            body["promptImage"] = data_url(job.reference)
            path = "/image_to_video"
        response = await self.client.request("POST", path, submit=True, json=body,
                                             headers=_VERSION)
        return upstream_id(check_submit(response), "id")

    async def poll(self, job: Job) -> PollResult:
        response = await self.client.request("GET", f"/tasks/{_id(job)}", headers=_VERSION)
        return read_task(check_poll(response))

    async def cancel(self, job: Job) -> None:
        """DELETE cancels a pending, throttled or running task (and deletes a finished one)."""
        if job.upstream_id:
            answer = await self.client.request("DELETE", f"/tasks/{_id(job)}", headers=_VERSION)
            check_cancel(answer)


_VERSION = {"X-Runway-Version": RUNWAY_VERSION}


def _id(job: Job) -> str:
    return quote(job.upstream_id or "", safe="")
