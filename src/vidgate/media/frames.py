"""Single frames out of a video: the first (a character's look) and the last (where an
extension starts), as PNG bytes the renderers and image-to-video upstreams take."""

from __future__ import annotations

import io

from .files import StrPath
from .probe import open_video


def first_frame_png(path: StrPath) -> bytes:
    container, stream = open_video(path)
    with container:
        for frame in container.decode(stream):
            return _png(frame)
    raise ValueError("the video has no frames")


def last_frame_png(path: StrPath) -> bytes:
    """Decodes the whole stream: seeking near the end lands on a keyframe, and the frames
    after it still have to be decoded, so for the short clips handled here this is as fast."""
    container, stream = open_video(path)
    last = None
    with container:
        for frame in container.decode(stream):
            last = frame
    if last is None:
        raise ValueError("the video has no frames")
    return _png(last)


def _png(frame) -> bytes:
    buf = io.BytesIO()
    frame.to_image().save(buf, format="PNG")
    return buf.getvalue()
