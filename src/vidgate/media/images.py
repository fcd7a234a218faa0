"""Decoding untrusted image bytes (reference images, first frames) to upright RGB."""

from __future__ import annotations

import io

from PIL import Image, ImageOps


def decode_image(data: bytes, max_pixels: int = 40_000_000) -> Image.Image:
    """Decode untrusted image bytes to an upright RGB image.

    The pixel budget is checked from the header, before any pixel data is decoded, so a
    small file cannot balloon into gigabytes of RAM. Raises ValueError for anything that
    is not a decodable image or is larger than ``max_pixels``.
    """
    if not data:
        raise ValueError("image is empty")
    try:
        img = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError as exc:  # beyond Pillow's own hard limit
        raise ValueError(f"image is too large: {exc}") from None
    except Exception as exc:  # Pillow raises many types for malformed input
        raise ValueError(f"could not decode image: {exc}") from exc
    width, height = img.size
    if width * height > max_pixels:
        raise ValueError(
            f"image is too large: {width}x{height} = {width * height} pixels (limit {max_pixels})"
        )
    try:
        img.load()
        return _to_rgb(ImageOps.exif_transpose(img))
    except Exception as exc:
        raise ValueError(f"could not decode image: {exc}") from exc


def _to_rgb(img: Image.Image) -> Image.Image:
    """Flatten transparency onto black (a video has no alpha) and normalise the mode."""
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    return img.convert("RGB")
