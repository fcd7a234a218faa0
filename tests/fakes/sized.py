"""Real MP4s of a given size and length, for fakes of providers whose output size depends on
the request (Kling's mode and aspect ratio, Hailuo's resolution): the stored file must probe
as exactly what the provider would have made. Encoded once per (width, height, seconds)."""

from __future__ import annotations

import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

FPS = 2  # few frames: only the size and the length matter


class SizedVideos:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()

    def get(self, width: int, height: int, seconds: int) -> Path:
        path = self.folder / f"{width}x{height}-{seconds}s.mp4"
        with self._lock:
            if not path.exists():
                self.folder.mkdir(parents=True, exist_ok=True)
                _encode(path, width, height, seconds)
        return path


def _encode(path: Path, width: int, height: int, seconds: int) -> None:
    partial = path.with_suffix(".partial.mp4")
    with av.open(str(partial), "w") as out:
        stream = out.add_stream("libx264", rate=FPS, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, FPS)
        for i in range(seconds * FPS):
            pixels = np.full((height, width, 3), (40 + 9 * i) % 256, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    partial.replace(path)
