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

GROWTH = 1.5
JITTER = 0.2


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
