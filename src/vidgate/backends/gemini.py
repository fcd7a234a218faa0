"""Veo on the Gemini API: `POST {base}/models/{model}:predictLongRunning`, then
`GET {base}/{operation name}` until `done`; the video is a file on the API's own origin
(`.../files/{id}:download?alt=media`) that needs the key, or rarely inline bytes.

Read from google-genai 2.34.0 (`models.py` mldev converters, `operations.py`
`_get_videos_operation`, `files.py` `download`). google-genai 3.0 removed Veo from its
Gemini API client (`generate_videos` is Vertex-only there) as Google moved video on the
Gemini API to other models; this kind still speaks the protocol for the API and for the
gateways that expose it.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from .base import Job, PollResult, ResultFiles, SubmitRefused
from .http.answers import check_poll, check_submit
from .http.base import HttpBackend
from .http.credentials import Credentials, StaticHeaders
from .veo import (
    GEMINI_PARAMETERS,
    Layout,
    operation_name,
    read_operation,
    request_body,
    save_inline,
)

SAMPLES = Layout(("generateVideoResponse", "generatedSamples"), ("video",))
# models/{model}/operations/{id}, as the API names its operations
_OPERATION = re.compile(r"models/[A-Za-z0-9._-]+/operations/[A-Za-z0-9._-]+")


class GeminiBackend(HttpBackend):
    def credentials(self) -> Credentials | None:
        """The Gemini API reads its key from `x-goog-api-key`, never a bearer token."""
        key = self.config.api_key()
        return StaticHeaders({"x-goog-api-key": key}) if key else None

    async def submit(self, job: Job) -> str:
        req = job.request
        body = request_body(req, self.extra_fields(req), job.reference,
                            GEMINI_PARAMETERS)
        model = quote(self.config.upstream_model(req.model), safe="")
        response = await self.client.request(
            "POST", f"/models/{model}:predictLongRunning", submit=True, json=body)
        name = operation_name(check_submit(response), _OPERATION)
        if name is None:
            # accepted or not, nothing could be polled: as with a missing id, try again
            raise SubmitRefused("the submit answer names no usable operation")
        return name

    async def poll(self, job: Job) -> PollResult:
        return read_operation(await self._operation(job), SAMPLES)

    async def _operation(self, job: Job) -> Any:
        response = await self.client.request("GET", "/" + (job.upstream_id or ""))
        return check_poll(response)

    async def fetch(self, job: Job) -> ResultFiles:
        """The file URI with the key (the client sends it only on the API's origin); an
        inline video is read from a fresh copy of the operation instead."""
        video = job.work_dir / "upstream" / "video.mp4"
        if job.result_url:
            await self.client.download(job.result_url, video)
            return ResultFiles(video=video)
        await save_inline(await self._operation(job), SAMPLES, video)
        return ResultFiles(video=video)

    async def cancel(self, job: Job) -> None:
        """The Gemini API documents no way to cancel a video operation; it runs out."""
