"""Fitting a first-frame image to the frame the client asked for.

Providers whose image-to-video output takes the aspect ratio of the image (Kling, Hailuo)
would quietly change the requested size when the reference has another shape. Cropping the
reference to the requested aspect, centred, before it is sent keeps the size the client
asked for (the same cover-crop the sandbox renderer applies to its first frame).
"""

from __future__ import annotations

import io

from ..media.images import decode_image

# Off by less than this fraction of a pixel row: already the right shape, send as it is.
_TOLERANCE = 0.01


def crop_to_aspect(data: bytes, width: int, height: int) -> bytes:
    """`data` centre-cropped to width:height, re-encoded (PNG keeps it lossless); the
    original bytes when the shape already matches."""
    image = decode_image(data)
    target = width / height
    w, h = image.size
    if abs(w / h - target) <= _TOLERANCE * target:
        return data
    if w / h > target:  # too wide: trim the sides
        new_w = max(1, round(h * target))
        left = (w - new_w) // 2
        box = (left, 0, left + new_w, h)
    else:  # too tall: trim top and bottom
        new_h = max(1, round(w / target))
        top = (h - new_h) // 2
        box = (0, top, w, top + new_h)
    out = io.BytesIO()
    image.crop(box).save(out, format="PNG")
    return out.getvalue()

