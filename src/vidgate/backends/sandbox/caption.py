"""The prompt drawn once as a caption: wrapped text on a translucent band, as an overlay."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .planes import Overlay


def _clean_text(text: str) -> str:
    text = text.encode("utf-8", "replace").decode("utf-8", "replace")
    text = "".join(ch if ch.isprintable() else " " for ch in text[:4000])
    return " ".join(text.split())


def _load_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except Exception:  # Pillow without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


def _fit(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, max_w: float) -> int:
    """Longest prefix length of ``text`` that fits ``max_w`` (at least 1), by bisection."""
    lo, hi = 1, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if font.getlength(text[:mid]) <= max_w:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _wrap(
    text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, max_w: float, max_lines: int
) -> list[str]:
    """Greedy word wrap; over-long words are split; overflow ends in an ellipsis."""
    lines: list[str] = []
    current = ""
    truncated = False
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if font.getlength(candidate) <= max_w:
            current = candidate
            continue
        if current:
            lines.append(current)
        while font.getlength(word) > max_w:
            cut = _fit(word, font, max_w)
            lines.append(word[:cut])
            word = word[cut:]
        current = word
        if len(lines) >= max_lines:
            truncated = True
            break
    if current and not truncated:
        lines.append(current)
    if len(lines) > max_lines:
        truncated = True
    lines = lines[:max_lines]
    if truncated and lines:
        last = lines[-1]
        while last and font.getlength(last + "…") > max_w:
            last = last[:-1]
        lines[-1] = last.rstrip() + "…"
    return lines


def make_caption(prompt: str, width: int, height: int) -> tuple[Overlay, int, int] | None:
    """Render the prompt once as a bottom caption on a translucent rounded band.

    Returns the overlay and its (even) top-left position, or None for an empty prompt.
    """
    text = _clean_text(prompt)
    if not text:
        return None
    size = max(10, round(min(width, height) / 28))
    font = _load_font(size)
    pad = max(2, size // 2)
    max_lines = 3 if height >= 200 else 2
    lines = _wrap(text, font, width * 0.9 - 2 * pad, max_lines)
    if not lines:
        return None
    ascent, descent = font.getmetrics() if hasattr(font, "getmetrics") else (size, 0)
    line_h = ascent + descent + max(1, size // 6)
    text_w = max(font.getlength(line) for line in lines)
    box_w = min(width, int(math.ceil(text_w)) + 2 * pad + 2)
    box_h = min(height, line_h * len(lines) + 2 * pad)
    box_w += box_w % 2
    box_h += box_h % 2
    box_w, box_h = min(box_w, width), min(box_h, height)

    img = Image.new("RGBA", (box_w, box_h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle((0, 0, box_w - 1, box_h - 1), radius=pad, fill=(0, 0, 0, 120))
    stroke = max(1, size // 14)
    for i, line in enumerate(lines):
        x = (box_w - font.getlength(line)) / 2
        draw.text(
            (x, pad + i * line_h),
            line,
            font=font,
            fill=(255, 255, 255, 255),
            stroke_width=stroke,
            stroke_fill=(0, 0, 0, 255),
        )
    rgba = np.asarray(img, dtype=np.float64)
    overlay = Overlay(rgba[..., :3], rgba[..., 3] / 255.0)
    x = (width - box_w) // 2
    y = height - box_h - max(2, round(height * 0.05))
    return overlay, max(0, x), max(0, y)
