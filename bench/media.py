"""The media files the fake upstreams serve: a small real MP4 with its previews, and the same
MP4 padded to a given size for the download phase."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

VIDEO, THUMBNAIL, SPRITESHEET = "video.mp4", "thumbnail.webp", "spritesheet.jpg"


@dataclass(frozen=True)
class Sample:
    folder: Path
    video: Path
    thumbnail: Path
    spritesheet: Path


def small_sample(folder: Path) -> Sample:
    """A 1-second 320x240 MP4 rendered by vidgate's own sandbox, with WebP + JPEG previews.

    Real files, so vidgate's finalizer probes them like any upstream result; the previews are
    served too, so the finalizer keeps them instead of decoding the video (as it would for a
    real OpenAI-style upstream)."""
    # the harness runs in the project venv
    from vidgate.backends.sandbox.render import render_sandbox
    from vidgate.backends.sandbox.spec import RenderSpec
    from vidgate.media.files import SPRITESHEET_NAME, THUMBNAIL_NAME, VIDEO_NAME

    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / VIDEO_NAME).exists():
        spec = RenderSpec(prompt="bench upstream result", width=320, height=240,
                                seconds=1, fps=12)
        render_sandbox(spec, folder)
    return Sample(folder, folder / VIDEO_NAME, folder / THUMBNAIL_NAME,
                  folder / SPRITESHEET_NAME)


def padded_mp4(source: Path, dest: Path, total_bytes: int) -> Path:
    """A playable MP4 of exactly `total_bytes`: `source` plus a top-level `free` box.

    Demuxers skip `free` boxes, so vidgate probes it as the small video while every download
    moves all `total_bytes`. Written in 1 MiB chunks; never held in memory."""
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
