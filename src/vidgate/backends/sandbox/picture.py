"""The moving picture under the caption: procedural gradients and blobs, or a slow Ken Burns
zoom over a supplied first frame (image-to-video)."""

from __future__ import annotations

import colorsys
import math

import av
import numpy as np
from PIL import Image

from ...media.images import decode_image
from .planes import BT709, RANGE_MPEG, Overlay, Planes, rgb_to_yuv
from .spec import RenderSpec


def make_picture(spec: RenderSpec, rng: np.random.Generator) -> Picture:
    """Ken Burns over ``first_frame`` when one is given, else the procedural picture.

    Decoding ``first_frame`` happens here, eagerly, so a bad image fails before any output
    file is opened.
    """
    if spec.first_frame is not None:
        return KenBurns(spec, rng, decode_image(spec.first_frame))
    return Procedural(spec, rng)


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


def _blob(radius: int, rgb: np.ndarray, strength: float) -> Overlay:
    """A soft disc sprite: alpha falls off smoothly to zero at ``radius``."""
    side = 2 * radius
    yy, xx = np.mgrid[0:side, 0:side]
    d2 = ((xx + 0.5 - radius) ** 2 + (yy + 0.5 - radius) ** 2) / float(radius * radius)
    alpha = np.clip(1.0 - d2, 0.0, 1.0) ** 2 * strength
    return Overlay(np.broadcast_to(rgb, (side, side, 3)), alpha)


class Procedural:
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
        self.blobs: list[tuple[Overlay, np.ndarray]] = []
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
        return rgb_to_yuv(col_rgb), rgb_to_yuv(row_rgb)

    def render(self, planes: Planes, t: float) -> None:
        col, row = self._vectors(t, self.ys, self.xs)
        _outer_add(planes.y, col[:, 0] + 16.0, row[:, 0])
        col, row = self._vectors(t, self.ys_c, self.xs_c)
        _outer_add(planes.u, col[:, 1] + 128.0, row[:, 1])
        _outer_add(planes.v, col[:, 2] + 128.0, row[:, 2])
        for sprite, (fx, px, fy, py) in self.blobs:
            cx = self.w * (0.5 + 0.42 * math.sin(2 * math.pi * (fx * t + px)))
            cy = self.h * (0.5 + 0.38 * math.sin(2 * math.pi * (fy * t + py)))
            sprite.apply(planes, int(cx) - sprite.w // 2, int(cy) - sprite.h // 2)


class KenBurns:
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

    def render(self, planes: Planes, t: float) -> None:
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
            format="yuv420p", dst_colorspace=BT709, dst_color_range=RANGE_MPEG
        )
        planes.load(frame)


Picture = Procedural | KenBurns  # each has render(planes, t): draw the picture at t seconds


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

