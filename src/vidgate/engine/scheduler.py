"""The engine: claims due tasks from the database and runs one step of each (step.py).

It is the only writer of task progress. Every task has its own `next_poll_at`; the engine
claims due tasks in batches under a lease, so any number of engine processes can share one
database, and a task whose worker died is picked up again once its lease runs out. This
module is the loop: claim, keep the leases alive (heartbeat), write back the tasks that steps
hand back, in batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from ..backends.base import Backend
from ..domain import Task
from ..store.blobs import BlobStore
from ..store.database import Database
from ..store.wakeups import NewWorkListener
from .callbacks import CallbackUrls
from .finalize import Finalizer, Pricing, free
from .loop import Loop
from .router import Router
from .step import Steps

log = logging.getLogger("vidgate.engine")


class Engine:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        backends: dict[str, Backend],
        *,
        work_dir: Path,
        retention_seconds: int,
        router: Router | None = None,
        lease_seconds: float = 30.0,
        tick_seconds: float = 0.25,
        max_active: int = 256,
        pricing: Pricing = free,
        fetch_retries: int = 3,
        in_flight_refresh_seconds: float = 1.0,
        callbacks: CallbackUrls | None = None,
    ) -> None:
        self.leases = db.leases
        self.backends = backends
        self.router = router or Router.serving_everything(backends)
        self.lease_seconds = lease_seconds
        self.max_active = max_active
        self.in_flight_refresh = in_flight_refresh_seconds
        self.worker_id = "w_" + secrets.token_hex(6)
        self.steps = Steps(
            db, blobs, self.router, Finalizer(db, blobs, retention_seconds, pricing),
            worker_id=self.worker_id, work_dir=work_dir, fetch_retries=fetch_retries,
            hand_back=self._hand_back, changed=self._changed, callbacks=callbacks,
        )
        # Told of every task whose progress or ending this engine wrote: the in-process
        # TaskWatch (watch.py) sets it, so SSE watchers hear of it now, not at their tick.
        self.on_change: Callable[[str], None] = lambda _task_id: None
        self._active: dict[str, asyncio.Task] = {}
        # Steps end by handing their task back with its next poll time. Those writes are
        # collected and flushed in one transaction per tick: with thousands of tasks in
        # flight, one commit per poll was most of the engine's CPU (bench/RESULTS.md).
        self._releases: dict[str, dict] = {}
        self._loop = Loop(self._round, tick_seconds, log, "claim failed")
        # On PostgreSQL a create in any process wakes this engine (LISTEN/NOTIFY); the tick
        # stays as the fallback and is what finds tasks whose next poll came due.
        self.listener = (None if db.is_sqlite else
                         NewWorkListener(db.engine, self.wake, self.worker_id))
        self._counted_at = 0.0
        self._behind = False  # the last claim filled every free place (see _claim_and_start)
        self._event_loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        """Called after a create (or a provider callback) so the task is looked at without
        waiting for the next tick."""
        self._loop.wake()

    def stop(self) -> None:
        """Stop claiming; `run` then stops its steps and hands their tasks back."""
        self._loop.stop()

    def stop_from_signal(self) -> None:
        """`stop`, safe to call from a signal handler (it runs on the engine's loop)."""
        if self._event_loop is not None:
            self._event_loop.call_soon_threadsafe(self.stop)

    def loop_age(self) -> float:
        """Seconds since the loop last started a round (readiness)."""
        return self._loop.age()

    async def run(self) -> None:
        self._event_loop = asyncio.get_running_loop()
        heartbeat = asyncio.create_task(self._heartbeat())
        listening = (asyncio.create_task(self.listener.run()) if self.listener else None)
        try:
            await self._loop.run()
        finally:
            heartbeat.cancel()
            if listening is not None:
                listening.cancel()
            held = list(self._active)
            for step in list(self._active.values()):
                step.cancel()
            await asyncio.gather(heartbeat, *([listening] if listening else []),
                                 *self._active.values(), return_exceptions=True)
            with contextlib.suppress(Exception):  # unflushed leases simply run out
                await self._flush_releases()
            with contextlib.suppress(Exception):
                # Steps cut short hand their tasks back due now, so another worker takes
                # them at once instead of after the lease (a stop, a deploy, SIGTERM).
                await self.leases.hand_back_now(self.worker_id, held, time.time())
                if held:
                    log.info("handed back %d tasks on stopping", len(held))

    async def _round(self) -> None:
        await self._flush_releases()
        await self._claim_and_start()

    def _hand_back(self, task: Task, delay: float) -> None:
        """Hand the task back (with its status and progress) at the next flush."""
        self._releases[task.id] = {
            "next_poll_at": time.time() + delay, "claimed_next_poll_at": task.next_poll_at,
            "status": task.status,
            "progress": task.progress, "status_updated_at": task.status_updated_at,
        }

    async def _flush_releases(self) -> None:
        if not self._releases:
            return
        batch, self._releases = self._releases, {}
        await self.leases.release_many(self.worker_id, batch)
        for task_id in batch:
            self._changed(task_id)

    def _changed(self, task_id: str) -> None:
        self.on_change(task_id)

    async def _claim_and_start(self) -> None:
        """Claim a batch: tasks already bound to a channel first (polls, downloads, cancels,
        deadlines), then as many new tasks as the channels have room for, so a full channel
        does not make the engine churn through queued rows it cannot place."""
        room = self.max_active - len(self._active)
        if room <= 0:
            return
        now = time.time()
        if now - self._counted_at >= self.in_flight_refresh:
            self.router.set_in_flight(await self.leases.count_in_flight())
            self._counted_at = now
        lease_until = now + self.lease_seconds
        submit_room = self.router.submit_room()
        if submit_room is None:
            claimed = await self.leases.claim_due(self.worker_id, now, lease_until, room)
        else:
            claimed = await self.leases.claim_due(self.worker_id, now, lease_until, room,
                                              submit=False)
            fresh = min(room - len(claimed), submit_room)
            if fresh > 0:
                claimed += await self.leases.claim_due(self.worker_id, now, lease_until, fresh,
                                                   submit=True)
        # Every free place taken: more may be due now. The next round then starts as soon as
        # half the places are free again, not at the end of the tick, so an engine behind
        # its schedule (100,000 in flight, a loaded machine) catches up as fast as its steps
        # end, still claiming in batches.
        self._behind = len(claimed) >= room
        for task in claimed:
            if task.id in self._active:  # our own step outlived its lease: it is still on it
                continue
            step = asyncio.create_task(self.steps.run(task))
            self._active[task.id] = step
            step.add_done_callback(lambda _t, tid=task.id: self._step_ended(tid))

    def _step_ended(self, task_id: str) -> None:
        self._active.pop(task_id, None)
        if self._behind and len(self._active) <= self.max_active // 2:
            self._behind = False
            self._loop.wake()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            ids = list(self._active)
            try:
                lost = await self.leases.renew(
                    self.worker_id, ids, time.time() + self.lease_seconds
                )
            except Exception:
                log.exception("lease renewal failed")
                continue
            for task_id in lost:
                step = self._active.get(task_id)
                # a step that ended its task itself (finish_leased gives the lease up) may be
                # done but not yet out of `_active`: on SQLite's one writer its ending and
                # this renewal often share a batch, the ending first
                if step is not None and not step.done():
                    log.warning("lost lease on %s; abandoning it", task_id)
                    step.cancel()
