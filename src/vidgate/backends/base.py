"""The small interface every upstream kind implements.

Backends know nothing of the database: the engine hands them a `Job`, they answer with a
`PollResult` or files on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..catalog import VideoRequest

UNKNOWN = "unknown"  # an upstream answer we could not map: keep polling


@dataclass(frozen=True)
class Job:
    task_id: str
    request: VideoRequest
    work_dir: Path                      # scratch folder owned by this task
    reference: bytes | None = None      # reference image bytes, already validated
    upstream_id: str | None = None


@dataclass(frozen=True)
class PollResult:
    state: str                          # queued | in_progress | completed | failed | unknown
    progress: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    retry_after: float | None = None


@dataclass(frozen=True)
class ResultFiles:
    video: Path
    thumbnail: Path | None = None
    spritesheet: Path | None = None


class Backend(Protocol):
    name: str
    # A sticky backend runs the job inside this process, so the engine keeps the task's lease
    # for the whole run instead of releasing it between polls.
    sticky: bool
    poll_interval: float

    async def submit(self, job: Job) -> str: ...

    async def poll(self, job: Job) -> PollResult: ...

    async def fetch(self, job: Job) -> ResultFiles: ...

    async def cancel(self, job: Job) -> None: ...

    async def close(self) -> None: ...
