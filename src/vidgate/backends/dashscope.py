"""Alibaba Cloud Model Studio (DashScope): the Wan video models.

`POST {base}/services/aigc/video-generation/video-synthesis` with `X-DashScope-Async:
enable` and `{"model", "input": {...}, "parameters": {...}}` answers `output.task_id`;
`GET {base}/tasks/{task_id}` reports `output.task_status` (PENDING, SUSPENDED, RUNNING,
SUCCEEDED, FAILED, CANCELED, UNKNOWN) and, once SUCCEEDED, `output.video_url`, which is
valid for 24 hours (the engine mirrors it into vidgate's storage as soon as it sees it);
`POST {base}/tasks/{task_id}/cancel` cancels a PENDING task. This is what the `dashscope`
SDK's VideoSynthesis sends (async_call / fetch / cancel).

Text-to-video models (`wan2.x-t2v-*`) take `parameters.size` as "W*H" from a fixed table.
Image-to-video models (`wan2.x-i2v-*`) take a `resolution` tier instead and keep the first
frame's aspect ratio, so the reference is cropped to the requested aspect first: that is
what makes the output exactly the requested size.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import quote

from ..domain import COMPLETED, FAILED, IN_PROGRESS, MODERATION_BLOCKED, QUEUED
from ..images import data_url
from .base import UNKNOWN, Job, PollResult, SubmitRefused, UpstreamFailed
from .framing import fit_reference
from .http.answers import (
    check_cancel,
    check_poll,
    check_submit,
    clean_message,
    dig,
    error_fields,
    failure_code,
    json_body,
)
from .http.base import HttpBackend
from .tables import DASHSCOPE_TIERS

SINGAPORE_URL = "https://dashscope-intl.aliyuncs.com/api/v1"
BEIJING_URL = "https://dashscope.aliyuncs.com/api/v1"

TIERS = DASHSCOPE_TIERS  # canonical size -> resolution tier: backends/tables.py

# Fields a channel's `extra_fields` (or allowed `metadata`) may set, by where they go.
INPUT_FIELDS = ("negative_prompt", "audio_url")
PARAMETER_FIELDS = ("seed", "prompt_extend", "watermark", "shot_type", "audio_setting")

STATUS = {"PENDING": QUEUED, "SUSPENDED": QUEUED, "RUNNING": IN_PROGRESS,
          "SUCCEEDED": COMPLETED, "FAILED": FAILED, "CANCELED": FAILED}

# Content inspection refusals (DataInspectionFailed, its InternalError.Algo. spelling,
# data_inspection_failed in compatible mode) and suspected IP infringement.
_REFUSAL = re.compile(r"data_?inspection|IPInfringement", re.IGNORECASE)


def refusal_code(code: str, message: str) -> str:
    return MODERATION_BLOCKED if _REFUSAL.search(code) else failure_code(code, message)


def read_task(body: Any) -> PollResult:
    """A PollResult from a task answer (`{"request_id", "output": {...}}`)."""
    output = body.get("output") if isinstance(body, dict) else None
    if not isinstance(output, dict) or not isinstance(output.get("task_status"), str):
        return PollResult(UNKNOWN)
    status = output["task_status"]
    state = STATUS.get(status, UNKNOWN)
    if state == COMPLETED:
        url = output.get("video_url")
        return PollResult(COMPLETED, 100, result_url=url if isinstance(url, str) else None)
    if state == FAILED:
        code, message = str(output.get("code") or ""), str(output.get("message") or "")
        fallback = ("The task was cancelled at the provider." if status == "CANCELED"
                    else "The provider failed the task.")
        return PollResult(FAILED, error_code=refusal_code(code, message),
                          error_message=clean_message(message, fallback))
    return PollResult(state)


def image_model(model: str) -> str:
    """The image-to-video sibling of a text-to-video model id (wan2.6-t2v -> wan2.6-i2v)."""
    return model.replace("-t2v", "-i2v")


class DashScopeBackend(HttpBackend):
    async def task_body(self, job: Job) -> dict[str, Any]:
        req = job.request
        if req.size not in TIERS:
            raise UpstreamFailed(f"Wan cannot produce {req.size}; this channel's sizes must "
                                 f"come from its table ({', '.join(TIERS)}).")
        extra = self.extra_fields(req)
        inputs: dict[str, Any] = {"prompt": req.prompt}
        inputs.update({k: extra[k] for k in INPUT_FIELDS if k in extra})
        parameters: dict[str, Any] = {k: extra[k] for k in PARAMETER_FIELDS if k in extra}
        if req.seed:  # 0 is "no seed given"
            parameters["seed"] = req.seed
        parameters["duration"] = req.seconds
        model = self.config.upstream_model(req.model)
        if job.reference is None:
            parameters["size"] = req.size.replace("x", "*")
        else:
            try:
                frame = await asyncio.to_thread(fit_reference, job.reference, req.width,
                                                req.height)
            except ValueError as exc:
                raise UpstreamFailed(f"The reference image cannot be used: {exc}") from None
            inputs["img_url"] = data_url(frame)
            parameters["resolution"] = TIERS[req.size]
            model = image_model(model)
        return {"model": model, "input": inputs, "parameters": parameters}

    async def submit(self, job: Job) -> str:
        response = await self.client.request(
            "POST", "/services/aigc/video-generation/video-synthesis", submit=True,
            json=await self.task_body(job), headers={"X-DashScope-Async": "enable"})
        try:
            body = check_submit(response)
        except UpstreamFailed as exc:
            code, message = error_fields(json_body(response))
            raise UpstreamFailed(exc.message, code=refusal_code(code, message)) from None
        task_id = dig(body, ("output", "task_id"))
        if not isinstance(task_id, str) or not task_id or len(task_id) > 255:
            raise SubmitRefused("the submit answer carries no output.task_id")
        return task_id

    async def poll(self, job: Job) -> PollResult:
        response = await self.client.request("GET", f"/tasks/{_id(job)}")
        return read_task(check_poll(response))

    async def cancel(self, job: Job) -> None:
        """Only a PENDING task can be cancelled; a running one runs out (best effort)."""
        if job.upstream_id:
            check_cancel(await self.client.request("POST", f"/tasks/{_id(job)}/cancel"))


def _id(job: Job) -> str:
    return quote(job.upstream_id or "", safe="")
