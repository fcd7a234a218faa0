"""A small real result for fake upstreams to serve (tests/fakes and the bench harness).

One sandbox render with its previews, so vidgate's finalizer probes and keeps the files like
any upstream result, and the same MP4 padded to any size for download tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...media.files import SPRITESHEET_NAME, THUMBNAIL_NAME, VIDEO_NAME
from .render import render_sandbox
from .spec import RenderSpec

WIDTH, HEIGHT, SECONDS, FPS = 320, 240, 1, 12


@dataclass(frozen=True)
class SampleMedia:
    folder: Path
    video: Path
    thumbnail: Path  # WebP, as an OpenAI-style upstream would serve it
    spritesheet: Path  # JPEG


def render_sample(folder: Path, prompt: str) -> SampleMedia:
    """A 1-second 320x240 MP4 with WebP + JPEG previews in ``folder``.

    Rendered only if ``folder`` does not hold it yet, so a harness can keep it across runs.
    The prompt is drawn into the picture, so each caller's files differ.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / VIDEO_NAME).exists():
        spec = RenderSpec(prompt=prompt, width=WIDTH, height=HEIGHT, seconds=SECONDS, fps=FPS)
        render_sandbox(spec, folder)
    return SampleMedia(folder, folder / VIDEO_NAME, folder / THUMBNAIL_NAME,
                       folder / SPRITESHEET_NAME)


def padded_mp4(source: Path, dest: Path, total_bytes: int) -> Path:
    """A playable MP4 of exactly ``total_bytes``: ``source`` plus a top-level ``free`` box.

    Demuxers skip ``free`` boxes, so vidgate probes it as the small video while every download
    moves all ``total_bytes``. Written in 1 MiB chunks; never held in memory. An existing
    ``dest`` of the right size is reused.
    """
    if dest.exists() and dest.stat().st_size == total_bytes:
        return dest
    data = source.read_bytes()
    pad = total_bytes - len(data)
    if pad < 8:
        raise ValueError("total_bytes must exceed the source by at least 8 bytes")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as out:
        out.write(data)
        out.write(pad.to_bytes(4, "big") + b"free")
        chunk = bytes(1024 * 1024)
        left = pad - 8
        while left > 0:
            n = min(left, len(chunk))
            out.write(chunk[:n])
            left -= n
    return dest
