"""The small interface every upstream kind implements, and the errors it may raise.

Backends know nothing of the database: the engine hands them a `Job`, they answer with a
`PollResult` or files on disk. What a backend raises tells the engine what to do next, so the
three error types below are the whole contract between them:

- `SubmitRefused`: the upstream did not take the job (connection error, 5xx, 429, bad key).
  Nothing exists upstream, so the engine may try the next channel.
- `TransientError`: something went wrong while polling or downloading an accepted job.
  The job still exists; the engine retries later on the same channel and never fails the task
  for it (only the deadline can).
- `UpstreamFailed`: the upstream said, explicitly, that this job failed or is refused
  (content policy, invalid request). The task fails with `code`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..catalog import VideoRequest
from ..domain import UPSTREAM_ERROR

UNKNOWN = "unknown"  # an upstream answer we could not map: keep polling


class BackendError(Exception):
    """Base of the errors a backend raises on purpose; `retry_after` is the upstream's hint."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class SubmitRefused(BackendError):
    """Refused before acceptance: no upstream job exists, so another channel may be tried.

    `answer_lost`: the request went out but its answer never came back (a timeout, a dropped
    connection), so the upstream may have made the job after all."""

    def __init__(self, message: str, *, retry_after: float | None = None,
                 answer_lost: bool = False) -> None:
        super().__init__(message, retry_after=retry_after)
        self.answer_lost = answer_lost


class TransientError(BackendError):
    """A failed poll or download of an accepted job: retry later, never fail the task."""


class ResultUnavailable(TransientError):
    """The result could not be downloaded in a way that may be permanent (403/404/410, not a
    video). Retried a few times, since URLs flap and a fresh poll may give a fresh URL, then
    the task fails with `upstream_error`."""


class CallbackRefused(BackendError):
    """A provider callback that did not pass the provider's own signature check (or that
    the kind cannot take): it changes nothing. `status` is what the caller is answered."""

    def __init__(self, message: str, *, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


class UpstreamFailed(BackendError):
    """The upstream explicitly failed or refused the job; the task fails with `code`."""

    def __init__(self, message: str, *, code: str = UPSTREAM_ERROR) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class SourceVideo:
    """The video an edit or an extension starts from (derived.py), on local disk."""

    operation: str                      # domain.EDIT | domain.EXTEND
    path: Path
    seconds: float                      # its length, as probed
    channel: str | None = None          # the channel that made it, when it is a task's
    upstream_id: str | None = None      # its id on that channel


@dataclass(frozen=True)
class Character:
    """A character the prompt names (store/characters.py), its clip on local disk."""

    name: str
    clip: Path
    upstreams: dict[str, str]           # channel name -> the character's id there


@dataclass(frozen=True)
class Job:
    task_id: str
    request: VideoRequest
    work_dir: Path                      # scratch folder owned by this task
    reference: bytes | None = None      # reference image bytes, already validated
    upstream_id: str | None = None
    remix_of: str | None = None         # upstream id of the source video, on this channel
    result_url: str | None = None       # where the last poll said the video is
    thumbnail_url: str | None = None    # the upstream's own thumbnail, if it gave one
    callback_url: str | None = None     # where the provider may call back (submit only)
    source: SourceVideo | None = None   # an edit's or an extension's source
    character: Character | None = None


@dataclass(frozen=True)
class PollResult:
    state: str                          # queued | in_progress | completed | failed | unknown
    progress: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    retry_after: float | None = None
    result_url: str | None = None
    thumbnail_url: str | None = None


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
    # True when the backend can remix an upstream video by id (`Job.remix_of`).
    supports_remix: bool
    # True when a submit carries a key derived from the task (the gateway protocols'
    # `Idempotency-Key`), so that a repeated submit on the same channel finds the job the
    # first one made instead of making a second.
    idempotent_submit: bool
    # What it does beyond a plain create: domain.EDIT, EXTEND, CHARACTERS (the router
    # sends such jobs only to backends that list them).
    operations: frozenset[str]

    def free_slots(self) -> int | None:
        """Jobs this process could start right now; None when the limit is elsewhere (an
        upstream's own queue). Lets the engine leave work it cannot start yet to others."""
        ...

    async def submit(self, job: Job) -> str: ...

    async def poll(self, job: Job) -> PollResult: ...

    async def fetch(self, job: Job) -> ResultFiles: ...

    async def cancel(self, job: Job) -> None: ...

    async def close(self) -> None: ...


class CallbackKind(Protocol):
    """What a backend adds to take provider callbacks (engine/callbacks.py): it declares
    `supports_callbacks`, sends `Job.callback_url` with its submit, and checks and reads
    what the provider posts back. A kind without a signature scheme verifies nothing and
    returns None; vidgate's own signed URL still guards it."""

    supports_callbacks: bool

    async def verify_callback(self, headers: Mapping[str, str], body: bytes,
                              now: float) -> str | None:
        """Check the provider's signature (and its timestamp's freshness); returns the
        delivery's id for replay detection (None: the provider names none). Raises
        CallbackRefused."""
        ...

    def read_callback(self, body: bytes) -> PollResult:
        """The verified body as a poll's answer would have been read."""
        ...
