"""What a finished video is: size, duration, frame rate and audio, read from its container."""

from __future__ import annotations

import os
from dataclasses import dataclass

import av

from .files import StrPath


@dataclass(frozen=True)
class MediaInfo:
    """Facts about a finished video, as read back from the container."""

    width: int
    height: int
    duration: float  # seconds, from the container/stream
    fps: float
    has_audio: bool


def probe(path: StrPath) -> MediaInfo:
    """Read size, duration, frame rate and audio presence from the container headers."""
    container, stream = open_video(path)
    with container:
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        return MediaInfo(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            duration=video_duration(container, stream),
            fps=float(rate) if rate else 0.0,
            has_audio=bool(container.streams.audio),
        )


def open_video(path: StrPath) -> tuple[av.container.InputContainer, av.VideoStream]:
    """The container and its first video stream; ValueError if there is no video to read."""
    try:
        container = av.open(os.fspath(path), mode="r")
    except FileNotFoundError:
        raise
    except av.FFmpegError as exc:
        raise ValueError(f"cannot open media {os.fspath(path)!r}: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise ValueError(f"no video stream in {os.fspath(path)!r}")
    return container, container.streams.video[0]


def video_duration(container: av.container.InputContainer, stream: av.VideoStream) -> float:
    """Seconds, from the best source the file has: the stream, the container, or frames/rate."""
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    rate = stream.average_rate or stream.guessed_rate
    if stream.frames and rate:
        return float(stream.frames / rate)
    return 0.0
