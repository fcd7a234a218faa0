"""Fan-out of task progress to live watchers (the SSE routes in `api/events.py`).

A page or a CLI that follows a task keeps a connection open for minutes; if each connection
polled the database, 200 watchers of one task would cost 200 reads a tick. `TaskWatch` keeps
one watch per watched (owner, task id) in this process: one poller reads the task through
`TaskService.get` every `interval` seconds while anyone watches, and hands each new snapshot
to every watcher. Joining a watch that already has a snapshot reads nothing. An engine in the
same process calls `wake(task_id)` after it writes progress or an ending (`Engine.on_change`),
so watchers hear of it at once instead of at the next tick.

Snapshots are ordered by their `point` (state rank, progress): a watcher is only given a
snapshot further along than the last one it saw, which is also how a resumed stream
(`Last-Event-ID`) skips what it has already seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .domain import COMPLETED, FAILED, IN_PROGRESS, QUEUED, Task
from .errors import ApiError

log = logging.getLogger("vidgate.watch")
Read = Callable[[str, str], Awaitable[Task]]  # (owner id, task id) -> task; raises 404
Point = tuple[int, int]
_RANK = {QUEUED: 0, IN_PROGRESS: 1, COMPLETED: 2, FAILED: 2}
START: Point = (-1, -1)  # before anything


def point(task: Task) -> Point:
    """How far a task has got: its state's rank, then its progress (terminal states last)."""
    return _RANK.get(task.status, 1), 100 if task.finished else task.progress


@dataclass
class _Watch:
    owner_id: str
    task_id: str
    watchers: int = 0
    latest: Task | None = None
    error: ApiError | None = None  # the read's refusal (not found, deleted): ends every watcher
    version: int = 0
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    woken: asyncio.Event = field(default_factory=asyncio.Event)
    poller: asyncio.Task | None = None

    @property
    def done(self) -> bool:
        return self.error is not None or (self.latest is not None and self.latest.finished)


class Follower:
    """One watcher's view of a watch: each snapshot further along than the last one it got,
    until the task finishes (the read's `ApiError` if it disappears meanwhile)."""

    def __init__(self, hub: TaskWatch, watch: _Watch, after: Point) -> None:
        self._hub = hub
        self._watch = watch
        self._after = after
        self._seen_version = 0
        self._ended = False

    def __aiter__(self) -> Follower:
        return self

    async def __anext__(self) -> Task:
        watch = self._watch
        while not self._ended:
            async with watch.changed:
                await watch.changed.wait_for(
                    lambda: watch.version > self._seen_version or self._hub.closed)
                self._seen_version = watch.version
                task, error = watch.latest, watch.error
            if error is not None:
                self.close()
                raise error
            if self._hub.closed or task is None:
                break
            if task.finished:
                self.close()  # the last snapshot; the next call ends the iteration
            if point(task) > self._after:
                self._after = point(task)
                return task
        self.close()
        raise StopAsyncIteration

    def close(self) -> None:
        """Stop watching (idempotent); the last watcher to leave stops the poller."""
        if not self._ended:
            self._ended = True
            self._hub._leave(self._watch)


class TaskWatch:
    def __init__(self, read: Read, interval: float = 0.5) -> None:
        self._read = read
        self.interval = interval
        self._watches: dict[tuple[str, str], _Watch] = {}
        # task id -> its watches (one per owner asking): `wake` is called for every task an
        # engine writes, thousands a tick, and must not scan every watch for each
        self._by_task: dict[str, list[_Watch]] = {}
        self.closed = False

    @property
    def watched(self) -> int:
        """How many tasks this process is polling for watchers now."""
        return len(self._watches)

    def wake(self, task_id: str) -> None:
        """The task changed (an in-process engine wrote it): read it now, not at the tick."""
        for watch in self._by_task.get(task_id, ()):
            watch.woken.set()

    async def open(self, owner_id: str, task_id: str, after: Point = START) -> Follower:
        """Start following the owner's task once it has been read.

        Raises the read's `ApiError` (404 for another owner's id) before returning, so a
        route can still answer with an error status. The caller must `close()` the follower.
        """
        watch = self._join(owner_id, task_id)
        try:
            async with watch.changed:
                await watch.changed.wait_for(lambda: watch.version > 0 or self.closed)
            if watch.error is not None:
                raise watch.error
        except BaseException:
            self._leave(watch)
            raise
        return Follower(self, watch, after)

    async def close(self) -> None:
        """Shut-down: end every follower and stop the pollers."""
        self.closed = True
        for watch in list(self._watches.values()):
            async with watch.changed:
                watch.changed.notify_all()
            if watch.poller is not None:
                watch.poller.cancel()

    def _join(self, owner_id: str, task_id: str) -> _Watch:
        key = (owner_id, task_id)
        watch = self._watches.get(key)
        if watch is None:
            watch = self._watches[key] = _Watch(owner_id, task_id)
            self._by_task.setdefault(task_id, []).append(watch)
            watch.poller = asyncio.create_task(self._poll(watch))
        watch.watchers += 1
        return watch

    def _leave(self, watch: _Watch) -> None:
        watch.watchers -= 1
        if watch.watchers == 0 and self._watches.get((watch.owner_id, watch.task_id)) is watch:
            del self._watches[(watch.owner_id, watch.task_id)]
            same_task = self._by_task[watch.task_id]
            same_task.remove(watch)
            if not same_task:
                del self._by_task[watch.task_id]
            if watch.poller is not None:
                watch.poller.cancel()

    async def _poll(self, watch: _Watch) -> None:
        """Read the task until it finishes (or cannot be read), publishing each change."""
        while not watch.done:
            watch.woken.clear()
            try:
                task = await self._read(watch.owner_id, watch.task_id)
            except ApiError as error:
                await self._publish(watch, None, error)
                return
            except Exception:  # the database is away: keep the watchers, try next tick
                log.exception("reading %s for its watchers failed", watch.task_id)
                if watch.latest is None:  # nothing to show yet: the request gets a 500
                    await self._publish(watch, None, ApiError(
                        500, "internal_error", "The task could not be read; try again."))
                    return
                task = watch.latest
            if watch.latest is None or point(task) != point(watch.latest):
                await self._publish(watch, task, None)
            if watch.done:
                return
            # the tick, cut short by `wake`: this waits on an event, it does not sleep
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watch.woken.wait(), self.interval)

    async def _publish(self, watch: _Watch, task: Task | None, error: ApiError | None) -> None:
        async with watch.changed:
            watch.latest, watch.error = task or watch.latest, error
            watch.version += 1
            watch.changed.notify_all()
