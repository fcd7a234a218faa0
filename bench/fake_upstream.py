"""A fast fake upstream for the engine-scale phase: kind `openai` (polled), or, with
`--protocol replicate`, Replicate's predictions API calling back the `webhook` each job was
given (the engine-callbacks phase).

Each submitted job completes after a random delay (uniform in [min, max] seconds from its
submit). It records, per job, the vidgate task id (the engine sends it as Idempotency-Key;
with callbacks it is the last part of the webhook's path), the wall-clock time the job
completed upstream, and when vidgate fetched its content, so the harness can compute how
long vidgate took to report each completion. In callback mode the job is posted to its
webhook at that time, signed as Replicate signs (Standard Webhooks, `--webhook-secret`).

Run: python -m bench.fake_upstream --port P --media DIR --delay-min A --delay-max B
     [--protocol replicate --webhook-secret whsec_...]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import random
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from vidgate.media.files import SPRITESHEET_NAME, THUMBNAIL_NAME, VIDEO_NAME


@dataclass
class Job:
    task_id: str
    submitted: float
    done_at: float
    polls: int = 0
    fetched_at: float | None = None
    webhook: str | None = None
    called_back: int | None = None  # vidgate's answer to the callback
    called_back_at: float | None = None  # when vidgate answered it


def _json(data: object, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _video(job_id: str, status: str, progress: int) -> dict:
    return {"id": job_id, "object": "video", "model": "sora-2", "status": status,
            "progress": progress, "created_at": 0, "completed_at": None, "expires_at": None,
            "size": "1280x720", "seconds": "1", "error": None}


def build(media: Path, delay: tuple[float, float], seed: int = 6) -> Starlette:
    jobs: dict[str, Job] = {}
    rng = random.Random(seed)

    async def create(request: Request) -> Response:
        await request.body()  # the multipart form is not needed; drain it
        job_id = "up_" + secrets.token_hex(12)
        now = time.time()
        jobs[job_id] = Job(request.headers.get("idempotency-key", job_id), now,
                           now + rng.uniform(*delay))
        return _json(_video(job_id, "queued", 0))

    async def status(request: Request) -> Response:
        job = jobs.get(request.path_params["job_id"])
        if job is None:
            return _json({"error": {"message": "no such video", "code": "not_found"}}, 404)
        job.polls += 1
        now = time.time()
        if now >= job.done_at:
            return _json(_video(request.path_params["job_id"], "completed", 100))
        span = job.done_at - job.submitted
        progress = int(99 * (now - job.submitted) / span) if span > 0 else 0
        return _json(_video(request.path_params["job_id"], "in_progress", progress))

    async def content(request: Request) -> Response:
        job = jobs.get(request.path_params["job_id"])
        if job is None:
            return _json({"error": {"message": "no such video"}}, 404)
        variant = request.query_params.get("variant", "video")
        previews = {"thumbnail": THUMBNAIL_NAME, "spritesheet": SPRITESHEET_NAME}
        name = previews.get(variant, VIDEO_NAME)
        if name == VIDEO_NAME and job.fetched_at is None:
            job.fetched_at = time.time()
        return FileResponse(media / name)

    async def records(_request: Request) -> Response:
        return _json([{"task_id": j.task_id, "submitted": j.submitted, "done_at": j.done_at,
                       "polls": j.polls, "fetched_at": j.fetched_at} for j in jobs.values()])

    async def healthz(_request: Request) -> Response:
        return _json({"ok": True})

    return Starlette(routes=[
        Route("/v1/videos", create, methods=["POST"]),
        Route("/v1/videos/{job_id}", status, methods=["GET"]),
        Route("/v1/videos/{job_id}/content", content, methods=["GET"]),
        Route("/_bench/jobs", records, methods=["GET"]),
        Route("/_bench/healthz", healthz, methods=["GET"]),
    ])


def _prediction(job_id: str, status: str, output: str | None) -> dict:
    return {"id": job_id, "model": "bench/video", "version": "v", "input": {}, "logs": "",
            "output": output, "error": None, "status": status, "created_at": None,
            "urls": {}, "metrics": {}}


def _signed(secret: str, body: bytes) -> dict[str, str]:
    """Standard Webhooks headers, as Replicate signs its webhooks."""
    msg_id, stamp = "msg_" + secrets.token_hex(10), str(int(time.time()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {"webhook-id": msg_id, "webhook-timestamp": stamp, "content-type": "application/json",
            "webhook-signature": "v1," + base64.b64encode(digest).decode()}


def build_replicate(media: Path, delay: tuple[float, float], secret: str, seed: int = 6
                    ) -> Starlette:
    """Replicate's create / get / output, and a POST to each job's webhook when it ends."""
    jobs: dict[str, Job] = {}
    rng = random.Random(seed)
    state: dict[str, aiohttp.ClientSession] = {}

    async def call_back(job_id: str, job: Job, output: str) -> None:
        if "http" not in state:
            state["http"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
        body = orjson.dumps(_prediction(job_id, "succeeded", output))
        try:
            async with state["http"].post(job.webhook, data=body,
                                          headers=_signed(secret, body)) as response:
                job.called_back = response.status
        except aiohttp.ClientError:
            job.called_back = 0
        job.called_back_at = time.time()

    async def create(request: Request) -> Response:
        body = orjson.loads(await request.body())
        job_id = "up_" + secrets.token_hex(12)
        now = time.time()
        webhook = body.get("webhook") if isinstance(body, dict) else None
        task_id = urlsplit(webhook).path.rsplit("/", 1)[-1] if webhook else job_id
        job = Job(task_id, now, now + rng.uniform(*delay), webhook=webhook)
        jobs[job_id] = job
        if webhook:
            output = f"{str(request.base_url).rstrip('/')}/v1/files/{job_id}"
            asyncio.get_running_loop().call_later(
                job.done_at - now,
                lambda: asyncio.ensure_future(call_back(job_id, job, output)))
        return _json(_prediction(job_id, "starting", None), 201)

    async def get(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        job = jobs.get(job_id)
        if job is None:
            return _json({"title": "Not found", "detail": "no such prediction"}, 404)
        job.polls += 1
        if time.time() >= job.done_at:
            output = f"{str(request.base_url).rstrip('/')}/v1/files/{job_id}"
            return _json(_prediction(job_id, "succeeded", output))
        return _json(_prediction(job_id, "processing", None))

    async def output(request: Request) -> Response:
        job = jobs.get(request.path_params["job_id"])
        if job is None:
            return _json({"title": "Not found"}, 404)
        if job.fetched_at is None:
            job.fetched_at = time.time()
        return FileResponse(media / VIDEO_NAME)

    async def records(_request: Request) -> Response:
        return _json([{"task_id": j.task_id, "submitted": j.submitted, "done_at": j.done_at,
                       "polls": j.polls, "fetched_at": j.fetched_at,
                       "called_back": j.called_back, "called_back_at": j.called_back_at}
                      for j in jobs.values()])

    async def healthz(_request: Request) -> Response:
        return _json({"ok": True})

    return Starlette(routes=[
        Route("/v1/models/{owner}/{name}/predictions", create, methods=["POST"]),
        Route("/v1/predictions/{job_id}", get, methods=["GET"]),
        Route("/v1/files/{job_id}", output, methods=["GET"]),
        Route("/_bench/jobs", records, methods=["GET"]),
        Route("/_bench/healthz", healthz, methods=["GET"]),
    ])


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--media", type=Path, required=True)
    parser.add_argument("--delay-min", type=float, required=True)
    parser.add_argument("--delay-max", type=float, required=True)
    parser.add_argument("--protocol", choices=("openai", "replicate"), default="openai")
    parser.add_argument("--webhook-secret", default="")
    args = parser.parse_args()
    delay = (args.delay_min, args.delay_max)
    app = build_replicate(args.media, delay, args.webhook_secret) \
        if args.protocol == "replicate" else build(args.media, delay)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()
