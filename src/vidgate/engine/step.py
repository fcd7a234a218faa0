"""One step of one task: submit (with fail-over across channels), one poll, the download,
or an ending (failed, timed out, cancelled).

A step for an HTTP channel ends by handing the task back with its next poll time (the engine
batches those writes), so thousands of tasks in flight cost rows in the database, not
sleeping coroutines. Only sticky backends (the in-process sandbox) keep their lease and poll
in a loop. Where a task may go next is lifecycle.py's rule; this module only applies it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import time
from collections.abc import Callable
from pathlib import Path

from .. import lifecycle
from ..backends.base import (
    UNKNOWN,
    Job,
    ResultUnavailable,
    SubmitRefused,
    TransientError,
    UpstreamFailed,
)
from ..domain import (
    CANCELLED,
    CHARACTERS,
    COMPLETED,
    EXTEND,
    FAILED,
    INTERNAL_ERROR,
    TIMEOUT,
    UPSTREAM_ERROR,
    Task,
)
from ..observability import metrics, requestids
from ..store.blobs import BlobStore
from ..store.database import Database
from . import pacing
from .callbacks import CallbackUrls
from .finalize import Finalizer
from .jobs import Jobs
from .router import Channel, Router

log = logging.getLogger("vidgate.engine")

_POLL_OUTCOMES = {COMPLETED: "completed", FAILED: "failed"}
WITHDRAW_ATTEMPTS = 4  # tries of an upstream cancel before it is given up
WITHDRAW_BACKOFF = 0.25  # seconds before the second try; doubled after each
# A submit whose answer was lost, on a channel that takes an idempotency key, is tried again
# on that channel only (task params `resubmit_to`), up to this many lost answers; then the
# task may move on, leaving a job that channel may have made unseen.
PINNED_SUBMITS = 3
STORAGE_FULL = (errno.ENOSPC, errno.EDQUOT)  # a blob write that failed for want of space


class Steps:
    """Runs steps for one engine (one worker id); the engine owns the loop and the leases."""

    def __init__(self, db: Database, blobs: BlobStore, router: Router, finalizer: Finalizer,
                 *, worker_id: str, work_dir: Path, fetch_retries: int,
                 hand_back: Callable[[Task, float], None],
                 changed: Callable[[str], None] = lambda _task_id: None,
                 callbacks: CallbackUrls | None = None) -> None:
        self.leases = db.leases
        self.tasks = db.tasks
        self.blobs = blobs
        self.router = router
        self.finalizer = finalizer
        self.worker_id = worker_id
        self.jobs = Jobs(blobs, work_dir)
        self.fetch_retries = fetch_retries
        self._hand_back = hand_back  # the engine writes it back at its next flush
        self._changed = changed  # a task's progress or ending was written (its watchers)
        self.callbacks = callbacks or CallbackUrls(None, b"")

    async def run(self, task: Task) -> None:
        """One step of `task` under this worker's lease; never raises but for cancellation.

        Its log lines carry the id of the request that created the task (each step runs in
        its own asyncio task, so the context variable is this step's alone)."""
        requestids.request_id.set(task.params.get("request_id"))
        try:
            await self._step(task)
        except asyncio.CancelledError:
            raise
        except UpstreamFailed as exc:
            await self._fail(task, exc.code, exc.message)
        except Exception:
            log.exception("step failed for %s; will retry", task.id)
            await self._release(task, pacing.next_delay(task.attempts, *pacing.ERROR_RETRY))

    async def _step(self, task: Task) -> None:
        # inputs are needed to submit, and by an in-process backend that may start over
        job = await self.jobs.of(task, to_submit=task.upstream_id is None
                                 or self._is_sticky(task))
        channel = self.router.get(task.backend) if task.upstream_id else None
        if task.cancel_requested:
            await self._cancel(task, channel, job)
            return
        if time.time() > task.deadline_at:
            await self._timeout(task, channel, job)
            return
        if task.upstream_id is None:
            channel = await self._submit(task, job)
            if channel is None:
                return
            job = dataclasses.replace(job, upstream_id=task.upstream_id)
            if not channel.backend.sticky:
                # the status comes from the first poll: an accepted job may still wait upstream
                await self._release(task, self._poll_delay(task, channel, waiting=True))
                return
        if channel is None:
            await self._fail(task, UPSTREAM_ERROR,
                             "The channel that accepted this job is no longer configured.")
            return
        await self._follow(task, channel, job)

    async def _submit(self, task: Task, job: Job) -> Channel | None:
        """Offer the job to eligible channels in order until one accepts; bind the task to it.

        A refusal moves on to the next channel. Once a channel accepted, the binding is
        written before anything else happens, and the job is never offered again.
        """
        remix = task.params.get("remix_of") or {}
        source = self.router.get(remix.get("channel"))
        only = None
        if source is not None and source.backend.supports_remix and remix.get("upstream_id"):
            only = source.name
            job = dataclasses.replace(job, remix_of=remix["upstream_id"])
        hints: list[float] = []
        operation = (job.source.operation if job.source else
                     CHARACTERS if job.character else None)
        if operation == EXTEND and not self.router.can_route(job.request, False, EXTEND):
            job, only, operation = await self.jobs.continuation(job), job.source.channel, None
        pinned = task.params.get("resubmit_to") or {}
        if pinned.get("lost", 0) < PINNED_SUBMITS and self.router.get(pinned.get("channel")):
            only = pinned["channel"]
        for channel in self.router.order(job.request, only=only, image=job.reference is not None,
                                         operation=operation):
            if not self.router.reserve(channel):
                continue
            if not await self._take_place(task, channel):
                self.router.abandon(channel)  # full with other workers' jobs
                continue
            offer = dataclasses.replace(job, callback_url=self.callbacks.url_for(channel,
                                                                                 task.id))
            try:
                upstream_id = await channel.backend.submit(offer)
            except SubmitRefused as exc:
                self.router.refused(channel)
                if exc.retry_after is not None:
                    hints.append(exc.retry_after)
                log.info("channel %s refused %s: %s", channel.name, task.id, exc.message)
                if exc.answer_lost and channel.backend.idempotent_submit:
                    # the job may exist there; only the same key on the same channel finds
                    # it again, another channel would leave it running (and billed) unseen.
                    # It keeps its place in the channel's cap meanwhile.
                    await self._pin(task, channel.name)
                    break
                await self._give_place(task, channel)
                continue
            except UpstreamFailed:
                self.router.answered(channel, accepted=False)
                raise
            except asyncio.CancelledError:
                self.router.abandon(channel)
                raise
            except Exception:
                self.router.refused(channel)
                await self._give_place(task, channel)
                raise
            self.router.answered(channel, accepted=True)
            log.info("task %s submitted to %s as %s", task.id, channel.name, upstream_id)
            try:
                bound = await self._bind(task, channel, upstream_id)
            except Exception:
                # the binding was not written (the database refused, e.g. too many clients):
                # the step is retried and submits again, so this job would run unpolled
                await self._withdraw_unbound(channel, job, upstream_id)
                raise
            if not bound:
                await self._withdraw_unbound(channel, job, upstream_id)
                return None
            return channel
        await self._release(task, pacing.queue_delay(task, self.router, job.request, hints))
        return None

    async def _withdraw_unbound(self, channel: Channel, job: Job, upstream_id: str) -> None:
        """Cancel an accepted job whose binding was not written: nobody would ever poll it."""
        await self._withdraw(channel, dataclasses.replace(job, upstream_id=upstream_id))
        self.router.finished(channel.name)

    async def _take_place(self, task: Task, channel: Channel) -> bool:
        """A channel with `max_in_flight` takes the job only in a place reserved in the
        database, so the cap holds across every engine (this one's count is a moment old)."""
        cap = channel.config.max_in_flight
        return cap is None or await self.leases.reserve_slot(task.id, self.worker_id,
                                                             channel.name, cap)

    async def _give_place(self, task: Task, channel: Channel) -> None:
        if channel.config.max_in_flight is not None:
            await self.leases.free_slot(task.id, self.worker_id)

    async def _pin(self, task: Task, channel_name: str) -> None:
        """Keep the next submits of `task` on the channel that may hold its job."""
        pinned = task.params.get("resubmit_to") or {}
        lost = pinned.get("lost", 0) + 1 if pinned.get("channel") == channel_name else 1
        await self._note_params(task, resubmit_to={"channel": channel_name, "lost": lost})

    async def _note_params(self, task: Task, **changes: object) -> bool:
        """Merge `changes` into the held task's params (what its later steps must know)."""
        params = {**task.params, **changes}
        if not await self.leases.update_leased(task.id, self.worker_id, params=params):
            return False
        task.params = params
        return True

    async def _bind(self, task: Task, channel: Channel, upstream_id: str) -> bool:
        values: dict = {"backend": channel.name, "upstream_id": upstream_id}
        if channel.config.deadline_seconds is not None:
            values["deadline_at"] = task.created_at + channel.config.deadline_seconds
        if not await self.leases.update_leased(task.id, self.worker_id, **values):
            log.warning("lost the lease on %s right after %s accepted it", task.id, channel.name)
            return False
        task.backend, task.upstream_id = channel.name, upstream_id
        task.deadline_at = values.get("deadline_at", task.deadline_at)
        return True

    async def _follow(self, task: Task, channel: Channel, job: Job) -> None:
        """Poll; on completion download; otherwise record progress and come back later."""
        backend = channel.backend
        while True:
            try:
                result = await backend.poll(job)
            except TransientError as exc:
                metrics.channel_polls.labels(channel.name, "transient").inc()
                await self._release(task, self._poll_delay(task, channel, exc.retry_after))
                return
            metrics.channel_polls.labels(channel.name, _POLL_OUTCOMES.get(result.state, "running")
                                         ).inc()
            if result.state == COMPLETED:
                seen_at = time.monotonic()
                job = dataclasses.replace(job, result_url=result.result_url,
                                          thumbnail_url=result.thumbnail_url)
                await self._complete(task, channel, job, seen_at)
                return
            if result.state == FAILED:
                await self._fail(task, result.error_code or UPSTREAM_ERROR,
                                 result.error_message or "The backend failed the job.")
                return
            changed = lifecycle.apply_report(
                task, result.state, None if result.state == UNKNOWN else result.progress,
                int(time.time()))
            if not backend.sticky:
                await self._release(task, self._poll_delay(task, channel, result.retry_after,
                                                           waiting=True))
                return
            if changed:
                if await self.leases.update_leased(task.id, self.worker_id, **changed):
                    self._changed(task.id)
            await asyncio.sleep(backend.poll_interval)
            if await self.tasks.cancel_requested(task.id):
                await self._cancel(task, channel, job)
                return
            if time.time() > task.deadline_at:
                await self._timeout(task, channel, job)
                return

    async def _complete(self, task: Task, channel: Channel, job: Job, seen_at: float) -> None:
        """Store the result and report the task completed; `seen_at` (monotonic) is when a
        poll first saw the job done, the start of the completion lag."""
        # A result that trickles in forever passes every per-read timeout; the task's
        # deadline (the channel's deadline_seconds, or the default) bounds the whole fetch.
        deadline = asyncio.timeout(max(0.0, task.deadline_at - time.time()))
        try:
            async with deadline:
                won = await self.finalizer.complete(task, channel.backend, job,
                                                    self.worker_id)
        except TimeoutError:
            if not deadline.expired():
                raise
            await self._timeout(task, channel, job)
            return
        except ResultUnavailable as exc:
            await self._result_unavailable(task, channel, exc)
            return
        except TransientError as exc:
            await self._release(task, self._poll_delay(task, channel, exc.retry_after))
            return
        except OSError as exc:
            if exc.errno not in STORAGE_FULL:
                raise
            await self._storage_full(task, exc)
            return
        finally:
            self.jobs.drop(task)
        if won:
            self._changed(task.id)
            metrics.completion_lag.labels(channel.name).observe(time.monotonic() - seen_at)
            metrics.task_ended(task.model, channel.name, None)
            log.info("task %s completed on %s", task.id, channel.name)
            self.router.finished(channel.name)
        else:  # cancelled meanwhile: let the next claim record that
            await self._release(task, delay=0)

    async def _storage_full(self, task: Task, exc: OSError) -> None:
        """The provider's result is ready but does not fit in our storage: try again later,
        and remember that the reason is ours, so that the deadline fails the task with
        `internal_error`, not `timeout`."""
        log.warning("task %s: the result could not be stored, will retry: %s", task.id, exc)
        if not task.params.get("storage_full"):
            await self._note_params(task, storage_full=True)
        await self._release(task, pacing.next_delay(task.attempts, *pacing.ERROR_RETRY))

    async def _result_unavailable(self, task: Task, channel: Channel,
                                  exc: ResultUnavailable) -> None:
        """URLs flap and a fresh poll may hand out a fresh one, so try a few times; an
        expired result stays expired, and then the task fails instead of polling for hours."""
        failures = int(task.params.get("fetch_failures") or 0) + 1
        if failures >= self.fetch_retries:
            await self._fail(task, UPSTREAM_ERROR,
                             f"The result could not be downloaded from the upstream: "
                             f"{exc.message}.")
            return
        if await self._note_params(task, fetch_failures=failures):
            await self._release(task, self._poll_delay(task, channel, exc.retry_after))

    def _poll_delay(self, task: Task, channel: Channel, retry_after: float | None = None,
                    *, waiting: bool = False) -> float:
        return pacing.poll_delay(task, channel, self.callbacks.public_url, retry_after,
                                 waiting=waiting)

    # ---- endings ------------------------------------------------------------------------

    async def _release(self, task: Task, delay: float) -> None:
        """Hand the task back (with its status and progress) at the engine's next flush."""
        self._hand_back(task, delay)

    async def _fail(self, task: Task, code: str, message: str) -> None:
        now = int(time.time())
        done = await self.leases.finish_leased(
            task.id, self.worker_id, FAILED, error_code=code,
            error_message=message, completed_at=now, status_updated_at=now,
            lease_owner=None, lease_until=None,
        )
        if done:
            self._changed(task.id)
            metrics.task_ended(task.model, task.backend if task.upstream_id else None, code)
            log.info("task %s ended: %s", task.id, code)
            if task.upstream_id:
                self.router.finished(task.backend)
        self.jobs.drop(task)

    async def _withdraw(self, channel: Channel | None, job: Job) -> None:
        """Forward a cancel upstream, best effort: the task ends here either way. A transient
        failure (5xx, 429, a dropped connection) is tried again a few times, since a job left
        running upstream is still billed by the provider."""
        if channel is None or not job.upstream_id:
            return
        for attempt in range(WITHDRAW_ATTEMPTS):
            try:
                await channel.backend.cancel(job)
                return
            except TransientError as exc:
                log.info("cancel on %s failed (try %d): %r", channel.name, attempt + 1, exc)
                if attempt + 1 < WITHDRAW_ATTEMPTS:
                    await asyncio.sleep(WITHDRAW_BACKOFF * 2**attempt)
            except Exception as exc:
                log.info("cancel on %s failed: %r", channel.name, exc)
                return

    async def _timeout(self, task: Task, channel: Channel | None, job: Job) -> None:
        await self._withdraw(channel, job)
        if task.params.get("storage_full"):
            await self._fail(task, INTERNAL_ERROR, "The finished video could not be stored "
                             "before the task's deadline (the gateway's storage is full).")
            return
        await self._fail(task, TIMEOUT, "The task did not finish before its deadline.")

    async def _cancel(self, task: Task, channel: Channel | None, job: Job) -> None:
        await self._withdraw(channel, job)
        await self._fail(task, CANCELLED, "The task was cancelled.")
        if task.deleted_at is not None or await self._is_deleted(task.id):
            await self.blobs.delete_prefix(f"tasks/{task.id}")

    async def _is_deleted(self, task_id: str) -> bool:
        return await self.tasks.get(task_id) is None

    def _is_sticky(self, task: Task) -> bool:
        channel = self.router.get(task.backend)
        return channel is not None and channel.backend.sticky

