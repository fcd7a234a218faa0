"""Luma's Dream Machine API: `POST {base}/generations/video`, then `GET {base}/generations/{id}`
until `state` is completed or failed; the video is `assets.video` on Luma's CDN.

Read from the official `lumaai` SDK (1.21.0: `_client.py` for the base URL and Bearer auth,
`resources/generations/generations.py` and `types/generation_create_params.py` for the
create call and its fields, `types/generation.py` for the answer: `state` queued / dreaming /
completed / failed, `failure_reason`, `assets.video`) and docs.lumalabs.ai "Video Generation"
(image keyframes must be image URLs: "currently this is the only way to pass an image"),
plus the `{"detail": ...}` error object of Luma's published OpenAPI file.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ..domain import COMPLETED, FAILED, IN_PROGRESS, QUEUED
from .base import UNKNOWN, Job, PollResult, UpstreamFailed
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
from .tables import LUMA_SECONDS, LUMA_SIZES

_STATES = {"queued": QUEUED, "dreaming": IN_PROGRESS, "completed": COMPLETED, "failed": FAILED}

# canonical size -> (aspect_ratio, resolution), and the lengths: backends/tables.py
SIZES, SECONDS = LUMA_SIZES, LUMA_SECONDS


def read_generation(body: Any) -> PollResult:
    """A PollResult from a Luma generation object (the GET answer, and the body Luma posts to
    a `callback_url`). Anything unreadable keeps the task polling."""
    if not isinstance(body, dict):
        return PollResult(UNKNOWN)
    state = body.get("state")
    state = _STATES.get(state, UNKNOWN) if isinstance(state, str) else UNKNOWN
    if state == COMPLETED:
        assets = body.get("assets")
        url = assets.get("video") if isinstance(assets, dict) else None
        if not (isinstance(url, str) and url.startswith(("http://", "https://"))):
            return PollResult(UNKNOWN)  # completed without a video yet: ask again
        return PollResult(COMPLETED, 100, result_url=url)
    if state == FAILED:
        # Luma publishes no failure codes: the reason's words tell a refusal from a crash.
        reason = body.get("failure_reason")
        reason = reason if isinstance(reason, str) else ""
        return PollResult(FAILED, error_code=failure_code("", reason),
                          error_message=clean_message(reason, "Luma failed the generation."))
    return PollResult(state)  # Luma reports no progress


class LumaBackend(HttpBackend):
    """Text-to-video. Image-to-video is never routed here: Luma takes a keyframe only as a
    public image URL, which vidgate does not have for an uploaded reference (channels of this
    kind declare `image_input=False` in kinds.py, so the router keeps image jobs away)."""

    async def submit(self, job: Job) -> str:
        req = job.request
        if job.reference is not None:
            raise UpstreamFailed("Luma channels cannot take a reference image.")
        if req.size not in SIZES or req.seconds not in SECONDS:
            # only a channel built in code can get here: a config file is checked at load
            raise UpstreamFailed(f"Luma cannot produce {req.size} for {req.seconds} seconds.")
        aspect_ratio, resolution = SIZES[req.size]
        body: dict[str, Any] = dict(self.extra_fields(req))
        body.update(model=self.config.upstream_model(req.model), prompt=req.prompt,
                    aspect_ratio=aspect_ratio, resolution=resolution,
                    duration=f"{req.seconds}s")
        response = await self.client.request("POST", "/generations/video", submit=True,
                                             json=body)
        return upstream_id(_check_submit(response), "id")

    async def poll(self, job: Job) -> PollResult:
        response = await self.client.request("GET", f"/generations/{_id(job)}")
        return read_generation(check_poll(response))

    async def cancel(self, job: Job) -> None:
        """Luma has no cancel: DELETE removes the generation, the only way to withdraw it.
        Whether a generation already dreaming stops (and stops costing) is not documented."""
        if job.upstream_id:
            check_cancel(await self.client.request("DELETE", f"/generations/{_id(job)}"))


def _check_submit(response: UpstreamResponse) -> Any:
    """check_submit, reading Luma's `{"detail": ...}` error so the client sees why a request
    was refused (and a moderation refusal gets its own code)."""
    body = json_body(response)
    detail = body.get("detail") if isinstance(body, dict) else None
    if response.status_code in (400, 422) and isinstance(detail, str):
        raise UpstreamFailed(clean_message(detail, "Luma rejected the request."),
                             code=failure_code("", detail))
    return check_submit(response)


def _id(job: Job) -> str:
    return quote(job.upstream_id or "", safe="")
