"""The engine: claims due tasks from the database, drives them through their backend.

It is the only writer of task progress. Every task has its own `next_poll_at`; the engine
claims due tasks under a lease, so any number of engine processes can share one database,
and a task whose worker died is picked up again once its lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import shutil
import time
from pathlib import Path

from ..backends.base import UNKNOWN, Backend, Job, PollResult
from ..catalog import VideoRequest
from ..domain import (
    CANCELLED,
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    INTERNAL_ERROR,
    QUEUED,
    TIMEOUT,
    Task,
)
from ..store.blobs import LocalBlobStore
from ..store.db import Database
from .finalize import Finalizer

log = logging.getLogger("vidgate.engine")


class Engine:
    def __init__(
        self,
        db: Database,
        blobs: LocalBlobStore,
        backends: dict[str, Backend],
        *,
        work_dir: Path,
        retention_seconds: int,
        lease_seconds: float = 30.0,
        tick_seconds: float = 0.25,
        max_active: int = 256,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.backends = backends
        self.work_dir = work_dir
        self.lease_seconds = lease_seconds
        self.tick = tick_seconds
        self.max_active = max_active
        self.worker_id = "w_" + secrets.token_hex(6)
        self.finalizer = Finalizer(db, blobs, retention_seconds)
        self._active: dict[str, asyncio.Task] = {}
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        """Called after a create so a new task starts without waiting for the next tick."""
        self._wake.set()

    async def run(self) -> None:
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            while not self._stopping:
                try:
                    await self._claim_and_start()
                except Exception:  # a DB hiccup must not kill the engine
                    log.exception("claim failed")
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.tick)
                self._wake.clear()
        finally:
            heartbeat.cancel()
            for step in list(self._active.values()):
                step.cancel()
            await asyncio.gather(heartbeat, *self._active.values(), return_exceptions=True)

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def _claim_and_start(self) -> None:
        room = self.max_active - len(self._active)
        if room <= 0:
            return
        now = time.time()
        claimed = await self.db.claim_due(self.worker_id, now, now + self.lease_seconds, room)
        for task in claimed:
            step = asyncio.create_task(self._run_step(task))
            self._active[task.id] = step
            step.add_done_callback(lambda _t, tid=task.id: self._active.pop(tid, None))

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            ids = list(self._active)
            try:
                lost = await self.db.renew_leases(
                    self.worker_id, ids, time.time() + self.lease_seconds
                )
            except Exception:
                log.exception("lease renewal failed")
                continue
            for task_id in lost:
                step = self._active.get(task_id)
                if step is not None:
                    log.warning("lost lease on %s; abandoning it", task_id)
                    step.cancel()

    # ---- one task -----------------------------------------------------------------------

    async def _run_step(self, task: Task) -> None:
        try:
            await self._step(task)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("step failed for %s; will retry", task.id)
            await self._release(task, delay=_backoff(task.attempts))

    async def _step(self, task: Task) -> None:
        backend = self.backends[task.backend or "sandbox"]
        job = await self._job(task)
        if task.cancel_requested:
            await self._cancel(task, backend, job)
            return
        if time.time() > task.deadline_at:
            if task.upstream_id:
                with contextlib.suppress(Exception):
                    await backend.cancel(job)
            await self._fail(task, TIMEOUT, "The task did not finish before its deadline.")
            return
        if task.upstream_id is None:
            upstream_id = await backend.submit(job)
            task.upstream_id = upstream_id
            # the status comes from the first poll: an accepted job may still wait upstream
            await self.db.update_leased(task.id, self.worker_id, upstream_id=upstream_id)
            job = _with_upstream(job, upstream_id)
        while True:
            result = await backend.poll(job)
            if result.state == COMPLETED:
                won = await self.finalizer.complete(task, backend, job, self.worker_id)
                self._drop_work_dir(task)
                if not won:  # cancelled meanwhile: let the next claim record that
                    await self._release(task, delay=0)
                return
            if result.state == FAILED:
                await self._fail(task, result.error_code or "upstream_error",
                                 result.error_message or "The backend failed the job.")
                return
            await self._record_progress(task, result)
            if not backend.sticky:
                await self._release(task, delay=result.retry_after or backend.poll_interval)
                return
            await asyncio.sleep(backend.poll_interval)
            if await self.db.cancel_requested(task.id):
                await self._cancel(task, backend, job)
                return
            if time.time() > task.deadline_at:
                await backend.cancel(job)
                await self._fail(task, TIMEOUT, "The task did not finish before its deadline.")
                return

    async def _job(self, task: Task) -> Job:
        reference = None
        if task.reference_key:
            reference = await self.blobs.get_bytes(task.reference_key)
        request = VideoRequest(
            model=task.model, prompt=task.prompt, width=task.width, height=task.height,
            seconds=task.seconds, metadata=task.params.get("metadata") or {}, seed=task.seed,
        )
        return Job(task.id, request, self.work_dir / task.id, reference, task.upstream_id)

    async def _record_progress(self, task: Task, result: PollResult) -> None:
        values: dict = {}
        if result.state in (QUEUED, IN_PROGRESS) and result.state != task.status:
            # a task never goes back to queued once it was in progress
            if not (task.status == IN_PROGRESS and result.state == QUEUED):
                values["status"] = result.state
                task.status = result.state
        if result.progress is not None and result.state != UNKNOWN:
            progress = max(0, min(99, int(result.progress)))
            if progress > task.progress:
                values["progress"] = progress
                task.progress = progress
        if values:
            values["status_updated_at"] = int(time.time())
            await self.db.update_leased(task.id, self.worker_id, **values)

    async def _release(self, task: Task, delay: float) -> None:
        jitter = delay * random.uniform(0.0, 0.2)
        await self.db.update_leased(
            task.id, self.worker_id, lease_owner=None, lease_until=None,
            next_poll_at=time.time() + delay + jitter,
        )

    async def _fail(self, task: Task, code: str, message: str) -> None:
        now = int(time.time())
        await self.db.finish_leased(
            task.id, self.worker_id, FAILED, status=FAILED, error_code=code,
            error_message=message, completed_at=now, status_updated_at=now,
            lease_owner=None, lease_until=None,
        )
        self._drop_work_dir(task)

    async def _cancel(self, task: Task, backend: Backend, job: Job) -> None:
        if task.upstream_id:
            with contextlib.suppress(Exception):
                await backend.cancel(job)
        await self._fail(task, CANCELLED, "The task was cancelled.")
        if task.deleted_at is not None or await self._is_deleted(task.id):
            await self.blobs.delete_prefix(f"tasks/{task.id}")

    async def _is_deleted(self, task_id: str) -> bool:
        return await self.db.get_task(task_id) is None

    def _drop_work_dir(self, task: Task) -> None:
        shutil.rmtree(self.work_dir / task.id, ignore_errors=True)


def _with_upstream(job: Job, upstream_id: str) -> Job:
    return Job(job.task_id, job.request, job.work_dir, job.reference, upstream_id)


def _backoff(attempts: int) -> float:
    return min(30.0, 1.0 * 2 ** min(attempts, 5))


__all__ = ["Engine", "INTERNAL_ERROR"]
