"""The built-in backend: procedural H.264 videos rendered on this machine's CPU.

Not a generative model. It lets the whole gateway run with no network and no GPU. Renders run
in a process pool so the event loop keeps serving; progress comes from a file the renderer
writes as it encodes.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections import OrderedDict
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

from ...domain import (
    CHARACTERS,
    COMPLETED,
    EDIT,
    EXTEND,
    FAILED,
    IN_PROGRESS,
    INTERNAL_ERROR,
    INVALID_IMAGE,
    QUEUED,
)
from ...media.files import SPRITESHEET_NAME, THUMBNAIL_NAME, VIDEO_NAME
from ..base import Job, PollResult, ResultFiles
from .derived import render_edit, render_extension, render_with_character
from .progress import read_progress
from .render import render_sandbox
from .spec import RenderSpec


class SandboxBackend:
    name = "sandbox"
    sticky = True
    supports_remix = False  # a remix renders anew from the source's thumbnail
    idempotent_submit = False  # in-process: a submit's answer is never lost
    operations = frozenset({EDIT, EXTEND, CHARACTERS})

    def __init__(self, workers: int = 1, fps: int = 24, poll_interval: float = 0.25) -> None:
        self.fps = fps
        self.poll_interval = poll_interval
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._renders: dict[str, Future] = {}
        # Jobs accepted but waiting for a free render slot, oldest first. They report
        # `queued`, so a client never sees in_progress for a video nobody is rendering.
        self._waiting: OrderedDict[str, Job] = OrderedDict()

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn: forking a process that runs an event loop and DB threads is unsafe
            ctx = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=self._workers, mp_context=ctx)
        return self._pool

    def _out_dir(self, job: Job) -> Path:
        return job.work_dir / "sandbox"

    async def submit(self, job: Job) -> str:
        self._waiting[job.task_id] = job
        self._admit()
        return job.task_id

    def free_slots(self) -> int:
        return max(0, self._workers - self._running() - len(self._waiting))

    def _running(self) -> int:
        return sum(1 for f in self._renders.values() if not f.done())

    def _admit(self) -> None:
        while self._waiting and self._running() < self._workers:
            _, job = self._waiting.popitem(last=False)
            self._start(job)

    def _start(self, job: Job) -> None:
        req = job.request
        spec = RenderSpec(
            prompt=req.prompt,
            width=req.width,
            height=req.height,
            seconds=req.seconds,
            seed=req.seed,
            fps=self.fps,
            first_frame=job.reference,
        )
        out = self._out_dir(job)
        out.mkdir(parents=True, exist_ok=True)
        progress = str(out / "progress")
        source, character = job.source, job.character
        if source is not None and source.operation == EDIT:
            call = (render_edit, spec, str(source.path), str(out), progress)
        elif source is not None and source.operation == EXTEND:
            call = (render_extension, spec, str(source.path), source.seconds, str(out),
                    progress)
        elif character is not None:
            call = (render_with_character, spec, str(character.clip), str(out), progress)
        else:
            call = (render_sandbox, spec, str(out), progress)
        self._renders[job.task_id] = self._executor().submit(*call)

    async def poll(self, job: Job) -> PollResult:
        self._admit()
        if job.task_id in self._waiting:
            return PollResult(QUEUED, 0)
        render = self._renders.get(job.task_id)
        if render is None:
            # The process that started this render is gone (crash, restart): render again.
            # Output is deterministic, so the client cannot tell.
            self._waiting[job.task_id] = job
            self._admit()
            return PollResult(QUEUED if job.task_id in self._waiting else IN_PROGRESS, 0)
        if not render.done():
            progress = read_progress(self._out_dir(job) / "progress")
            return PollResult(IN_PROGRESS, min(progress or 0, 99))
        self._renders.pop(job.task_id, None)
        error = render.exception()
        if error is None:
            # keep a done marker so fetch() knows the files are complete
            self._renders[job.task_id] = render
            return PollResult(COMPLETED, 100)
        code = INVALID_IMAGE if isinstance(error, ValueError) else INTERNAL_ERROR
        return PollResult(FAILED, error_code=code, error_message=f"render failed: {error}")

    async def fetch(self, job: Job) -> ResultFiles:
        self._renders.pop(job.task_id, None)
        out = self._out_dir(job)
        return ResultFiles(
            video=out / VIDEO_NAME,
            thumbnail=out / THUMBNAIL_NAME,
            spritesheet=out / SPRITESHEET_NAME,
        )

    async def cancel(self, job: Job) -> None:
        self._waiting.pop(job.task_id, None)
        render = self._renders.pop(job.task_id, None)
        if render is not None:
            # a render already running finishes in its worker; its files are dropped
            render.cancel()

    async def close(self) -> None:
        """Stop rendering: a render still running is abandoned with this process's leases
        (another worker renders the task again), so its worker process is ended, not left
        to finish a video nobody will collect."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            # ProcessPoolExecutor has no public handle on its workers before Python 3.14
            workers = list((getattr(pool, "_processes", None) or {}).values())
            await asyncio.to_thread(pool.shutdown, wait=False, cancel_futures=True)
            for process in workers:
                if process.is_alive():
                    process.terminate()
            for process in workers:
                await asyncio.to_thread(process.join, 5)
