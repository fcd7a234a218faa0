"""The background workers' loop: do one round of work, wait a tick (or a wake-up), repeat.

The engine, the webhook sender and the janitor each run one; a failed round is logged and
the next one tries again, so a database hiccup never kills a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable


class Loop:
    def __init__(self, round_: Callable[[], Awaitable[object]], interval: float,
                 log: logging.Logger, failure: str) -> None:
        self.round = round_
        self.interval = interval
        self._log = log
        self._failure = failure  # logged with the traceback of a failed round
        self._wake = asyncio.Event()
        self.stopping = False
        self.last_round_at = time.monotonic()  # readiness: is the loop still turning?

    def wake(self) -> None:
        """Start the next round now instead of at the end of the tick."""
        self._wake.set()

    def age(self) -> float:
        """Seconds since the last round started."""
        return time.monotonic() - self.last_round_at

    def stop(self) -> None:
        self.stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Rounds until `stop()`; a round running when it is called is finished first."""
        while not self.stopping:
            self.last_round_at = time.monotonic()
            try:
                await self.round()
            except Exception:
                self._log.exception(self._failure)
            if self.stopping:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
