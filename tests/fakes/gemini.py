"""A fake of Veo on the Gemini API (generativelanguage.googleapis.com/v1beta), on 127.0.0.1,
plus a second host standing in for the storage a file download may redirect to.

Written from google-genai 2.34.0 (the last release whose Gemini API client runs Veo):
`models.py` `_generate_videos` (POST `{model}:predictLongRunning`, body built by
`_GenerateVideosParameters_to_mldev`), `_GenerateVideosOperation_from_mldev` and
`_GenerateVideosResponse_from_mldev` (operation `name`, `done`, `error`,
`response.generateVideoResponse.generatedSamples[].video.{uri|encodedVideo, encoding}`,
`raiMediaFilteredCount`, `raiMediaFilteredReasons`), `operations.py` `_get_videos_operation`
(GET `{operation name}`), `files.py` `download` and `_transformers.t_file_name`
(GET `files/{id}:download?alt=media`, id taken from the video URI), `_api_client.py` (the
key travels in `x-goog-api-key`); and the Gemini API Veo guide (REST examples, durations,
1080p only at 8 s). See veo.py for the shared validation.

Tags in the prompt choose the outcome:
  [moderation]  done, no samples, raiMediaFilteredCount 1 with a reason
  [refuse]      submit answers 400 INVALID_ARGUMENT with Veo's Responsible-AI message
  [fail]        done with an `error` (google.rpc.Status code 13)
  [stuck]       never done
  [inline]      the sample carries `encodedVideo` instead of a `uri`
  [redirect]    the file download answers 302 to the storage host
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from .faults import FaultMiddleware, Faults
from .serving import ServerThread
from .veo import (
    GEMINI_PARAMETERS,
    REFUSAL,
    Clip,
    Clips,
    HeaderLog,
    Recording,
    check_request,
    google_error,
    json_response,
    no_record,
)


@dataclass
class VeoJob:
    id: str
    model: str
    prompt: str
    clip: Clip
    body: dict
    created: float = field(default_factory=time.monotonic)

    def has(self, tag: str) -> bool:
        return f"[{tag}]" in self.prompt


class StorageHost:
    """The second origin: serves files by name and logs who asked with which headers."""

    def __init__(self, log: HeaderLog) -> None:
        self.log = log
        self.files: dict[str, Path] = {}
        self.origin = ""

    def add(self, name: str, path: Path) -> str:
        self.files[name] = path
        return f"{self.origin}/blobs/{name}"

    async def _get(self, request: Request) -> Response:
        path = self.files.get(request.path_params["name"])
        if path is None:
            return google_error(404, "NOT_FOUND", "no such object")
        return FileResponse(path, media_type="video/mp4")

    def app(self):
        return Recording(Starlette(routes=[Route("/blobs/{name}", self._get)]), self.log, self)


class FakeGemini:
    """Veo on the Gemini API; `url` is the base URL a channel uses (…/v1beta)."""

    def __init__(self, *, key: str, clips: Clips, storage: StorageHost,
                 faults: Faults | None = None, job_seconds: float = 0.3) -> None:
        self.key = key
        self.clips = clips
        self.storage = storage
        self.faults = faults or Faults()
        self.job_seconds = job_seconds
        self.log = HeaderLog()
        self.jobs: dict[str, VeoJob] = {}
        self.origin = ""
        self._counter = itertools.count()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.origin + "/v1beta"

    def app(self):
        inner = Starlette(routes=[
            Route("/v1beta/models/{target}", self._predict, methods=["POST"]),
            Route("/v1beta/models/{model}/operations/{op}", self._operation, methods=["GET"]),
            Route("/v1beta/files/{target}", self._download, methods=["GET"]),
        ])
        return Recording(FaultMiddleware(inner, self.faults, self.classify, no_record),
                         self.log, self)

    @staticmethod
    def classify(method: str, path: str) -> str | None:
        if path.startswith("/v1beta/files/"):
            return "download"
        if method == "POST":
            return "submit"
        return "poll"

    def _denied(self, request: Request) -> Response | None:
        if request.headers.get("x-goog-api-key") != self.key:
            return google_error(403, "PERMISSION_DENIED",
                                "Method doesn't allow unregistered callers.")
        return None

    # ---- routes ---------------------------------------------------------------------

    async def _predict(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        model, _, action = request.path_params["target"].partition(":")
        if action != "predictLongRunning":
            return google_error(404, "NOT_FOUND", "no such method")
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        checked = check_request(body, GEMINI_PARAMETERS)
        if isinstance(checked, str):
            return google_error(400, "INVALID_ARGUMENT", checked)
        clip, prompt, _ = checked
        if "[refuse]" in prompt:
            return google_error(400, "INVALID_ARGUMENT", REFUSAL)
        with self._lock:
            job = VeoJob(f"{secrets.token_hex(6)}{next(self._counter)}", model, prompt, clip,
                         body)
            self.jobs[job.id] = job
        return json_response({"name": f"models/{model}/operations/{job.id}"})

    def operation(self, job: VeoJob) -> dict:
        name = f"models/{job.model}/operations/{job.id}"
        if job.has("stuck") or time.monotonic() - job.created < self.job_seconds:
            return {"name": name}
        if job.has("fail"):
            return {"name": name, "done": True,
                    "error": {"code": 13, "message": "Video generation failed internally."}}
        if job.has("moderation"):
            result = {"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": [
                "The video was filtered because it may violate the usage guidelines."]}
        elif job.has("inline"):
            data = self.clips.path(job.clip).read_bytes()
            result = {"generatedSamples": [{"video": {
                "encodedVideo": base64.b64encode(data).decode(), "encoding": "video/mp4"}}]}
        else:
            uri = f"{self.url}/files/{job.id}:download?alt=media"
            result = {"generatedSamples": [{"video": {"uri": uri}}]}
        return {"name": name, "done": True, "response": {"generateVideoResponse": result}}

    async def _operation(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        job = self.jobs.get(request.path_params["op"])
        if job is None or job.model != request.path_params["model"]:
            return google_error(404, "NOT_FOUND", "Operation not found.")
        # rendering a clip the first time takes seconds: off the fake's event loop
        return json_response(await asyncio.to_thread(self.operation, job))

    async def _download(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        file_id, _, action = request.path_params["target"].partition(":")
        job = self.jobs.get(file_id)
        if action != "download" or request.query_params.get("alt") != "media" or job is None:
            return google_error(404, "NOT_FOUND", "File not found.")
        path = await asyncio.to_thread(self.clips.path, job.clip)
        if job.has("redirect"):
            return RedirectResponse(self.storage.add(f"{job.id}.mp4", path), status_code=302)
        return FileResponse(path, media_type="video/mp4")


class GeminiWorld:
    """One storage host plus any number of fake Gemini APIs, served until close()."""

    def __init__(self, clips: Clips) -> None:
        self.clips = clips
        self.thread = ServerThread()
        self.storage_log = HeaderLog()
        self.storage = StorageHost(self.storage_log)
        self.storage.origin = self.thread.serve(self.storage.app())
        self.apis: list[FakeGemini] = []

    def add(self, key: str, **kwargs) -> FakeGemini:
        api = FakeGemini(key=key, clips=self.clips, storage=self.storage, **kwargs)
        api.origin = self.thread.serve(api.app())
        self.apis.append(api)
        return api

    def close(self) -> None:
        self.thread.stop()
