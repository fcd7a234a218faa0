"""What every phase needs: the run's sizes (full or quick), the cores, the tools, the
shared fake upstream, and where to write."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

SERVER_CORE = 0   # the server under test
LOAD_CORE = 1     # load generator, fake upstreams, the harness itself


@dataclass(frozen=True)
class Sizes:
    """How long and how much: the full run's numbers, or tiny ones for the smoke test."""

    seconds: float            # one wrk measurement
    concurrency: tuple[int, ...]
    seed_tasks: int           # completed tasks that status reads cycle through
    download_connections: int
    big_bytes: int            # the download phase's video
    engine_tasks: int
    engine_delay: tuple[float, float]   # upstream completes each job after U(a, b) seconds
    engine_poll_min: float    # the channel's first poll interval...
    engine_poll: float        # ...backing off to this one: the interval a long job sees
    create_concurrency: int   # clients creating the engine phase's tasks
    settle_seconds: float     # idle time before reading idle RSS
    # the engine-postgres phase: the engine phase at scale, on PostgreSQL with workers
    scale_tasks: int = 100_000
    # every job still running when the last is created (~930 s at ~108 creates/s)
    scale_delay: tuple[float, float] = (1150.0, 1500.0)
    # polls back off to 120 s: at 20 s, 100,000 jobs would be 5,000 polls/s
    scale_poll: tuple[float, float] = (2.0, 120.0)
    scale_workers: int = 2
    # the SQLite engine it is checked against: this many tasks on the same schedule (delays
    # and poll backoff), so that following a task costs the same polls on both
    scale_compare_tasks: int = 10_000

    def at_scale(self, tasks: int | None = None) -> Sizes:
        """The engine phase's sizes on the engine-postgres phase's schedule, for its
        `scale_tasks` or `tasks`."""
        return dataclasses.replace(
            self, engine_tasks=tasks or self.scale_tasks, engine_delay=self.scale_delay,
            engine_poll_min=self.scale_poll[0], engine_poll=self.scale_poll[1])

    @staticmethod
    def full() -> Sizes:
        return Sizes(seconds=10, concurrency=(1, 32), seed_tasks=64, download_connections=4,
                     big_bytes=50 * 1024 * 1024, engine_tasks=10_000,
                     engine_delay=(120.0, 240.0), engine_poll_min=2.0, engine_poll=20.0,
                     create_concurrency=32,
                     settle_seconds=3.0)

    @staticmethod
    def quick() -> Sizes:
        return Sizes(seconds=1, concurrency=(1, 32), seed_tasks=4, download_connections=2,
                     big_bytes=8 * 1024 * 1024, engine_tasks=40, engine_delay=(0.3, 1.2),
                     engine_poll_min=0.2, engine_poll=0.5, create_concurrency=8,
                     settle_seconds=0.5, scale_tasks=40, scale_delay=(0.3, 1.2),
                     scale_poll=(0.2, 0.5), scale_compare_tasks=20)


@dataclass
class Context:
    sizes: Sizes
    out_dir: Path             # results.json, RESULTS.md, chart, logs
    tools: dict[str, str | None]
    quick: bool
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def work(self) -> Path:
        return self.out_dir / "work"

    def tool(self, name: str) -> str:
        path = self.tools.get(name)
        if path is None:
            raise KeyError(name)
        return path
