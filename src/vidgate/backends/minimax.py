"""MiniMax Hailuo: `POST {base}/v1/video_generation`, `GET {base}/v1/query/video_generation
?task_id=` until `Success`, then `GET {base}/v1/files/retrieve?file_id=` for the video's
temporary `file.download_url`. Every answer carries `base_resp {status_code, status_msg}`,
non-zero on errors, usually with HTTP 200.

Read: MiniMax's API reference (platform.minimax.io/docs: "Video Generation" text-to-video
and image-to-video tasks, "Query Video Generation Task" (status Preparing, Queueing,
Processing, Success, Fail; file_id, video_width, video_height), "Retrieve File", "Error
Codes"; the mainland twin at platform.minimaxi.com, host api.minimaxi.com) and the official
MiniMax-MCP package (minimax-mcp 0.0.19: minimax_mcp/client.py checks `base_resp`,
server.py's generate_video / query_video_generation make these three calls with `model`,
`prompt`, `first_frame_image` (URL or data URL), `duration`, `resolution`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from ..domain import COMPLETED, FAILED, IN_PROGRESS, MODERATION_BLOCKED, QUEUED, UPSTREAM_ERROR
from ..images import data_url
from .base import UNKNOWN, Job, PollResult, SubmitRefused, TransientError, UpstreamFailed
from .framing import fit_reference
from .http.answers import clean_message, json_body, retry_after, upstream_id
from .http.base import HttpBackend
from .http.client import UpstreamResponse
from .tables import MINIMAX_RESOLUTIONS

RESOLUTIONS = MINIMAX_RESOLUTIONS  # canonical size -> `resolution`: backends/tables.py
STATES = {"Preparing": QUEUED, "Queueing": QUEUED, "Processing": IN_PROGRESS,
          "Success": COMPLETED, "Fail": FAILED}

# The error table: 1026 sensitive input, 1027 sensitive output.
MODERATION_CODES = frozenset({1026, 1027})
# The channel's trouble, not the request's: unknown error, timeout, rate limit, auth,
# balance, invalid key. Another channel may take the job.
REFUSAL_CODES = frozenset({1000, 1001, 1002, 1004, 1008, 2049})


class MiniMaxBackend(HttpBackend):
    async def submit(self, job: Job) -> str:
        req = job.request
        resolution = RESOLUTIONS.get(req.size)
        if resolution is None:
            raise UpstreamFailed(f"MiniMax Hailuo cannot produce {req.size}.")
        # The channel's and the client's extras first: the canonical request wins.
        body: dict[str, Any] = {
            **self.extra_fields(req),
            "model": self.config.upstream_model(req.model),
            "prompt": req.prompt,
            "duration": req.seconds,
            "resolution": resolution,
        }
        if job.reference is not None:
            # The video takes the first frame's aspect ratio: crop it to the requested one.
            image = await asyncio.to_thread(fit_reference, job.reference, req.width,
                                            req.height)
            body["first_frame_image"] = data_url(image)
        response = await self.client.request("POST", "/v1/video_generation", submit=True,
                                             json=body)
        return upstream_id(accepted(response), "task_id")

    async def poll(self, job: Job) -> PollResult:
        body = await self._get("/v1/query/video_generation", task_id=job.upstream_id or "")
        result = read_task(body)
        if result.state != COMPLETED or not body.get("file_id"):
            return result
        # The download URL is temporary: ask for it each time the task reads as done.
        file = await self._get("/v1/files/retrieve", file_id=str(body["file_id"]))
        url = file.get("file", {}).get("download_url") if isinstance(file.get("file"),
                                                                     dict) else None
        return dataclasses.replace(result, result_url=url if isinstance(url, str) else None)

    async def _get(self, path: str, **params: str) -> dict:
        """A query's body; any error here is transient, never the job's failure (a `Fail`
        status is read by `read_task`, whatever its `base_resp`)."""
        response = await self.client.request("GET", path, params=params)
        body = json_body(response)
        if response.status_code != 200 or not isinstance(body, dict):
            raise TransientError(f"MiniMax {path} answered HTTP {response.status_code}",
                                 retry_after=retry_after(response))
        code = _status_code(body)
        if code != 0 and body.get("status") != "Fail":
            raise TransientError(f"MiniMax {path} answered status_code {code}")
        return body

    async def cancel(self, job: Job) -> None:
        """MiniMax's video API has no cancel: the task runs out on MiniMax's side."""


def _status_code(body: dict) -> int | None:
    base = body.get("base_resp")
    code = base.get("status_code") if isinstance(base, dict) else None
    return code if isinstance(code, int) else None


def _status_msg(body: dict, fallback: str) -> str:
    base = body.get("base_resp")
    return clean_message(base.get("status_msg") if isinstance(base, dict) else None, fallback)


def accepted(response: UpstreamResponse) -> dict:
    """The body of an accepted create, or the error its `base_resp` code means."""
    body = json_body(response)
    body = body if isinstance(body, dict) else {}
    code = _status_code(body)
    message = _status_msg(body, "MiniMax refused the request.")
    if code in MODERATION_CODES:
        raise UpstreamFailed(message, code=MODERATION_BLOCKED)
    status = response.status_code
    if status == 200 and code == 0:
        return body
    if code is None or code in REFUSAL_CODES or status not in (200, 400):
        # no base_resp at all (a proxy's page, garbage) tells nothing about the request
        raise SubmitRefused(f"MiniMax create answered HTTP {status}, status_code {code}",
                            retry_after=retry_after(response))
    # 2013 (invalid parameters) and any other explicit refusal of this request
    raise UpstreamFailed(message, code=UPSTREAM_ERROR)


def read_task(body: Any) -> PollResult:
    """A PollResult from a query answer; a completed task's URL comes from
    /v1/files/retrieve, not from here (kept apart so a pushed status could be read alike)."""
    if not isinstance(body, dict):
        return PollResult(UNKNOWN)
    status = body.get("status")
    state = STATES.get(status, UNKNOWN) if isinstance(status, str) else UNKNOWN
    if state == FAILED:
        code = _status_code(body)
        return PollResult(FAILED,
                          error_code=MODERATION_BLOCKED if code in MODERATION_CODES
                          else UPSTREAM_ERROR,
                          error_message=_status_msg(body, "MiniMax failed the task."))
    if state == COMPLETED:
        return PollResult(COMPLETED, 100)
    return PollResult(state)
