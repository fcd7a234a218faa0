"""How `vidgate generate` shows a task's state and progress while it waits.

On a terminal: a rich progress bar fed by the task's own `progress` and `status`. Elsewhere
(a pipe, a log file, a test): one plain line each time the state or progress changes, such as
`video_0123... in_progress 40%`, which a script can read.
"""

from __future__ import annotations

from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn


class Display(Protocol):
    def update(self, status: str, progress: int) -> None: ...
    def close(self) -> None: ...


class LineDisplay:
    def __init__(self, console: Console, video_id: str) -> None:
        self.console = console
        self.video_id = video_id
        self.last: tuple[str, int] | None = None

    def update(self, status: str, progress: int) -> None:
        if (status, progress) != self.last:
            self.last = (status, progress)
            self.console.print(f"{self.video_id} {status} {progress}%", highlight=False,
                               soft_wrap=True)

    def close(self) -> None:
        pass


class BarDisplay:
    def __init__(self, console: Console, video_id: str) -> None:
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TaskProgressColumn(), TimeElapsedColumn(), console=console)
        self.video_id = video_id
        self.task = self.progress.add_task(f"{video_id} queued", total=100)
        self.progress.start()

    def update(self, status: str, progress: int) -> None:
        self.progress.update(self.task, completed=progress,
                             description=f"{self.video_id} {status}")

    def close(self) -> None:
        self.progress.stop()


def display_for(console: Console, video_id: str) -> Display:
    if console.is_interactive:
        return BarDisplay(console, video_id)
    return LineDisplay(console, video_id)
