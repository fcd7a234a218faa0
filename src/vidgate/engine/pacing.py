"""When to look at a task again: per-task backoff with jitter, bounded by the channel.

Polling every task every two seconds forever wastes the upstream's patience; waiting 30 s
for the first look makes short jobs feel slow. So each task starts near the channel's
minimum interval and backs off towards its maximum, with jitter so thousands of tasks
created together do not poll in lock-step. Jitter only ever shortens a delay, so the
channel's maximum is a true bound on how late a finished job is noticed. An upstream's
Retry-After always wins when it asks for more time.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from .callbacks import uses_callbacks

if TYPE_CHECKING:
    from ..catalog import VideoRequest
    from ..domain import Task
    from .router import Channel, Router

GROWTH = 1.5
JITTER = 0.2
# Bounds for retrying a step that crashed (a bug, a DB hiccup): not a channel's business.
ERROR_RETRY = (1.0, 30.0)


def backoff(attempt: int, low: float, high: float) -> float:
    """Delay before look number `attempt` (1-based): low, low*1.5, ... up to high."""
    return min(high, low * GROWTH ** max(0, min(attempt - 1, 60)))


def with_jitter(delay: float, rng: random.Random | None = None) -> float:
    """Spread over the last JITTER share below the delay: (1 - JITTER) * delay .. delay."""
    return delay * (1 - (rng or random).uniform(0, JITTER))


def next_delay(attempt: int, low: float, high: float, retry_after: float | None = None) -> float:
    delay = with_jitter(backoff(attempt, low, high))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def poll_delay(task: Task, channel: Channel, public_url: str | None,
               retry_after: float | None = None, *, waiting: bool = False) -> float:
    """When to look at a task bound to `channel` again. `waiting`: the job is not done
    upstream yet. Then, on a channel that is called back, polling is only the fallback for a
    lost callback; after a failed poll or download the usual pace applies, since no further
    callback will come."""
    cfg = channel.config
    if waiting and uses_callbacks(channel, public_url):
        return max(with_jitter(cfg.callback_poll_seconds), retry_after or 0.0)
    return next_delay(task.attempts, cfg.poll_min_seconds, cfg.poll_max_seconds, retry_after)


def queue_delay(task: Task, router: Router, request: VideoRequest, hints: list[float]) -> float:
    """No channel took the job now: back off within the bounds of the channels that could
    serve it, and never sooner than the soonest Retry-After they sent."""
    serving = [ch.config for ch in router.channels.values()
               if ch.config.serves(request.model, request.size, request.seconds)]
    low = min((c.poll_min_seconds for c in serving), default=ERROR_RETRY[0])
    high = max((c.poll_max_seconds for c in serving), default=ERROR_RETRY[1])
    return next_delay(task.attempts, low, high, min(hints) if hints else None)
