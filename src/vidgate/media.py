"""Video and image toolkit: the offline "sandbox" renderer, probing and previews.

The sandbox backend is a procedural renderer, not a generative model: it exists so the
whole gateway (jobs, storage, downloads, previews) works end to end without a GPU or the
network. Everything here is built on PyAV (FFmpeg), Pillow and numpy.

Frames are synthesised directly as BT.709 limited-range yuv420p planes, which is what the
encoder wants anyway, so no per-frame colour conversion is needed on the procedural path.
"""

from __future__ import annotations

import colorsys
import contextlib
import hashlib
import io
import math
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, TypeVar

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

__all__ = [
    "SPRITESHEET_NAME",
    "THUMBNAIL_NAME",
    "VIDEO_NAME",
    "MediaInfo",
    "RenderSpec",
    "decode_image",
    "make_previews",
    "probe",
    "read_progress",
    "render_sandbox",
]

VIDEO_NAME = "video.mp4"
THUMBNAIL_NAME = "thumbnail.webp"
SPRITESHEET_NAME = "spritesheet.jpg"

StrPath = str | os.PathLike[str]
T = TypeVar("T")

SAMPLE_RATE = 48_000
AUDIO_BITRATE = 128_000
X264_PRESET = "veryfast"
X264_CRF = 23
X264_THREADS = 2  # sliced threads; fixed so the bitstream does not depend on the host
MAX_DIMENSION = 8192
MAX_SECONDS = 3600
MAX_FPS = 120
THUMBNAIL_MAX = 640  # longest side of thumbnail.webp
TILE_MAX = 160  # longest side of one spritesheet tile
SPRITE_COLUMNS = 5
PROGRESS_INTERVAL = 0.25  # seconds between progress-file writes
SEEK_GAP = 2.0  # seconds: only seek when the next preview frame is further ahead than this
_ENCODE_PERCENT = 95  # progress share of the encode; previews take the rest up to 99

# BT.709 luma coefficients; frames are tagged accordingly so decoders convert back exactly.
_KR, _KB = 0.2126, 0.0722
_KG = 1.0 - _KR - _KB
_BT709 = 1  # AVCOL_SPC/PRI/TRC_BT709 all share the value 1
_RANGE_MPEG = 1  # AVCOL_RANGE_MPEG, i.e. limited "tv" range


@dataclass(frozen=True)
class RenderSpec:
    """What the sandbox backend should render; mirrors the fields of a Sora create request."""

    prompt: str
    width: int
    height: int
    seconds: int
    seed: int = 0
    fps: int = 24
    first_frame: bytes | None = None  # encoded image bytes (png/jpeg/webp...), used as frame 0


@dataclass(frozen=True)
class MediaInfo:
    """Facts about a finished video, as read back from the container."""

    width: int
    height: int
    duration: float  # seconds, from the container/stream
    fps: float
    has_audio: bool


# --------------------------------------------------------------------------- images


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


def _cover_source(img: Image.Image, width: int, height: int, max_scale: float) -> Image.Image:
    """Centre-crop ``img`` to the target aspect, keeping at most ``max_scale`` x the target
    resolution so later zoomed-in frames stay sharp without paying for huge resizes."""
    src_w, src_h = img.size
    target = width / height
    if src_w / src_h > target:
        crop_w, crop_h = src_h * target, float(src_h)
    else:
        crop_w, crop_h = float(src_w), src_w / target
    left, top = (src_w - crop_w) / 2, (src_h - crop_h) / 2
    scale = min(crop_w / width, max_scale)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    box = (left, top, left + crop_w, top + crop_h)
    return img.resize(size, Image.Resampling.LANCZOS, box=box)


# --------------------------------------------------------------------------- yuv helpers


def _rgb_to_yuv(rgb: np.ndarray) -> np.ndarray:
    """BT.709 limited range, without the 16/128 offsets (linear part only), float64."""
    rgb = np.asarray(rgb, dtype=np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    luma = _KR * r + _KG * g + _KB * b
    y = luma * (219.0 / 255.0)
    u = (b - luma) / (2.0 * (1.0 - _KB)) * (224.0 / 255.0)
    v = (r - luma) / (2.0 * (1.0 - _KR)) * (224.0 / 255.0)
    return np.stack([y, u, v], axis=-1)


def _pool2(a: np.ndarray) -> np.ndarray:
    """2x2 mean, for deriving chroma-resolution data from luma-resolution data."""
    h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
    a = a[:h, :w].astype(np.float64)
    return (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]) / 4.0


