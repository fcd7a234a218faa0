"""The unified protocol: `POST {base}/video/create` and `GET {base}/video/query?id=...`."""

from __future__ import annotations

from typing import Any

from ..catalog import ASPECT_RATIOS
from .base import Job, PollResult
from .http.answers import check_poll, check_submit, read_status, upstream_id
from .http.base import HttpBackend, put_image

_RATIO_OF_SIZE = {size: ratio for ratio, size in ASPECT_RATIOS.items()}


class UnifiedBackend(HttpBackend):
    idempotent_submit = True  # every submit carries Idempotency-Key: the task id

    async def submit(self, job: Job) -> str:
        req = job.request
        body: dict[str, Any] = {
            **self.extra_fields(req),
            "model": self.config.upstream_model(req.model),
            "prompt": req.prompt,
            "size": req.size,
            "duration": req.seconds,
        }
        ratio = _RATIO_OF_SIZE.get(req.size)
        if ratio:
            body["aspect_ratio"] = ratio
        if job.reference is not None:
            put_image(body, self.config.image_field or "images", job.reference)
        response = await self.client.request(
            "POST", "/video/create", submit=True, json=body,
            headers={"Idempotency-Key": job.task_id},
        )
        return upstream_id(check_submit(response), "id", "task_id")

    async def poll(self, job: Job) -> PollResult:
        # Servers differ on the parameter's name; sending both costs nothing.
        ident = job.upstream_id or ""
        response = await self.client.request("GET", "/video/query",
                                             params={"id": ident, "task_id": ident})
        return read_status(check_poll(response))

    async def cancel(self, job: Job) -> None:
        """The protocol has no cancel; the upstream job runs out on its own."""
