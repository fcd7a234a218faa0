"""Real MP4s of a requested size and length, for fakes of providers whose answer must match
what was asked (a 1280:720, 5 s request gets a 1280x720, 5 s file). Each is rendered once,
at 2 frames per second so that even 1080p stays cheap, and shared by every fake."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from vidgate import media

FPS = 2


@dataclass
class Clips:
    folder: Path
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, width: int, height: int, seconds: int) -> Path:
        """The clip's path, rendering it on first use (blocking: call it in a thread)."""
        dest = self.folder / f"{width}x{height}-{seconds}s"
        with self._lock:
            if not (dest / media.VIDEO_NAME).exists():
                spec = media.RenderSpec(prompt=f"fake {width}x{height} {seconds}s",
                                        width=width, height=height, seconds=seconds, fps=FPS)
                media.render_sandbox(spec, dest)
        return dest / media.VIDEO_NAME


@dataclass
class Hit:
    """One request as a fake saw it: enough to say which key went to which host, and when."""

    method: str
    path: str
    authorization: str | None
    at: float = field(default_factory=time.monotonic)


class Log:
    """Every request a fake server received (the FaultMiddleware `record` callback)."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self._lock = threading.Lock()

    def __call__(self, method: str, path: str, auth: str | None) -> None:
        with self._lock:
            self.hits.append(Hit(method, path, auth))

    def authorizations(self) -> set[str | None]:
        with self._lock:
            return {h.authorization for h in self.hits}

    def matching(self, method: str, prefix: str) -> list[Hit]:
        with self._lock:
            return [h for h in self.hits if h.method == method and h.path.startswith(prefix)]
