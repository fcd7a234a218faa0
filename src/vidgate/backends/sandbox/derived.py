"""The sandbox's edits, extensions and character renders (top-level, argument-only
functions, so they run in the render pool like `render_sandbox`).

- An edit restyles the source's own frames (a negative with swapped chroma, plus the prompt
  as a caption): same size, same length, visibly not the source.
- An extension renders the continuation with the source's last frame as its first (the
  renderer's reference-image mode), then joins source and continuation into one MP4.
- A character render uses the character clip's first frame as the reference image.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import av

from ...domain import added_seconds
from ...media.files import SPRITESHEET_NAME, THUMBNAIL_NAME, VIDEO_NAME, StrPath
from ...media.frames import first_frame_png, last_frame_png
from ...media.join import Mp4Writer, copy_media, join
from ...media.previews import make_previews
from ...media.probe import MediaInfo, probe
from .caption import make_caption
from .planes import Planes
from .progress import Progress
from .render import render_sandbox
from .spec import RenderSpec


def render_edit(spec: RenderSpec, source: StrPath, out_dir: StrPath,
                progress_path: StrPath | None = None) -> MediaInfo:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    progress = Progress(progress_path)
    progress.update(0, force=True)
    info = probe(source)
    planes = Planes(info.width, info.height)
    caption = make_caption(spec.prompt, info.width, info.height)

    def restyle(frame: av.VideoFrame, _t: float) -> av.VideoFrame:
        planes.load(frame.reformat(info.width, info.height, "yuv420p"))
        planes.y[:] = 255 - planes.y
        planes.u[:], planes.v[:] = planes.v.copy(), planes.u.copy()
        if caption is not None:
            overlay, x, y = caption
            overlay.apply(planes, x, y)
        return planes.to_frame()

    fps = _rate(source)

    def write(tmp: StrPath) -> None:
        writer = Mp4Writer(tmp, info.width, info.height, fps)
        try:
            copy_media(writer, source, transform=restyle)
        finally:
            writer.close()

    _write_file(out / VIDEO_NAME, write)
    return _finish(out, progress)


def render_extension(spec: RenderSpec, source: StrPath, source_seconds: float,
                     out_dir: StrPath, progress_path: StrPath | None = None) -> MediaInfo:
    """`spec.seconds` is the total; the continuation renders the seconds that are new."""
    out = Path(out_dir)
    info = probe(source)
    more = dataclasses.replace(
        spec, width=info.width, height=info.height,
        seconds=max(1, added_seconds(spec.seconds, source_seconds)),
        fps=round(info.fps) or spec.fps, first_frame=last_frame_png(source))
    part = out / "continuation"
    render_sandbox(more, part, progress_path)  # reports 0..100 for the part that takes time
    progress = Progress(progress_path)
    _write_file(out / VIDEO_NAME, lambda tmp: join(source, part / VIDEO_NAME, tmp))
    return _finish(out, progress)


def render_with_character(spec: RenderSpec, clip: StrPath, out_dir: StrPath,
                          progress_path: StrPath | None = None) -> MediaInfo:
    framed = dataclasses.replace(spec, first_frame=spec.first_frame or first_frame_png(clip))
    return render_sandbox(framed, out_dir, progress_path)


def _rate(path: StrPath) -> Fraction:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return Fraction(stream.average_rate or stream.guessed_rate or 24).limit_denominator(1001)


def _write_file(path: Path, write) -> None:
    """Through a temporary name, so `video.mp4` is never a partial file."""
    tmp = path.with_name(f".{path.name}.partial.mp4")
    write(tmp)
    tmp.replace(path)


def _finish(out: Path, progress: Progress) -> MediaInfo:
    make_previews(out / VIDEO_NAME, out / THUMBNAIL_NAME, out / SPRITESHEET_NAME)
    info = probe(out / VIDEO_NAME)
    progress.update(100, force=True)
    return info
