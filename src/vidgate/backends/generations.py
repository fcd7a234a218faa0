"""The video generations protocol of new-api style gateways: `POST {base}/video/generations`
(JSON) and `GET {base}/video/generations/{task_id}`, flat or `{"code","data"}` answers."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from .base import Job, PollResult
from .http.answers import check_poll, check_submit, read_status, upstream_id
from .http.base import HttpBackend, put_image


class GenerationsBackend(HttpBackend):
    idempotent_submit = True  # every submit carries Idempotency-Key: the task id

    async def submit(self, job: Job) -> str:
        req = job.request
        body: dict[str, Any] = {
            "model": self.config.upstream_model(req.model),
            "prompt": req.prompt,
            "size": req.size,
            "duration": req.seconds,
            "seconds": str(req.seconds),
        }
        extra = self.extra_fields(req)
        if extra:
            body["metadata"] = extra
        if job.reference is not None:
            # The reference travels as a data URL; `image_field` picks the spelling the
            # upstream reads (new-api style gateways read `image`; some want `images`).
            put_image(body, self.config.image_field or "image", job.reference)
        response = await self.client.request(
            "POST", "/video/generations", submit=True, json=body,
            headers={"Idempotency-Key": job.task_id},
        )
        return upstream_id(check_submit(response), "task_id", "id")

    async def poll(self, job: Job) -> PollResult:
        response = await self.client.request(
            "GET", f"/video/generations/{quote(job.upstream_id or '', safe='')}")
        return read_status(check_poll(response))

    async def cancel(self, job: Job) -> None:
        """The protocol has no cancel; the upstream job runs out on its own."""