class _Planes:
    """One yuv420p frame as a flat buffer (the layout VideoFrame.from_ndarray wants)."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        n = width * height
        self.buf = np.empty(n * 3 // 2, dtype=np.uint8)
        self.y = self.buf[:n].reshape(height, width)
        self.u = self.buf[n : n * 5 // 4].reshape(height // 2, width // 2)
        self.v = self.buf[n * 5 // 4 :].reshape(height // 2, width // 2)

    def to_frame(self) -> av.VideoFrame:
        frame = av.VideoFrame.from_ndarray(
            self.buf.reshape(self.height * 3 // 2, self.width), format="yuv420p"
        )
        _tag_bt709(frame)
        return frame

    def load(self, frame: av.VideoFrame) -> None:
        self.buf[:] = frame.to_ndarray().reshape(-1)


def _tag_bt709(obj: av.VideoFrame | av.video.codeccontext.VideoCodecContext) -> None:
    obj.colorspace = _BT709
    obj.color_primaries = _BT709
    obj.color_trc = _BT709
    obj.color_range = _RANGE_MPEG


class _Overlay:
    """A premultiplied straight-alpha sprite in yuv420p, blended with uint16 integer maths.

    out = (P * (256 - A) + premult) >> 8 stays below 65536 because it is a convex
    combination of 8-bit values scaled by 256, so no widening beyond uint16 is needed.
    """

    def __init__(self, rgb: np.ndarray, alpha: np.ndarray) -> None:
        """rgb: (h, w, 3) 0..255, alpha: (h, w) 0..1; h and w must be even."""
        yuv = _rgb_to_yuv(rgb)
        yuv[..., 0] += 16.0
        yuv[..., 1:] += 128.0
        a8 = np.clip(np.rint(alpha * 256.0), 0, 256)
        ac = _pool2(a8)
        self.h, self.w = alpha.shape
        self.ay = a8.astype(np.uint16)
        self.py = np.rint(a8 * yuv[..., 0]).astype(np.uint16)
        self.ac = np.rint(ac).astype(np.uint16)
        self.pu = np.rint(_pool2(a8 * yuv[..., 1])).astype(np.uint16)
        self.pv = np.rint(_pool2(a8 * yuv[..., 2])).astype(np.uint16)

    def apply(self, planes: _Planes, x: int, y: int, strength: int = 256) -> None:
        """Blend at luma position (x, y) (rounded down to even), clipped to the frame."""
        x, y = x // 2 * 2, y // 2 * 2
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + self.w, planes.width), min(y + self.h, planes.height)
        if x0 >= x1 or y0 >= y1 or strength <= 0:
            return
        sy, sx = slice(y0 - y, y1 - y), slice(x0 - x, x1 - x)
        cy, cx = slice(sy.start // 2, sy.stop // 2), slice(sx.start // 2, sx.stop // 2)
        _blend(planes.y[y0:y1, x0:x1], self.ay[sy, sx], self.py[sy, sx], strength)
        uy, ux = slice(y0 // 2, y1 // 2), slice(x0 // 2, x1 // 2)
        _blend(planes.u[uy, ux], self.ac[cy, cx], self.pu[cy, cx], strength)
        _blend(planes.v[uy, ux], self.ac[cy, cx], self.pv[cy, cx], strength)


def _blend(dst: np.ndarray, alpha: np.ndarray, premult: np.ndarray, strength: int) -> None:
    if strength < 256:
        alpha = (alpha.astype(np.uint32) * strength >> 8).astype(np.uint16)
        premult = (premult.astype(np.uint32) * strength >> 8).astype(np.uint16)
    out = dst * (256 - alpha)  # uint8 * uint16 -> uint16
    out += premult
    out >>= 8
    dst[...] = out


# --------------------------------------------------------------------------- caption


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


def _caption(prompt: str, width: int, height: int) -> tuple[_Overlay, int, int] | None:
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
    overlay = _Overlay(rgba[..., :3], rgba[..., 3] / 255.0)
    x = (width - box_w) // 2
    y = height - box_h - max(2, round(height * 0.05))
    return overlay, max(0, x), max(0, y)


# --------------------------------------------------------------------------- procedural picture


def _rng(spec: RenderSpec) -> np.random.Generator:
    """All randomness comes from (prompt, seed), so the same spec renders the same video."""
    key = f"{spec.seed}\x00{spec.prompt}".encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(key, digest_size=16, person=b"vidgate-sandbox").digest()
    return np.random.default_rng(int.from_bytes(digest, "big"))


def _palette(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` harmonious RGB colours (0..255) spread around a random base hue."""
    base = rng.random()
    spread = rng.uniform(0.08, 0.35)
    colours = []
    for i in range(n):
        hue = (base + spread * i + rng.uniform(-0.03, 0.03)) % 1.0
        sat = rng.uniform(0.45, 0.9)
        val = rng.uniform(0.6, 1.0)
        colours.append(colorsys.hsv_to_rgb(hue, sat, val))
    return np.asarray(colours) * 255.0


