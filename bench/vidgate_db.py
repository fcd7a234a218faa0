"""Read-only looks into a benchmarked vidgate's SQLite database.

The API serves every read from this database, so the moment a `completed` event row is
committed is the moment vidgate reports the task completed. Reading it directly lets the
harness time thousands of completions without adding thousands of status requests to the
load it is measuring."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from .procs import BackgroundSampler


def connect(db_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30,
                           check_same_thread=False)


def unfinished(db_path: Path) -> int:
    with connect(db_path) as conn:
        row = conn.execute("SELECT count(*) FROM tasks WHERE status IN "
                           "('queued', 'in_progress') AND deleted_at IS NULL").fetchone()
    return int(row[0])


def wait_drained(db_path: Path, timeout: float) -> float:
    """Seconds until no task is unfinished (or `timeout` passed; then -1)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if unfinished(db_path) == 0:
            return time.monotonic() - start
        time.sleep(0.2)
    return -1.0


@dataclass
class CompletionWatcher(BackgroundSampler):
    """Records, for each task, the wall-clock time its `completed` event first appeared."""

    db_path: Path
    interval: float = 0.05
    seen: dict[str, float] = field(default_factory=dict)
    _last_event: int = 0

    def _run(self) -> None:
        conn = connect(self.db_path)
        try:
            while not self._stop.is_set():
                rows = conn.execute(
                    "SELECT id, task_id FROM task_events WHERE id > ? AND kind = 'completed' "
                    "ORDER BY id", (self._last_event,)).fetchall()
                now = time.time()
                for event_id, task_id in rows:
                    self.seen.setdefault(task_id, now)
                    self._last_event = max(self._last_event, event_id)
                self._stop.wait(self.interval)
        finally:
            conn.close()
