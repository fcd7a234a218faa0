"""Provider callbacks: the per-task URL vidgate hands a provider, and what happens when the
provider calls it.

A provider callback is one more way into the engine, never a second writer beside it. A
verified callback that says the job ended makes the task due now, ahead of routine polls
(and wakes the engine in this process); the engine's normal step then polls, downloads and
finishes it under its lease, exactly as after a timely poll. Polling goes on at the
channel's slow `callback_poll_seconds` as the fallback, so a callback that never comes costs
a delay, never a task.

The URL is `{VIDGATE_PUBLIC_URL}/callbacks/{channel}/{task_id}?sig=<hmac>`: unguessable
without the server's secret, bound to one channel and one task, and free of the upstream's
id. A callback passes three checks before it changes anything: vidgate's signature, the
provider's own signature and timestamp (the kind's `verify_callback`), and a replay check
on the delivery id the provider names.
"""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ..backends.base import CallbackRefused
from ..domain import COMPLETED, FAILED
from ..signing import callback_signature
from ..store.leases import Leases
from .router import Channel, Router

REPLAY_WINDOW_SECONDS = 600  # longer than the providers' five-minute timestamp tolerance
REPLAY_MEMORY = 100_000


def uses_callbacks(channel: Channel, public_url: str | None) -> bool:
    """The one rule for whether a channel's tasks are called back (and polled slowly)."""
    return bool(public_url) and channel.config.callbacks \
        and getattr(channel.backend, "supports_callbacks", False)


@dataclass(frozen=True)
class CallbackUrls:
    public_url: str | None
    secret: bytes

    def url_for(self, channel: Channel, task_id: str) -> str | None:
        if not uses_callbacks(channel, self.public_url):
            return None
        sig = callback_signature(self.secret, channel.name, task_id)
        base = (self.public_url or "").rstrip("/")
        return f"{base}/callbacks/{quote(channel.name, safe='')}/{quote(task_id, safe='')}" \
               f"?sig={sig}"

    def signed(self, channel: str, task_id: str, sig: str) -> bool:
        expected = callback_signature(self.secret, channel, task_id)
        return hmac.compare_digest(expected.encode(), sig.encode("utf-8", "replace"))


@dataclass(frozen=True)
class Outcome:
    status: int
    body: dict[str, Any]


class SeenDeliveries:
    """Delivery ids seen in the last ten minutes, per channel (a bounded memory). Older
    ones need no memory: the providers' timestamps refuse them."""

    def __init__(self) -> None:
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()

    def first_time(self, channel: str, delivery: str, now: float) -> bool:
        while self._seen and (next(iter(self._seen.values())) < now - REPLAY_WINDOW_SECONDS
                              or len(self._seen) > REPLAY_MEMORY):
            self._seen.popitem(last=False)
        key = (channel, delivery)
        if key in self._seen:
            return False
        self._seen[key] = now
        return True


class CallbackIntake:
    """What `POST /callbacks/{channel}/{task_id}` does (api/callbacks.py is its route)."""

    def __init__(self, urls: CallbackUrls, router: Router, leases: Leases,
                 wake: Callable[[], None] | None = None) -> None:
        self.urls = urls
        self.router = router
        self.leases = leases
        self.wake = wake
        self.seen = SeenDeliveries()

    async def receive(self, channel_name: str, task_id: str, sig: str,
                      headers: Mapping[str, str], body: bytes) -> Outcome:
        channel = self.router.get(channel_name)
        if not sig or not self.urls.signed(channel_name, task_id, sig) or channel is None \
                or not uses_callbacks(channel, self.urls.public_url):
            return _refused(403, "This callback URL is not valid.")
        now = time.time()
        try:
            delivery = await channel.backend.verify_callback(headers, body, now)
        except CallbackRefused as exc:
            return _refused(exc.status, f"The provider's signature was refused: {exc}.")
        if delivery is not None and not self.seen.first_time(channel_name, delivery, now):
            return _refused(409, "This callback was delivered already.")
        result = channel.backend.read_callback(body)
        due = False
        if result.state in (COMPLETED, FAILED):
            due = await self.leases.make_due(task_id, channel_name)
            if due and self.wake is not None:
                self.wake()
        return Outcome(200, {"received": True, "state": result.state, "task_due": due})


def _refused(status: int, message: str) -> Outcome:
    code = {401: "invalid_signature", 403: "forbidden", 409: "duplicate_callback"}.get(
        status, "callback_unavailable")
    return Outcome(status, {"error": {"message": message, "type": "invalid_request_error",
                                      "param": None, "code": code}})
