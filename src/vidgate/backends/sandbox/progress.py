"""The progress file of one render: written throttled and atomically by the render process,
read by the backend in the server process."""

from __future__ import annotations

import time
from pathlib import Path

from ...media.files import StrPath, atomic_write

PROGRESS_INTERVAL = 0.25  # seconds between progress-file writes


class Progress:
    """Throttled, atomic, monotonic percent writer (no-op without a path)."""

    def __init__(self, path: StrPath | None) -> None:
        self.path = Path(path) if path is not None else None
        self.last = -1
        self.stamp = 0.0
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def update(self, percent: int, force: bool = False) -> None:
        if self.path is None or percent <= self.last:
            return
        now = time.monotonic()
        if not force and now - self.stamp < PROGRESS_INTERVAL:
            return
        atomic_write(self.path, lambda f: f.write(f"{percent}\n".encode("ascii")))
        self.last, self.stamp = percent, now


def read_progress(progress_path: StrPath) -> int | None:
    """Percent written by render_sandbox, or None if the file is missing or unreadable."""
    try:
        text = Path(progress_path).read_text(encoding="ascii")
        value = int(text.strip())
    except (OSError, ValueError):
        return None
    return value if 0 <= value <= 100 else None
