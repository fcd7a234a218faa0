"""The small real MP4 every fake serves, rendered once per test session."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from vidgate import media

WIDTH, HEIGHT, SECONDS = 320, 240, 1


@dataclass(frozen=True)
class SampleMedia:
    video: Path
    thumbnail: Path      # WebP, as an OpenAI-style upstream would serve it
    spritesheet: Path    # JPEG


def render_sample(folder: Path) -> SampleMedia:
    if not (folder / media.VIDEO_NAME).exists():
        spec = media.RenderSpec(prompt="fake upstream result", width=WIDTH, height=HEIGHT,
                                seconds=SECONDS, fps=12)
        media.render_sandbox(spec, folder)
    return SampleMedia(folder / media.VIDEO_NAME, folder / media.THUMBNAIL_NAME,
                       folder / media.SPRITESHEET_NAME)


def pad_mp4(source: Path, dest: Path, total_bytes: int) -> Path:
    """A playable MP4 of about `total_bytes`: the real file plus a top-level `free` box.

    Demuxers skip `free` boxes, so probing and previews still work, while the download is
    as big as we need. Written in chunks, never held in memory.
    """
    data = source.read_bytes()
    pad = max(8, total_bytes - len(data))
    with open(dest, "wb") as out:
        out.write(data)
        out.write(pad.to_bytes(4, "big") + b"free")
        zeros = bytes(1024 * 1024)
        left = pad - 8
        while left > 0:
            n = min(left, len(zeros))
            out.write(zeros[:n])
            left -= n
    return dest


class Clips:
    """Real MP4s of any frame and length, rendered once each (at a low frame rate, so a
    1080p clip costs about a second) and shared by every fake that serves them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._made: dict[tuple[int, int, int], Path] = {}
        self._lock = threading.Lock()

    def get(self, width: int, height: int, seconds: int) -> Path:
        key = (width, height, seconds)
        with self._lock:
            if key not in self._made:
                out = self.folder / f"{width}x{height}-{seconds}s"
                spec = media.RenderSpec(prompt=f"fake {width}x{height} {seconds}s",
                                        width=width, height=height, seconds=seconds, fps=4)
                media.render_sandbox(spec, out)
                self._made[key] = out / media.VIDEO_NAME
            return self._made[key]
