"""A task's life: its states, the moves between them, its progress, and how each ending pays.

Every rule about where a task may go lives here, and both sides use it: the engine (which
decides) and the store's conditional updates (which make the decision stick against other
workers, the client's cancel and delete). Statuses are strings (`StrEnum`), so rows, JSON and
comparisons with plain strings read from the database stay what they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa


class TaskStatus(StrEnum):
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


# The legal moves. A task never goes back to queued once in progress; an ended task stays
# ended (a cancel, a delete or a timeout ends it as failed, with its reason in error_code).
TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.QUEUED: frozenset(
        {TaskStatus.IN_PROGRESS, TaskStatus.COMPLETED, TaskStatus.FAILED}),
    TaskStatus.IN_PROGRESS: frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED}),
    TaskStatus.COMPLETED: frozenset(),
    TaskStatus.FAILED: frozenset(),
}
ACTIVE: tuple[TaskStatus, ...] = tuple(s for s in TaskStatus if TRANSITIONS[s])
TERMINAL: tuple[TaskStatus, ...] = tuple(s for s in TaskStatus if not TRANSITIONS[s])

# Progress a backend may report while a task runs; 100 belongs to completion alone.
RUNNING_PROGRESS_MAX = 99
COMPLETED_PROGRESS = 100


def can_move(current: str, new: str) -> bool:
    """A legal write of `new` over `current`: one of TRANSITIONS, or a running task keeping
    its status. An ended task is never written again."""
    now = TaskStatus(current)
    return new in TRANSITIONS[now] or (new == now and now in ACTIVE)


def sources(new: str) -> list[TaskStatus]:
    """The stored statuses a conditional update to `new` may overwrite."""
    return [s for s in TaskStatus if can_move(s, new)]


def reported_status(current: str, reported: str) -> TaskStatus | None:
    """The status a running task takes from a backend's report (queued or in progress), or
    None to keep its own."""
    if reported == current or reported not in ACTIVE or not can_move(current, reported):
        return None
    return TaskStatus(reported)


def reported_progress(current: int, reported: float) -> int | None:
    """The progress a running task takes from a backend's report (clamped to 0..99), or None
    when that would not move it forward: progress never goes down."""
    progress = max(0, min(RUNNING_PROGRESS_MAX, int(reported)))
    return progress if progress > current else None


def apply_report(task: Any, state: str, progress: float | None, now: int) -> dict[str, Any]:
    """Apply a backend's report (its state, and its progress or None) to a running `task`
    by the two rules above; returns the fields that changed (with `status_updated_at`)."""
    values: dict[str, Any] = {}
    status = reported_status(task.status, state)
    if status is not None:
        values["status"] = task.status = status
    if progress is not None:
        moved = reported_progress(task.progress, progress)
        if moved is not None:
            values["progress"] = task.progress = moved
    if values:
        values["status_updated_at"] = task.status_updated_at = now
    return values


def progress_at_least(column: sa.ColumnElement[Any], new: Any) -> sa.ColumnElement[Any]:
    """The same rule in SQL, for conditional updates racing other writers: the stored
    progress, or `new` when that is higher."""
    return sa.case((column > new, column), else_=new)


@dataclass(frozen=True)
class Ending:
    """How a task ends: its status, the event (task_events kind, webhook `video.<event>`)
    and what happens to its hold."""

    status: TaskStatus
    event: str
    keeps_charge: bool    # settle the delivered price (per overage policy), else release
    loses_to_cancel: bool  # a cancel or delete requested meanwhile wins over this ending

    def charge(self, delivered_price: int) -> int:
        """What the settlement keeps of the hold: the delivered price, or nothing."""
        return delivered_price if self.keeps_charge else 0


COMPLETED_ENDING = Ending(TaskStatus.COMPLETED, "completed", keeps_charge=True,
                          loses_to_cancel=True)
# failed, timed out, cancelled, deleted: the whole hold goes back
FAILED_ENDING = Ending(TaskStatus.FAILED, "failed", keeps_charge=False, loses_to_cancel=False)
ENDINGS: dict[str, Ending] = {e.status: e for e in (COMPLETED_ENDING, FAILED_ENDING)}
