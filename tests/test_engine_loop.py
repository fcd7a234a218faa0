"""The workers' shared loop (engine/loop.py): rounds every tick, a failed round is logged and
the next one runs, wake() starts a round at once, stop() ends it."""

from __future__ import annotations

import asyncio
import logging

from support import await_for
from vidgate.engine.loop import Loop


async def test_failed_round_is_logged_and_the_loop_goes_on(caplog):
    rounds = []

    async def round_() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise RuntimeError("a database hiccup")

    loop = Loop(round_, 0.01, logging.getLogger("test.loop"), "round failed")
    runner = asyncio.create_task(loop.run())
    with caplog.at_level(logging.ERROR, logger="test.loop"):
        await await_for(lambda: asyncio.sleep(0, len(rounds) >= 3), what="three rounds",
                        timeout=10)
    loop.stop()
    await asyncio.wait_for(runner, 10)
    assert "round failed" in caplog.text and "a database hiccup" in caplog.text


async def test_wake_starts_a_round_before_the_tick_ends():
    rounds: list[float] = []

    async def round_() -> None:
        rounds.append(asyncio.get_running_loop().time())

    loop = Loop(round_, 3600.0, logging.getLogger("test.loop"), "round failed")
    runner = asyncio.create_task(loop.run())
    await await_for(lambda: asyncio.sleep(0, len(rounds) == 1), what="the first round")
    loop.wake()
    await await_for(lambda: asyncio.sleep(0, len(rounds) == 2), what="the woken round",
                    timeout=10)
    loop.stop()  # ends the hour-long wait at once
    await asyncio.wait_for(runner, 10)
    assert len(rounds) == 2
