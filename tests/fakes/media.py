"""The small real MP4 every fake serves, rendered once per test session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vidgate.backends.sandbox.render import render_sandbox
from vidgate.backends.sandbox.spec import RenderSpec
from vidgate.media.files import SPRITESHEET_NAME, THUMBNAIL_NAME, VIDEO_NAME

WIDTH, HEIGHT, SECONDS = 320, 240, 1


@dataclass(frozen=True)
class SampleMedia:
    video: Path
    thumbnail: Path      # WebP, as an OpenAI-style upstream would serve it
    spritesheet: Path    # JPEG


def render_sample(folder: Path) -> SampleMedia:
    if not (folder / VIDEO_NAME).exists():
        spec = RenderSpec(prompt="fake upstream result", width=WIDTH, height=HEIGHT,
                                seconds=SECONDS, fps=12)
        render_sandbox(spec, folder)
    return SampleMedia(folder / VIDEO_NAME, folder / THUMBNAIL_NAME,
                       folder / SPRITESHEET_NAME)


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
