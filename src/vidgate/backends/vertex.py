"""Veo on Vertex AI: `POST {base}/projects/{project}/locations/{location}/publishers/google/
models/{model}:predictLongRunning`, then `POST {base}/{model resource}:fetchPredictOperation`
with `{"operationName"}` until `done`; the video comes back inline (`bytesBase64Encoded`).

Auth is an OAuth access token minted from a service-account key with google-auth, renewed
before it expires. Read from google-genai 2.34.0 (`models.py` vertex converters,
`operations.py` `get`/`_fetch_predict_videos_operation`) and the Vertex AI REST reference.

Results written to Cloud Storage (`storageUri`) are not supported: fetching them needs the
token on storage.googleapis.com, a second origin, which vidgate's rule of one credential for
one origin forbids. Channels cannot set `storageUri`, so videos always come back inline.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import quote

import google.auth.exceptions
import google.auth.transport.requests
from google.oauth2 import service_account

from ..channels import ChannelConfig
from .base import Job, PollResult, ResultFiles, SubmitRefused, TransientError
from .http.answers import check_poll, check_submit
from .http.base import HttpBackend
from .http.credentials import Credentials
from .veo import (
    VERTEX_PARAMETERS,
    Layout,
    operation_name,
    read_operation,
    request_body,
    save_inline,
)

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
VIDEOS = Layout(("videos",))
_SEGMENT = r"[A-Za-z0-9._-]+"
_OPERATION = re.compile(rf"projects/{_SEGMENT}/locations/{_SEGMENT}/publishers/google/"
                        rf"models/{_SEGMENT}/operations/{_SEGMENT}")


class ServiceAccountToken:
    """`Authorization: Bearer` with an access token from a service-account key file.

    google-auth signs the JWT grant and calls the key's `token_uri`; that call blocks, so it
    runs in a thread, one at a time. The token is renewed once it is within google-auth's
    refresh margin of expiring (a few minutes), never after."""

    def __init__(self, path: str) -> None:
        self._credentials = service_account.Credentials.from_service_account_file(
            path, scopes=[SCOPE])
        self._lock = asyncio.Lock()

    async def headers(self) -> dict[str, str]:
        if not self._credentials.valid:
            async with self._lock:
                if not self._credentials.valid:
                    await asyncio.to_thread(self._refresh)
        return {"Authorization": f"Bearer {self._credentials.token}"}

    def _refresh(self) -> None:
        try:
            self._credentials.refresh(google.auth.transport.requests.Request())
        except google.auth.exceptions.GoogleAuthError as exc:
            raise TransientError(f"no OAuth token for the service account: {exc}") from exc


class VertexBackend(HttpBackend):
    def __init__(self, config: ChannelConfig) -> None:
        path = config.service_account_file()
        self.token = ServiceAccountToken(path) if path else None
        super().__init__(config)
        self._prefix = (f"/projects/{quote(config.project or '', safe='')}"
                        f"/locations/{quote(config.location or '', safe='')}"
                        f"/publishers/google/models/")

    def credentials(self) -> Credentials | None:
        return self.token

    async def submit(self, job: Job) -> str:
        req = job.request
        fields = self.extra_fields(req)
        if req.seed and "seed" not in fields:
            fields["seed"] = req.seed  # Vertex takes the client's seed as Veo's own
        body = request_body(req, fields, job.reference, VERTEX_PARAMETERS)
        if self.token is not None:
            try:  # a token endpoint that fails is the channel's trouble, not the job's
                await self.token.headers()
            except TransientError as exc:
                raise SubmitRefused(exc.message) from exc
        model = quote(self.config.upstream_model(req.model), safe="")
        response = await self.client.request(
            "POST", f"{self._prefix}{model}:predictLongRunning", submit=True, json=body)
        name = operation_name(check_submit(response), _OPERATION)
        if name is None:
            # accepted or not, nothing could be polled: as with a missing id, try again
            raise SubmitRefused("the submit answer names no usable operation")
        return name

    async def poll(self, job: Job) -> PollResult:
        return read_operation(await self._operation(job), VIDEOS)

    async def _operation(self, job: Job) -> Any:
        name = job.upstream_id or ""
        resource = name.rpartition("/operations/")[0]
        response = await self.client.request("POST", f"/{resource}:fetchPredictOperation",
                                             json={"operationName": name})
        return check_poll(response)

    async def fetch(self, job: Job) -> ResultFiles:
        """The video is inline in the finished operation: read a fresh copy of it."""
        video = job.work_dir / "upstream" / "video.mp4"
        await save_inline(await self._operation(job), VIDEOS, video)
        return ResultFiles(video=video)

    async def cancel(self, job: Job) -> None:
        """Vertex AI documents no cancel for Veo operations; the upstream job runs out."""
