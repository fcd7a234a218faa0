"""Previews of any video PyAV can read: a WebP thumbnail and a JPEG spritesheet grid.

Used for sandbox renders and for videos mirrored from upstream providers alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image

from .files import StrPath, atomic_write
from .probe import open_video, video_duration

THUMBNAIL_MAX = 640  # longest side of thumbnail.webp
TILE_MAX = 160  # longest side of one spritesheet tile
SPRITE_COLUMNS = 5
SEEK_GAP = 2.0  # seconds: only seek when the next preview frame is further ahead than this


def make_previews(video_path: StrPath, thumbnail_path: StrPath, spritesheet_path: StrPath) -> None:
    """Write a WebP thumbnail and a JPEG spritesheet grid for any video PyAV can read.

    Both are written atomically, so a reader never sees a partial preview.
    """
    container, stream = open_video(video_path)
    with container:
        stream.thread_type = "AUTO"
        duration = video_duration(container, stream)
        rows = min(5, max(2, round(duration / 4)))
        count = rows * SPRITE_COLUMNS
        if stream.frames:
            count = max(1, min(count, stream.frames))
        sprite_times = [(k + 0.5) * duration / count for k in range(count)]
        thumb_time = duration / 3
        times = sorted({*sprite_times, thumb_time})

        tiles: dict[float, Image.Image] = {}
        thumbnail: Image.Image | None = None
        tile_size: tuple[int, int] | None = None
        for t, frame in zip(times, _frames_at(container, stream, times), strict=True):
            rotation = frame.rotation if frame.rotation in (90, -90, 180, -180, 270) else 0
            display = _display_size(stream, rotation)
            tile_size = tile_size or _fit_box(display, TILE_MAX)
            if t in sprite_times:
                tiles[t] = _picture(frame, tile_size, rotation)
            if t == thumb_time:
                thumbnail = _picture(frame, _fit_box(display, THUMBNAIL_MAX), rotation)

    assert thumbnail is not None and tile_size is not None
    tw, th = tile_size
    sheet_rows = math.ceil(count / SPRITE_COLUMNS)
    columns = min(count, SPRITE_COLUMNS)
    sheet = Image.new("RGB", (tw * columns, th * sheet_rows))
    for k, t in enumerate(sprite_times):
        tile = tiles[t]
        if tile.size != (tw, th):
            tile = tile.resize((tw, th), Image.Resampling.BILINEAR)
        sheet.paste(tile, ((k % SPRITE_COLUMNS) * tw, (k // SPRITE_COLUMNS) * th))

    atomic_write(
        Path(thumbnail_path),
        lambda f: thumbnail.save(f, format="WEBP", quality=80, method=4),
    )
    atomic_write(
        Path(spritesheet_path),
        lambda f: sheet.save(f, format="JPEG", quality=80, optimize=True),
    )


def _decode(container: av.container.InputContainer, stream: av.VideoStream) -> Iterator:
    """Decode one stream, skipping packets the decoder rejects (mirrored files can be
    slightly corrupt, and a preview is better than none)."""
    for packet in container.demux(stream):
        try:
            yield from packet.decode()
        except av.InvalidDataError:
            continue


def _frames_at(
    container: av.container.InputContainer, stream: av.VideoStream, times: list[float]
) -> Iterator[av.VideoFrame]:
    """Yield one frame per target time (seconds from stream start, ascending).

    Seeks to the keyframe before a target only when it is far ahead, and otherwise keeps
    decoding forward; frames are dropped as soon as they are passed over, so memory stays
    flat however long the video is. Near the end the last decoded frame is reused.
    """
    tb = stream.time_base or Fraction(1, av.time_base)
    start = float(stream.start_time * tb) if stream.start_time is not None else 0.0
    frames: Iterator[av.VideoFrame] | None = None
    last: av.VideoFrame | None = None
    last_t = -math.inf
    exhausted = False
    half_frame = 0.5 / float(stream.average_rate or 25)
    for target in times:
        if not exhausted and (frames is None or target - last_t > SEEK_GAP):
            try:
                container.seek(int((target + start) / tb), stream=stream, backward=True)
                frames = _decode(container, stream)
            except av.FFmpegError:  # unseekable input: just keep reading forward
                if frames is None:
                    frames = _decode(container, stream)
        while not exhausted and last_t < target - half_frame:
            assert frames is not None
            frame = next(frames, None)
            if frame is None:
                exhausted = True
                break
            last = frame
            last_t = frame.time - start if frame.time is not None else last_t + 2 * half_frame
        if last is None:
            raise ValueError("video has no decodable frames")
        yield last


def _display_size(stream: av.VideoStream, rotation: int) -> tuple[float, float]:
    """Width/height as shown to a viewer: sample aspect ratio and rotation applied."""
    w, h = float(stream.codec_context.width), float(stream.codec_context.height)
    sar = stream.sample_aspect_ratio
    if sar and sar > 0:
        w *= float(sar)
    return (h, w) if abs(rotation) % 180 == 90 else (w, h)


def _picture(frame: av.VideoFrame, size: tuple[int, int], rotation: int) -> Image.Image:
    """Frame scaled straight from YUV by swscale, then rotated upright."""
    w, h = size
    if abs(rotation) % 180 == 90:
        w, h = h, w
    img = frame.to_image(width=w, height=h, interpolation="AREA")
    turn = {
        90: Image.Transpose.ROTATE_90,
        -90: Image.Transpose.ROTATE_270,
        270: Image.Transpose.ROTATE_270,
        180: Image.Transpose.ROTATE_180,
        -180: Image.Transpose.ROTATE_180,
    }.get(rotation)
    return img.transpose(turn) if turn is not None else img


def _fit_box(size: tuple[float, float], limit: int) -> tuple[int, int]:
    w, h = size
    scale = min(1.0, limit / max(w, h))
    return max(2, round(w * scale)), max(2, round(h * scale))
