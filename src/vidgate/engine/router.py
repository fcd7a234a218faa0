"""Choosing a channel for a task: eligibility, priority, weight, caps and health.

The router holds only in-memory state (health, reservations, a recent count of jobs in
flight per channel); the task row is the durable record of which channel a task is bound to.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from dataclasses import dataclass

from ..backends.base import Backend
from ..catalog import DEFAULT_MODELS, VideoRequest
from ..channels import ChannelConfig
from ..observability import metrics


@dataclass
class Breaker:
    """Consecutive refusals open the circuit for `cooldown` seconds; then one trial submit is
    let through (half-open): success closes it, another refusal opens it again."""

    threshold: int
    cooldown: float
    failures: int = 0
    open_until: float = 0.0

    def available(self, now: float) -> bool:
        return self.failures < self.threshold or now >= self.open_until

    def trial(self, now: float) -> None:
        """A submit goes out; while the circuit is half-open, keep others off it meanwhile."""
        if self.failures >= self.threshold:
            self.open_until = now + self.cooldown

    def state(self, now: float) -> int:
        """0 closed, 1 open, 2 half-open (the metrics' encoding)."""
        if self.failures < self.threshold:
            return 0
        return 1 if now < self.open_until else 2

    def success(self) -> None:
        self.failures = 0
        self.open_until = 0.0

    def refusal(self, now: float) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            self.open_until = now + self.cooldown


@dataclass
class Channel:
    config: ChannelConfig
    backend: Backend
    breaker: Breaker
    in_flight: int = 0      # accepted jobs not yet finished (refreshed from the database)
    reserved: int = 0       # submits under way in this process

    @property
    def name(self) -> str:
        return self.config.name

    def room(self) -> int | None:
        """Jobs this channel can take now, from its cap and (for in-process backends such as
        the sandbox) this process's free slots; None when neither limits it."""
        limits = []
        if self.config.max_in_flight is not None:
            limits.append(self.config.max_in_flight - self.in_flight - self.reserved)
        local = self.backend.free_slots()
        if local is not None:
            limits.append(local - self.reserved)
        return max(0, min(limits)) if limits else None

    def has_room(self) -> bool:
        room = self.room()
        return room is None or room > 0


class Router:
    def __init__(self, channels: Iterable[Channel], rng: random.Random | None = None) -> None:
        self.channels = {ch.name: ch for ch in channels}
        self.rng = rng or random.Random()

    @classmethod
    def build(cls, configs: Iterable[ChannelConfig], backends: dict[str, Backend]) -> Router:
        return cls(
            Channel(cfg, backends[cfg.name], Breaker(cfg.failure_threshold, cfg.cooldown_seconds))
            for cfg in configs
        )

    @classmethod
    def serving_everything(cls, backends: dict[str, Backend]) -> Router:
        """Each backend serves every public model: what an engine built without channel
        configuration (tests, embedding) gets."""
        models = {m: m for m in DEFAULT_MODELS}
        return cls.build(
            [ChannelConfig(name=name, kind="sandbox", models=models) for name in backends],
            backends,
        )

    def get(self, name: str | None) -> Channel | None:
        return self.channels.get(name) if name else None

    def can_route(self, request: VideoRequest, image: bool = False,
                  operation: str | None = None) -> bool:
        """Whether any configured channel could ever take this model, size and length (and
        reference image, when `image`; and `operation`, a domain.EDIT/EXTEND/CHARACTERS)."""
        return any(self._serves(ch, request, image, operation) for ch in self.channels.values())

    def can_continue(self, channel: str | None, request: VideoRequest) -> bool:
        """Whether `channel` (an extension's source's) can render its continuation: the
        added seconds as image-to-video from the source's last frame. The way to extend
        where no channel extends natively; vidgate joins the two."""
        found = self.get(channel)
        return found is not None and self._serves(found, request, image=True)

    def order(self, request: VideoRequest, *, only: str | None = None,
              image: bool = False, operation: str | None = None) -> list[Channel]:
        """Channels to try now, best first: highest priority, then weighted-random among
        equals; channels that are full or whose circuit is open are left out."""
        now = time.time()
        eligible = [
            ch for ch in self.channels.values()
            if (only is None or ch.name == only) and self._serves(ch, request, image, operation)
            and ch.has_room() and ch.breaker.available(now)
        ]
        # Efraimidis-Spirakis: sorting by u^(1/w) is a weighted shuffle without replacement.
        keys = {ch.name: (self.rng.random() ** (1.0 / ch.config.weight)
                          if ch.config.weight > 0 else 0.0) for ch in eligible}
        return sorted(eligible, key=lambda ch: (-ch.config.priority, -keys[ch.name]))

    def _serves(self, ch: Channel, request: VideoRequest, image: bool = False,
                operation: str | None = None) -> bool:
        return (ch.config.serves(request.model, request.size, request.seconds, image)
                and (operation is None or operation in getattr(ch.backend, "operations", ())))

    # ---- bookkeeping around one submit ------------------------------------------------

    def reserve(self, ch: Channel) -> bool:
        if not ch.has_room():
            return False
        ch.reserved += 1
        ch.breaker.trial(time.time())
        return True

    def abandon(self, ch: Channel) -> None:
        """The submit was interrupted on our side (shutdown): no verdict on the channel."""
        ch.reserved = max(0, ch.reserved - 1)

    def refused(self, ch: Channel) -> None:
        metrics.channel_submits.labels(ch.name, "refused").inc()
        ch.reserved = max(0, ch.reserved - 1)
        ch.breaker.refusal(time.time())

    def answered(self, ch: Channel, accepted: bool) -> None:
        """The upstream answered the submit (it is healthy); it took the job or judged it."""
        metrics.channel_submits.labels(ch.name, "accepted" if accepted else "failed").inc()
        ch.reserved = max(0, ch.reserved - 1)
        ch.breaker.success()
        if accepted:
            ch.in_flight += 1

    def finished(self, name: str | None) -> None:
        ch = self.get(name)
        if ch is not None:
            ch.in_flight = max(0, ch.in_flight - 1)

    def set_in_flight(self, counts: dict[str, int]) -> None:
        for ch in self.channels.values():
            ch.in_flight = counts.get(ch.name, 0)

    def publish(self) -> None:
        """Set the per-channel gauges (jobs in flight, breaker state); called at scrape."""
        now = time.time()
        for ch in self.channels.values():
            metrics.channel_in_flight.labels(ch.name).set(ch.in_flight)
            metrics.channel_breaker.labels(ch.name).set(ch.breaker.state(now))

    def submit_room(self) -> int | None:
        """How many more jobs the channels could take now; None when unbounded."""
        now = time.time()
        room = 0
        for ch in self.channels.values():
            if not ch.breaker.available(now):
                continue
            ch_room = ch.room()
            if ch_room is None:
                return None
            room += ch_room
        return room
