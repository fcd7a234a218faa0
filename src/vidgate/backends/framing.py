"""The canonical frame (`WxH`) in the words hosted video APIs use, and a reference image
shaped to that frame.

Hosted models take an aspect ratio and a resolution tier instead of a pixel size, and an
image-to-video model that takes no aspect ratio renders the frame of its input image. So the
reference is cropped to the requested frame before it leaves: the video then has the size
the client asked for instead of the size of whatever picture it sent.
"""

from __future__ import annotations

import io
from math import gcd

from PIL import Image, ImageOps

from ..images import sniff_image


def aspect_ratio(width: int, height: int) -> str:
    """1280x720 -> "16:9", 720x1280 -> "9:16", 1080x1080 -> "1:1"."""
    d = gcd(width, height)
    return f"{width // d}:{height // d}"


def resolution(width: int, height: int) -> str:
    """The tier named by the short side: 1280x720 -> "720p", 1080x1920 -> "1080p"."""
    return f"{min(width, height)}p"


def fit_reference(data: bytes, width: int, height: int) -> bytes:
    """`data` unchanged when its frame already has the requested shape; otherwise the
    centre crop of that shape, in the image's own format (PNG when it cannot be written)."""
    with Image.open(io.BytesIO(data)) as img:
        img = ImageOps.exif_transpose(img)
        if img.width * height == img.height * width:
            return data
        d = gcd(width, height)
        a, b = width // d, height // d
        k = min(img.width // a, img.height // b)
        if k:  # the largest crop of exactly the requested shape
            crop = (a * k, b * k)
        else:  # a picture smaller than the reduced ratio itself: as close as it gets
            scale = min(img.width / width, img.height / height)
            crop = (max(1, round(width * scale)), max(1, round(height * scale)))
        fitted = ImageOps.fit(img, crop, method=Image.Resampling.LANCZOS)
        media_type, _ = sniff_image(data)
        fmt = "JPEG" if media_type == "image/jpeg" else "PNG"
        if fmt == "JPEG" and fitted.mode not in ("RGB", "L"):
            fitted = fitted.convert("RGB")
        out = io.BytesIO()
        fitted.save(out, format=fmt)
        return out.getvalue()
