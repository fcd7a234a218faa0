"""Short-lived signed URLs for finished assets, and the signed URLs providers call back.

An expiry is chosen on a grid anchored at the task's completion time, so every read within the
same half-lifetime gets the very same URL (cacheable, and identical across route families),
and every URL handed out stays valid for at least half the configured lifetime.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass

from .domain import VARIANTS, Task


def signature(secret: bytes, task_id: str, variant: str, exp: int) -> str:
    message = f"{task_id}\n{variant}\n{exp}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def verify(secret: bytes, task_id: str, variant: str, exp: int, sig: str, now: float) -> bool:
    if exp <= now:
        return False
    # as bytes: compare_digest refuses str with non-ASCII characters (a client's sig may have)
    return hmac.compare_digest(signature(secret, task_id, variant, exp).encode(),
                               sig.encode("utf-8", "replace"))


def callback_signature(secret: bytes, channel: str, task_id: str) -> str:
    """The signature in a provider callback URL (engine/callbacks.py). It names the channel
    and the task, never the upstream's id, and has its own first line so it can never pass
    for an asset URL's signature (or the other way round)."""
    message = f"provider-callback\n{channel}\n{task_id}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def url_expiry(completed_at: int, now: float, ttl: int, assets_expire_at: int | None) -> int:
    step = max(1, ttl // 2)
    earliest = now + step
    exp = completed_at + math.ceil(max(0.0, earliest - completed_at) / step) * step
    if assets_expire_at is not None:
        exp = min(exp, assets_expire_at)
    return int(exp)


@dataclass(frozen=True)
class AssetLinks:
    video: str | None
    thumbnail: str | None
    spritesheet: str | None
    expires_at: int | None


NO_LINKS = AssetLinks(None, None, None, None)


class Signer:
    def __init__(self, secret: bytes, ttl_seconds: int) -> None:
        self.secret = secret
        self.ttl = ttl_seconds

    def links(self, task: Task, base_url: str, now: float) -> AssetLinks:
        if not task.assets_available(now):
            return NO_LINKS
        exp = url_expiry(task.completed_at or int(now), now, self.ttl, task.assets_expire_at)
        if exp <= now:
            return NO_LINKS
        urls = {}
        base = base_url.rstrip("/")
        for variant in VARIANTS:
            if task.asset_key(variant) is None:
                urls[variant] = None
                continue
            # exp is an integer and sig hex: nothing to escape (urlencode was a tenth of a
            # status read)
            sig = signature(self.secret, task.id, variant, exp)
            urls[variant] = f"{base}/files/{task.id}/{variant}?exp={exp}&sig={sig}"
        return AssetLinks(urls["video"], urls["thumbnail"], urls["spritesheet"], exp)
