"""The task and API-key records, shared by every layer. (A task's states and the moves
between them are in lifecycle.py; the names are repeated here for the layers that only read.)"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from .lifecycle import ACTIVE as ACTIVE  # re-exported
from .lifecycle import TERMINAL, TaskStatus

QUEUED = TaskStatus.QUEUED
IN_PROGRESS = TaskStatus.IN_PROGRESS
COMPLETED = TaskStatus.COMPLETED
FAILED = TaskStatus.FAILED

# Failure reasons a client may see in error.code (spec/api.md section 8).
MODERATION_BLOCKED = "moderation_blocked"
UPSTREAM_ERROR = "upstream_error"
TIMEOUT = "timeout"
CANCELLED = "cancelled"
INVALID_IMAGE = "invalid_image"
INTERNAL_ERROR = "internal_error"

# Operations beyond a plain create that only some channels perform (backend `operations`).
EDIT = "edit"
EXTEND = "extend"
CHARACTERS = "characters"  # a prompt naming a character the key stored


def added_seconds(total: int, source_seconds: float) -> int:
    """What an extension to `total` seconds renders after its source."""
    return total - round(source_seconds)

VARIANTS = ("video", "thumbnail", "spritesheet")
CONTENT_TYPES = {"video": "video/mp4", "thumbnail": "image/webp", "spritesheet": "image/jpeg"}


def new_task_id() -> str:
    return "video_" + secrets.token_hex(16)


@dataclass
class Task:
    id: str
    owner_id: str
    family: str
    model: str
    prompt: str
    width: int
    height: int
    seconds: int
    seed: int
    status: str
    progress: int
    created_at: int
    status_updated_at: int
    deadline_at: float
    params: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    request_hash: str | None = None  # of the request made with idempotency_key
    reference_key: str | None = None
    remixed_from: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    completed_at: int | None = None
    delivered_seconds: float | None = None
    delivered_width: int | None = None
    delivered_height: int | None = None
    video_key: str | None = None
    video_bytes: int | None = None
    thumbnail_key: str | None = None
    spritesheet_key: str | None = None
    assets_expire_at: int | None = None
    backend: str | None = None
    upstream_id: str | None = None
    next_poll_at: float | None = None
    lease_owner: str | None = None
    lease_until: float | None = None
    attempts: int = 0
    cancel_requested: bool = False
    deleted_at: int | None = None
    hold_micro: int = 0
    cost_micro: int | None = None
    seq: int | None = None

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def seconds_out(self) -> int:
        """Length the client sees: the delivered length once known, else the requested one."""
        if self.delivered_seconds is not None:
            return max(1, round(self.delivered_seconds))
        return self.seconds

    def asset_key(self, variant: str) -> str | None:
        if variant not in VARIANTS:
            raise KeyError(variant)
        return getattr(self, f"{variant}_key")

    def assets_available(self, now: float) -> bool:
        return (
            self.status == COMPLETED
            and self.video_key is not None
            and (self.assets_expire_at is None or now < self.assets_expire_at)
        )


@dataclass
class ApiKey:
    """A client's key as stored (never the key itself). A revoked key is still a key: every
    lookup returns it with `revoked_at` set, so operators see it; `usable` is the one answer
    to whether it may authenticate or create anything."""

    id: str
    name: str
    prefix: str
    created_at: int
    revoked_at: int | None
    balance_micro: int | None = None       # None: no limit
    rpm_limit: int | None = None
    max_concurrent: int | None = None
    allowed_models: list[str] | None = None  # None: every model
    webhook_url: str | None = None
    webhook_secret: str | None = None

    @property
    def unlimited(self) -> bool:
        return self.balance_micro is None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def usable(self) -> bool:
        return not self.revoked
