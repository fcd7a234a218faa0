"""Fake upstreams: one Starlette app per protocol kind of spec/upstreams.md, plus a plain file
host on another address (a "different origin" for result URLs).

A job's fate is read from tags in its prompt, so a test can ask for each outcome:

  [moderation]  fails with a content-policy error      [fail]     fails with a plain error
  [stuck]       never finishes                          [expired]  result URL answers 410
  [foreign]     result URL on the file host (another origin; openai: `url` in the object,
                `/content` 404)
  [redirect]    openai `/content` answers 302 to the file host
  [slowdl]      the download trickles out slowly
  [nopreview]   openai: no thumbnail/spritesheet variants
  [small]       serve the small sample even when the upstream was given a big video
  [huge]        the result (openai `/content`, or the upstream's own result URL) is a
                10 GB body with its Content-Length
  [hugechunked] the same 10 GB chunked, no Content-Length (both made lazily, never held)
  [trickle]     the result comes one byte every 0.2 s, forever

Everything a test may want to assert on is recorded: the Authorization header of every
request (per server), every accepted submit with its fields, cancels.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from vidgate.backends.sandbox.sample import SampleMedia

from .faults import FaultMiddleware, Faults
from .serving import ServerThread

KINDS = ("openai", "generations", "unified")


def _json(data, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


@dataclass
class FakeJob:
    id: str
    prompt: str
    model: str
    size: str
    seconds: str
    fields: dict
    reference: bytes | None
    idempotency_key: str | None
    created: float = field(default_factory=time.monotonic)
    remix_of: str | None = None
    cancelled: bool = False
    index: int = 0

    def has(self, tag: str) -> bool:
        return f"[{tag}]" in self.prompt


@dataclass
class AuthRecord:
    method: str
    path: str
    authorization: str | None


class Recorder:
    def __init__(self) -> None:
        self.requests: list[AuthRecord] = []
        self._lock = threading.Lock()

    def __call__(self, method: str, path: str, auth: str | None) -> None:
        with self._lock:
            self.requests.append(AuthRecord(method, path, auth))

    def authorizations(self) -> set[str | None]:
        with self._lock:
            return {r.authorization for r in self.requests}


class FileHost:
    """Serves registered files at /files/{name}; a second origin for result URLs."""

    def __init__(self, faults: Faults | None = None) -> None:
        self.faults = faults or Faults()
        self.recorder = Recorder()
        self.files: dict[str, tuple[Path, bool]] = {}
        self.url = ""

    def add(self, name: str, path: Path, slow: bool = False) -> str:
        self.files[name] = (path, slow)
        return f"{self.url}/files/{name}"

    async def _file(self, request: Request) -> Response:
        entry = self.files.get(request.path_params["name"])
        if entry is None:
            return _json({"error": "no such file"}, 404)
        return file_response(*entry)

    def app(self):
        inner = Starlette(routes=[Route("/files/{name}", self._file)])
        return FaultMiddleware(inner, self.faults,
                               lambda m, p: "download" if p.startswith("/files/") else None,
                               self.recorder)


HUGE = 10 * 1024**3


def huge_response(declared: bool, trickle: bool = False) -> Response:
    """10 GB of zeros, produced one shared 1 MiB chunk at a time as the client reads; or,
    trickling, one byte every 0.2 s (a stream that never stalls long enough to time out)."""
    chunk = bytes(1) if trickle else bytes(1024 * 1024)

    async def zeros():
        for _ in range(HUGE // len(chunk)):
            if trickle:
                await asyncio.sleep(0.2)
            yield chunk

    headers = {"content-length": str(HUGE)} if declared else {}
    return StreamingResponse(zeros(), media_type="video/mp4", headers=headers)


def file_response(path: Path, slow: bool) -> Response:
    if not slow:
        return FileResponse(path, media_type="video/mp4")

    async def trickle():
        with open(path, "rb") as f:
            while chunk := f.read(16 * 1024):
                yield chunk
                await asyncio.sleep(0.05)

    return StreamingResponse(trickle(), media_type="video/mp4",
                             headers={"content-length": str(path.stat().st_size)})


class FakeUpstream:
    """One fake server speaking `kind`; `url` is its base URL including `/v1`."""

    def __init__(self, kind: str, *, key: str, media: SampleMedia, files: FileHost,
                 faults: Faults | None = None, job_seconds: float = 0.3,
                 video: Path | None = None) -> None:
        assert kind in KINDS
        self.kind = kind
        self.key = key
        self.media = media
        self.video = video or media.video
        self.files = files
        self.faults = faults or Faults()
        self.job_seconds = job_seconds
        self.recorder = Recorder()
        self.jobs: dict[str, FakeJob] = {}
        self.by_key: dict[str, FakeJob] = {}
        self.submits = Counter()     # idempotency key -> submits that reached the handler
        self.cancels: list[str] = []
        self.refuse_submits = False  # answer every submit with 503 (for fail-over tests)
        self.origin = ""
        self._counter = itertools.count()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.origin + "/v1"

    # ---- jobs -------------------------------------------------------------------------

    def _new_job(self, request: Request, *, prompt: str, model: str, size: str, seconds: str,
                 fields: dict, reference: bytes | None, remix_of: str | None = None
                 ) -> FakeJob:
        key = request.headers.get("idempotency-key")
        with self._lock:
            if key:
                self.submits[key] += 1
                if key in self.by_key:  # a retried submit: the same job, as the spec allows
                    return self.by_key[key]
            prefix = {"openai": "video_", "generations": "task_", "unified": "u-"}[self.kind]
            job = FakeJob(prefix + secrets.token_hex(8), prompt, model, size, seconds, fields,
                          reference, key, remix_of=remix_of, index=next(self._counter))
            self.jobs[job.id] = job
            if key:
                self.by_key[key] = job
        return job

    def state(self, job: FakeJob) -> tuple[str, int]:
        """('queued'|'in_progress'|'completed'|'failed', progress) at this moment."""
        if job.cancelled:
            return "failed", 0
        elapsed = time.monotonic() - job.created
        if elapsed < self.job_seconds / 3:
            return "queued", 0
        if job.has("stuck"):
            return "in_progress", 50
        if elapsed < self.job_seconds:
            return "in_progress", int(100 * elapsed / self.job_seconds)
        if job.has("moderation") or job.has("fail"):
            return "failed", 100
        return "completed", 100

    def failure(self, job: FakeJob) -> tuple[str, str]:
        if job.has("moderation"):
            return ("moderation_blocked",
                    "Your request was blocked by our content policy (sensitive content).")
        return "generation_failed", "The model crashed while generating this video."

    def video_of(self, job: FakeJob) -> Path:
        return self.media.video if job.has("small") else self.video

    def result_url(self, job: FakeJob) -> str:
        name = f"{job.id}.mp4"
        if job.has("foreign") or job.has("redirect"):
            return self.files.add(name, self.video_of(job), slow=job.has("slowdl"))
        return f"{self.origin}/files/{name}"

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.key}"

    async def _own_file(self, request: Request) -> Response:
        job = self.jobs.get(request.path_params["name"].removesuffix(".mp4"))
        if job is None or job.has("expired"):
            return _json({"error": "expired"}, 410)
        if job.has("huge") or job.has("hugechunked") or job.has("trickle"):
            return huge_response(declared=job.has("huge"), trickle=job.has("trickle"))
        return file_response(self.video_of(job), job.has("slowdl"))

    # ---- app ----------------------------------------------------------------------------

    def app(self):
        routes = {"openai": self._openai_routes, "generations": self._generations_routes,
                  "unified": self._unified_routes}[self.kind]()
        routes.append(Route("/files/{name}", self._own_file))
        inner = Starlette(routes=routes)
        return FaultMiddleware(inner, self.faults, self.classify, self.recorder)

    def classify(self, method: str, path: str) -> str | None:
        if path.startswith("/files/"):
            return "download"
        if method == "DELETE":
            return "cancel"
        if method == "POST":
            return "submit"
        if "/content" in path:
            return "content"
        return "poll"

    def _gate(self, request: Request, submit: bool = False) -> Response | None:
        if not self._authorized(request):
            return _json({"error": {"message": "bad key", "code": "invalid_api_key"}}, 401)
        if submit and self.refuse_submits:
            return _json({"error": {"message": "overloaded", "code": "overloaded"}}, 503)
        return None

    # ---- openai kind -------------------------------------------------------------------

    def _openai_routes(self) -> list[Route]:
        return [
            Route("/v1/videos", self._oa_create, methods=["POST"]),
            Route("/v1/videos/{id}", self._oa_get, methods=["GET"]),
            Route("/v1/videos/{id}", self._oa_delete, methods=["DELETE"]),
            Route("/v1/videos/{id}/content", self._oa_content, methods=["GET"]),
            Route("/v1/videos/{id}/remix", self._oa_remix, methods=["POST"]),
        ]

    def _oa_object(self, job: FakeJob) -> dict:
        status, progress = self.state(job)
        obj = {"id": job.id, "object": "video", "model": job.model, "status": status,
               "created_at": int(time.time()), "size": job.size, "seconds": job.seconds,
               "error": None}
        if job.index % 2 == 0:  # `progress` may be absent
            obj["progress"] = progress
        if status == "failed":
            code, message = self.failure(job)
            obj["error"] = {"code": code, "message": message}
        if status == "completed" and job.has("foreign"):
            obj["url"] = self.result_url(job)
        return obj

    async def _oa_create(self, request: Request) -> Response:
        if (denied := self._gate(request, submit=True)) is not None:
            return denied
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return _json({"error": {"message": "multipart/form-data required"}}, 415)
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        missing = [k for k in ("prompt", "model", "seconds", "size") if not fields.get(k)]
        if missing or not fields["seconds"].isdigit():
            return _json({"error": {"message": f"bad fields {missing}",
                                    "code": "invalid_request"}}, 400)
        upload = form.get("input_reference")
        reference = await upload.read() if upload is not None and not isinstance(upload, str) \
            else None
        job = self._new_job(request, prompt=fields["prompt"], model=fields["model"],
                            size=fields["size"], seconds=fields["seconds"], fields=fields,
                            reference=reference)
        return _json(self._oa_object(job))

    async def _oa_remix(self, request: Request) -> Response:
        if (denied := self._gate(request, submit=True)) is not None:
            return denied
        source = self.jobs.get(request.path_params["id"])
        if source is None:
            return _json({"error": {"message": "no such video"}}, 404)
        body = orjson.loads(await request.body())
        job = self._new_job(request, prompt=body["prompt"], model=source.model,
                            size=source.size, seconds=source.seconds, fields=body,
                            reference=None, remix_of=source.id)
        return _json(self._oa_object(job))

    async def _oa_get(self, request: Request) -> Response:
        if (denied := self._gate(request)) is not None:
            return denied
        job = self.jobs.get(request.path_params["id"])
        if job is None or job.cancelled:
            return _json({"error": {"message": "no such video"}}, 404)
        return _json(self._oa_object(job))

    async def _oa_delete(self, request: Request) -> Response:
        if (denied := self._gate(request)) is not None:
            return denied
        job = self.jobs.get(request.path_params["id"])
        if job is None:
            return _json({"error": {"message": "no such video"}}, 404)
        job.cancelled = True
        self.cancels.append(job.id)
        return _json({"id": job.id, "object": "video.deleted", "deleted": True})

    async def _oa_content(self, request: Request) -> Response:
        if (denied := self._gate(request)) is not None:
            return denied
        job = self.jobs.get(request.path_params["id"])
        if job is None or self.state(job)[0] != "completed":
            return _json({"error": {"message": "not ready"}}, 404)
        variant = request.query_params.get("variant", "video")
        if variant in ("thumbnail", "spritesheet"):
            if job.has("nopreview"):
                return _json({"error": {"message": "no such variant"}}, 404)
            path = self.media.thumbnail if variant == "thumbnail" else self.media.spritesheet
            return FileResponse(path)
        if job.has("expired"):
            return _json({"error": {"message": "expired"}}, 410)
        if job.has("foreign"):
            return _json({"error": {"message": "content is elsewhere"}}, 404)
        if job.has("redirect"):
            return RedirectResponse(self.result_url(job), status_code=302)
        if job.has("huge") or job.has("hugechunked") or job.has("trickle"):
            return huge_response(declared=job.has("huge"), trickle=job.has("trickle"))
        return file_response(self.video_of(job), job.has("slowdl"))

    # ---- generations kind ---------------------------------------------------------------

    def _generations_routes(self) -> list[Route]:
        return [
            Route("/v1/video/generations", self._gen_create, methods=["POST"]),
            Route("/v1/video/generations/{task_id}", self._gen_get, methods=["GET"]),
        ]

    async def _gen_create(self, request: Request) -> Response:
        if (denied := self._gate(request, submit=True)) is not None:
            return denied
        body = orjson.loads(await request.body())
        if not body.get("model") or not body.get("prompt"):
            return _json({"code": "invalid_request", "message": "model and prompt required",
                          "data": None}, 400)
        image = body.get("image") or (body.get("images") or [None])[0]
        job = self._new_job(request, prompt=body["prompt"], model=body["model"],
                            size=str(body.get("size")), seconds=str(body.get("duration")),
                            fields=body, reference=image.encode() if image else None)
        if job.index % 2:
            return _json({"code": "success", "message": "", "data": {"task_id": job.id}})
        return _json({"id": job.id, "task_id": job.id, "status": "queued"})

    async def _gen_get(self, request: Request) -> Response:
        if (denied := self._gate(request)) is not None:
            return denied
        job = self.jobs.get(request.path_params["task_id"])
        if job is None:
            return _json({"code": "task_not_exist", "message": "task not found",
                          "data": None}, 400)
        status, progress = self.state(job)
        if job.index % 2 == 0:  # flat answer
            obj = {"id": job.id, "task_id": job.id, "status": status, "progress": progress}
            if status == "completed":
                obj["url" if job.index % 4 == 0 else "video_url"] = self.result_url(job)
            if status == "failed":
                code, message = self.failure(job)
                obj["error"] = {"code": code, "message": message}
            return _json(obj)
        names = {"queued": "QUEUED", "in_progress": "IN_PROGRESS", "completed": "SUCCESS",
                 "failed": "FAILURE"}
        data = {"task_id": job.id, "status": names[status], "progress": f"{progress}%"}
        if status == "completed":
            url = self.result_url(job)
            where = job.index % 3
            if where == 0:
                data["result_url"] = url
            elif where == 1:
                data["data"] = {"url": url}
            else:
                data["data"] = {"metadata": {"url": url}}
        if status == "failed":
            data["fail_reason"] = self.failure(job)[1]
        return _json({"code": "success", "message": "", "data": data})

    # ---- unified kind -------------------------------------------------------------------

    def _unified_routes(self) -> list[Route]:
        return [
            Route("/v1/video/create", self._uni_create, methods=["POST"]),
            Route("/v1/video/query", self._uni_query, methods=["GET"]),
        ]

    async def _uni_create(self, request: Request) -> Response:
        if (denied := self._gate(request, submit=True)) is not None:
            return denied
        body = orjson.loads(await request.body())
        if not body.get("model") or not body.get("prompt"):
            return _json({"error": {"message": "model and prompt required"}}, 400)
        images = body.get("images") or []
        job = self._new_job(request, prompt=body["prompt"], model=body["model"],
                            size=str(body.get("size")), seconds=str(body.get("duration")),
                            fields=body, reference=images[0].encode() if images else None)
        return _json({"id": job.id, "status": "pending"})

    async def _uni_query(self, request: Request) -> Response:
        if (denied := self._gate(request)) is not None:
            return denied
        ident = request.query_params.get("id") or request.query_params.get("task_id")
        job = self.jobs.get(ident or "")
        if job is None:
            return _json({"error": {"message": "task not found"}}, 404)
        status, progress = self.state(job)
        names = {"queued": "pending", "in_progress": "processing",
                 "completed": ("succeeded", "completed")[job.index % 2], "failed": "failed"}
        obj = {"id": job.id, "status": names[status]}
        if job.index % 2:
            obj["progress"] = progress
        if status == "completed":
            obj["video_url"] = self.result_url(job)
        if status == "failed":
            obj["error"] = {"message": self.failure(job)[1]}
        return _json(obj)


class FakeWorld:
    """A set of fake upstreams plus the foreign file host, all served until close()."""

    def __init__(self, media: SampleMedia, *, file_host_address: str = "127.0.0.2") -> None:
        self.media = media
        self.thread = ServerThread()
        self.files = FileHost()
        try:
            self.files.url = self.thread.serve(self.files.app(), host=file_host_address)
        except OSError:  # no 127.0.0.2 here: another port is still another origin
            self.files.url = self.thread.serve(self.files.app())
        self.upstreams: list[FakeUpstream] = []

    def add(self, kind: str, key: str, **kwargs) -> FakeUpstream:
        upstream = FakeUpstream(kind, key=key, media=self.media, files=self.files, **kwargs)
        upstream.origin = self.thread.serve(upstream.app())
        self.upstreams.append(upstream)
        return upstream

    def close(self) -> None:
        self.thread.stop()
