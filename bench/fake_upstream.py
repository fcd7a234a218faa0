"""A fast fake upstream of kind `openai` for the engine-scale phase.

Each submitted job completes after a random delay (uniform in [min, max] seconds from its
submit). It records, per job, the vidgate task id (the engine sends it as Idempotency-Key),
the wall-clock time the job completed upstream, and when vidgate fetched its content, so the
harness can compute how long vidgate took to report each completion.

Run: python -m bench.fake_upstream --port P --media DIR --delay-min A --delay-max B
"""

from __future__ import annotations

import argparse
import random
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

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


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--media", type=Path, required=True)
    parser.add_argument("--delay-min", type=float, required=True)
    parser.add_argument("--delay-max", type=float, required=True)
    args = parser.parse_args()
    app = build(args.media, (args.delay_min, args.delay_max))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()