def _outer_add(out: np.ndarray, col: np.ndarray, row: np.ndarray) -> None:
    """out[y, x] = col[y] + row[x] in uint8 with one broadcast add (no per-pixel Python).

    Both parts are shifted so they are non-negative; their sum is a legal video level
    (<= 240) by construction, so the uint8 add cannot wrap.
    """
    shift = float(np.floor(row.min()))
    c = np.clip(np.rint(col + shift), 0, 255).astype(np.uint8)
    r = np.clip(np.rint(row - shift), 0, 255).astype(np.uint8)
    np.add(c[:, None], r[None, :], out=out)


def _blob(radius: int, rgb: np.ndarray, strength: float) -> _Overlay:
    """A soft disc sprite: alpha falls off smoothly to zero at ``radius``."""
    side = 2 * radius
    yy, xx = np.mgrid[0:side, 0:side]
    d2 = ((xx + 0.5 - radius) ** 2 + (yy + 0.5 - radius) ** 2) / float(radius * radius)
    alpha = np.clip(1.0 - d2, 0.0, 1.0) ** 2 * strength
    return _Overlay(np.broadcast_to(rgb, (side, side, 3)), alpha)


class _Procedural:
    """Drifting separable gradients plus soft blobs on Lissajous paths.

    The background is an outer sum of a per-row and a per-column colour vector, which
    costs one uint8 broadcast add per plane; blobs only touch their bounding boxes.
    """

    def __init__(self, spec: RenderSpec, rng: np.random.Generator) -> None:
        w, h = spec.width, spec.height
        self.w, self.h = w, h
        c0, c1, c2, *blob_colours = _palette(rng, 6)
        self.c0, self.c1, self.c2 = c0, c1, c2
        self.ys = (np.arange(h) + 0.5) / h
        self.xs = (np.arange(w) + 0.5) / w
        self.ys_c = (np.arange(h // 2) * 2 + 1.0) / h
        self.xs_c = (np.arange(w // 2) * 2 + 1.0) / w
        self.col_speed = rng.uniform(0.03, 0.1) * rng.choice([-1.0, 1.0])
        self.row_speed = rng.uniform(0.05, 0.15) * rng.choice([-1.0, 1.0])
        self.row_freq = rng.uniform(0.6, 1.6)
        self.col_freq = rng.uniform(0.3, 0.8)
        short = min(w, h)
        self.blobs: list[tuple[_Overlay, np.ndarray]] = []
        for colour in blob_colours:
            radius = max(2, int(short * rng.uniform(0.1, 0.22)))
            sprite = _blob(radius, colour, rng.uniform(0.45, 0.75))
            # Lissajous parameters: frequency (Hz) and phase for x and y, plus amplitude.
            params = np.array(
                [rng.uniform(0.04, 0.18), rng.random(), rng.uniform(0.04, 0.18), rng.random()]
            )
            self.blobs.append((sprite, params))

    def _vectors(self, t: float, ys: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, ...]:
        g = 0.5 + 0.5 * np.sin(2 * np.pi * (ys * self.col_freq + t * self.col_speed))
        col_rgb = (self.c0 + (self.c1 - self.c0) * g[:, None]) * 0.6
        band = 0.5 + 0.5 * np.sin(2 * np.pi * (xs * self.row_freq + t * self.row_speed))
        row_rgb = self.c2 * (0.35 * band[:, None] ** 2)
        return _rgb_to_yuv(col_rgb), _rgb_to_yuv(row_rgb)

    def render(self, planes: _Planes, t: float) -> None:
        col, row = self._vectors(t, self.ys, self.xs)
        _outer_add(planes.y, col[:, 0] + 16.0, row[:, 0])
        col, row = self._vectors(t, self.ys_c, self.xs_c)
        _outer_add(planes.u, col[:, 1] + 128.0, row[:, 1])
        _outer_add(planes.v, col[:, 2] + 128.0, row[:, 2])
        for sprite, (fx, px, fy, py) in self.blobs:
            cx = self.w * (0.5 + 0.42 * math.sin(2 * math.pi * (fx * t + px)))
            cy = self.h * (0.5 + 0.38 * math.sin(2 * math.pi * (fy * t + py)))
            sprite.apply(planes, int(cx) - sprite.w // 2, int(cy) - sprite.h // 2)


class _KenBurns:
    """Image-to-video: slow zoom and pan over the first frame plus a gentle colour drift."""

    def __init__(self, spec: RenderSpec, rng: np.random.Generator, image: Image.Image) -> None:
        self.w, self.h = spec.width, spec.height
        self.zoom = rng.uniform(0.08, 0.18)
        self.src = _cover_source(image, self.w, self.h, max_scale=1.0 + self.zoom)
        angle = rng.uniform(0, 2 * math.pi)
        self.pan = (math.cos(angle), math.sin(angle))
        self.gains = rng.uniform(-0.12, 0.12, size=3)
        self.duration = float(spec.seconds)
        self.first = self.src.resize((self.w, self.h), Image.Resampling.LANCZOS)

    def render(self, planes: _Planes, t: float) -> None:
        if t <= 0:
            img = self.first
        else:
            p = min(1.0, t / self.duration)
            ease = p * p * (3 - 2 * p)
            z = 1.0 + self.zoom * ease
            sw, sh = self.src.size
            cw, ch = sw / z, sh / z
            # Pan towards a random direction by up to the slack the zoom leaves.
            cx = sw / 2 + self.pan[0] * (sw - cw) / 2 * ease
            cy = sh / 2 + self.pan[1] * (sh - ch) / 2 * ease
            box = (cx - cw / 2, cy - ch / 2, cx + cw / 2, cy + ch / 2)
            img = self.src.resize((self.w, self.h), Image.Resampling.BILINEAR, box=box)
            lut = np.arange(256, dtype=np.float64)
            tables = [np.clip(lut * (1.0 + g * ease), 0, 255) for g in self.gains]
            img = img.point(np.rint(np.concatenate(tables)).astype(np.uint8).tolist())
        frame = av.VideoFrame.from_image(img).reformat(
            format="yuv420p", dst_colorspace=_BT709, dst_color_range=_RANGE_MPEG
        )
        planes.load(frame)


# --------------------------------------------------------------------------- audio


class _Tone:
    """A soft pad: root, fifth and octave with slow tremolo, fades at both ends."""

    def __init__(self, rng: np.random.Generator, total: int) -> None:
        semitone = int(rng.choice([0, 2, 4, 7, 9, 12]))
        root = 110.0 * 2 ** (semitone / 12)
        self.freqs = np.array([root, root * 1.5, root * 2.0])
        self.amps = np.array([0.5, 0.25, 0.15]) * 0.25
        self.phases = rng.random(3) * 2 * np.pi
        self.tremolo = rng.uniform(0.15, 0.5)
        self.detune = 1.0 + rng.uniform(0.001, 0.004)
        self.total = total
        self.fade = max(1, min(SAMPLE_RATE // 2, total // 4))

    def block(self, start: int, count: int) -> np.ndarray:
        n = np.arange(start, start + count, dtype=np.int64)
        t = n / SAMPLE_RATE
        env = np.minimum(1.0, np.minimum(n, self.total - n) / self.fade)
        env *= 0.8 + 0.2 * np.sin(2 * np.pi * self.tremolo * t)
        out = np.empty((2, count), dtype=np.float32)
        for ch, ratio in enumerate((1.0, self.detune)):
            phase = 2 * np.pi * np.outer(self.freqs * ratio, t) + self.phases[:, None]
            out[ch] = env * (self.amps @ np.sin(phase))
        return out


# --------------------------------------------------------------------------- progress


class _Progress:
    """Throttled, atomic, monotonic percent writer (no-op without a path)."""

    def __init__(self, path: StrPath | None) -> None:
        self.path = Path(path) if path is not None else None
        self.last = -1
        self.stamp = 0.0
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def update(self, percent: int, force: bool = False) -> None:
        if self.path is None or percent <= self.last:
            return
        now = time.monotonic()
        if not force and now - self.stamp < PROGRESS_INTERVAL:
            return
        _atomic_write(self.path, lambda f: f.write(f"{percent}\n".encode("ascii")))
        self.last, self.stamp = percent, now


def read_progress(progress_path: StrPath) -> int | None:
    """Percent written by render_sandbox, or None if the file is missing or unreadable."""
    try:
        text = Path(progress_path).read_text(encoding="ascii")
        value = int(text.strip())
    except (OSError, ValueError):
        return None
    return value if 0 <= value <= 100 else None


def _atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write via a temp file in the same directory + os.replace, so readers never see a
    partial file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------- render


def _validate(spec: RenderSpec) -> None:
    for name in ("width", "height"):
        value = getattr(spec, name)
        if not isinstance(value, int) or not 2 <= value <= MAX_DIMENSION or value % 2:
            raise ValueError(f"{name} must be an even integer in 2..{MAX_DIMENSION}, got {value!r}")
    if not isinstance(spec.seconds, int) or not 1 <= spec.seconds <= MAX_SECONDS:
        raise ValueError(f"seconds must be an integer in 1..{MAX_SECONDS}, got {spec.seconds!r}")
    if not isinstance(spec.fps, int) or not 1 <= spec.fps <= MAX_FPS:
        raise ValueError(f"fps must be an integer in 1..{MAX_FPS}, got {spec.fps!r}")


def _prefetch(items: Iterator[T], depth: int = 3) -> Iterator[T]:
    """Run a generator in a helper thread, bounded by ``depth`` items.

    Frame synthesis (numpy/Pillow) and x264 both release the GIL, so on two cores this
    roughly overlaps them. Order is preserved, so output stays deterministic.
    """
    q: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(kind: str, value: object) -> bool:
        while not stop.is_set():
            try:
                q.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put("item", item):
                    return
        except BaseException as exc:  # handed to the consumer thread
            put("error", exc)
            return
        put("done", None)

    thread = threading.Thread(target=work, name="vidgate-frames", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "done":
                return
            if kind == "error":
                assert isinstance(value, BaseException)
                raise value
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


def _frames(spec: RenderSpec) -> Iterator[av.VideoFrame]:
    """All video frames of the spec, in order, each a fresh VideoFrame with pts set.

    Set-up (including decoding ``first_frame``) runs eagerly, so bad input fails before
    any output file is opened; only the per-frame work is lazy.
    """
    rng = _rng(spec)
    if spec.first_frame is not None:
        picture: _Procedural | _KenBurns = _KenBurns(spec, rng, decode_image(spec.first_frame))
    else:
        picture = _Procedural(spec, rng)
    caption = _caption(spec.prompt, spec.width, spec.height)
    return _frame_loop(spec, picture, caption)


def _frame_loop(
    spec: RenderSpec,
    picture: _Procedural | _KenBurns,
    caption: tuple[_Overlay, int, int] | None,
) -> Iterator[av.VideoFrame]:
    # The caption fades in over half a second so frame 0 is the clean picture
    # (for image-to-video, exactly the supplied image).
    fade = max(1, spec.fps // 2)
    planes = _Planes(spec.width, spec.height)
    for i in range(spec.seconds * spec.fps):
        picture.render(planes, i / spec.fps)
        if caption is not None and i > 0:
            overlay, x, y = caption
            overlay.apply(planes, x, y, strength=min(256, 256 * i // fade))
        frame = planes.to_frame()
        frame.pts = i
        frame.time_base = Fraction(1, spec.fps)
        yield frame


def _encode(spec: RenderSpec, path: Path, progress: _Progress) -> None:
    total_frames = spec.seconds * spec.fps
    total_samples = spec.seconds * SAMPLE_RATE
    tone = _Tone(_rng(spec), total_samples)
    frames = _frames(spec)
    options = {"movflags": "+faststart"}
    with av.open(str(path), mode="w", format="mp4", options=options) as container:
        video = container.add_stream("libx264", rate=spec.fps)
        video.width, video.height, video.pix_fmt = spec.width, spec.height, "yuv420p"
        ctx = video.codec_context
        ctx.time_base = Fraction(1, spec.fps)
        ctx.gop_size = spec.fps * 2  # a keyframe every 2 s keeps seeking cheap
        # x264 output is reproducible for a *fixed* thread count, so never use "auto"
        # (which would depend on the host's cores); two slices use both cores of a small box.
        ctx.thread_type = "SLICE"
        ctx.thread_count = X264_THREADS
        _tag_bt709(ctx)
        video.options = {
            "preset": X264_PRESET,
            "crf": str(X264_CRF),
            # x264's AVX-512 MB-tree code gave run-to-run different bitstreams for identical
            # input (seen on Zen 4 with this wheel's x264). Without MB-tree the output is
            # byte-identical per host, for ~1.3-2x larger files at the same CRF.
            "x264-params": "mbtree=0",
        }

        audio = container.add_stream("aac", rate=SAMPLE_RATE, layout="stereo")
        audio.bit_rate = AUDIO_BITRATE
        samples_done = 0

        for i, frame in enumerate(_prefetch(frames)):
            container.mux(video.encode(frame))
            target = min(total_samples, (i + 1) * SAMPLE_RATE // spec.fps)
            if target > samples_done:
                block = tone.block(samples_done, target - samples_done)
                aframe = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
                aframe.sample_rate = SAMPLE_RATE
                aframe.pts = samples_done
                aframe.time_base = Fraction(1, SAMPLE_RATE)
                container.mux(audio.encode(aframe))
                samples_done = target
            progress.update(_ENCODE_PERCENT * (i + 1) // total_frames)
        if samples_done < total_samples:  # only reachable if fps does not divide evenly
            block = tone.block(samples_done, total_samples - samples_done)
            aframe = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
            aframe.sample_rate, aframe.pts = SAMPLE_RATE, samples_done
            aframe.time_base = Fraction(1, SAMPLE_RATE)
            container.mux(audio.encode(aframe))
        container.mux(video.encode(None))
        container.mux(audio.encode(None))


def render_sandbox(
    spec: RenderSpec,
    out_dir: StrPath,
    progress_path: StrPath | None = None,
) -> MediaInfo:
    """Render ``spec`` procedurally into ``out_dir`` (video, thumbnail, spritesheet).

    Top-level and argument-only, so it can run in a ProcessPoolExecutor worker. The video
    is written under a temporary name and renamed, so ``video.mp4`` is never partial.
    Progress (0..99 while working, 100 once all three files exist) goes to
    ``progress_path`` if given.
    """
    _validate(spec)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    progress = _Progress(progress_path)
    progress.update(0, force=True)

    video_path = out / VIDEO_NAME
    tmp = out / f".{VIDEO_NAME}.{os.getpid()}.partial"
    try:
        _encode(spec, tmp, progress)
        os.replace(tmp, video_path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    progress.update(_ENCODE_PERCENT + 1, force=True)
    make_previews(video_path, out / THUMBNAIL_NAME, out / SPRITESHEET_NAME)
    info = probe(video_path)
    progress.update(100, force=True)
    return info


# --------------------------------------------------------------------------- probe & previews


def _duration(container: av.container.InputContainer, stream: av.VideoStream) -> float:
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    rate = stream.average_rate or stream.guessed_rate
    if stream.frames and rate:
        return float(stream.frames / rate)
    return 0.0


def _open_video(path: StrPath) -> tuple[av.container.InputContainer, av.VideoStream]:
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


def probe(path: StrPath) -> MediaInfo:
    """Read size, duration, frame rate and audio presence from the container headers."""
    container, stream = _open_video(path)
    with container:
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        return MediaInfo(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            duration=_duration(container, stream),
            fps=float(rate) if rate else 0.0,
            has_audio=bool(container.streams.audio),
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


def make_previews(video_path: StrPath, thumbnail_path: StrPath, spritesheet_path: StrPath) -> None:
    """Write a WebP thumbnail and a JPEG spritesheet grid for any video PyAV can read.

    Used for sandbox renders and for videos mirrored from upstream providers alike.
    """
    container, stream = _open_video(video_path)
    with container:
        stream.thread_type = "AUTO"
        duration = _duration(container, stream)
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

    _atomic_write(
        Path(thumbnail_path),
        lambda f: thumbnail.save(f, format="WEBP", quality=80, method=4),
    )
    _atomic_write(
        Path(spritesheet_path),
        lambda f: sheet.save(f, format="JPEG", quality=80, optimize=True),
    )
