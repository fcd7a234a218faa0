"""yuv420p frames as numpy planes, and sprites blended onto them with integer maths.

Frames are synthesised directly as BT.709 limited-range yuv420p planes, which is what the
encoder wants anyway, so no per-frame colour conversion is needed on the procedural path.
"""

from __future__ import annotations

import av
import numpy as np

# BT.709 luma coefficients; frames are tagged accordingly so decoders convert back exactly.
_KR, _KB = 0.2126, 0.0722
_KG = 1.0 - _KR - _KB
BT709 = 1  # AVCOL_SPC/PRI/TRC_BT709 all share the value 1
RANGE_MPEG = 1  # AVCOL_RANGE_MPEG, i.e. limited "tv" range


def rgb_to_yuv(rgb: np.ndarray) -> np.ndarray:
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


class Planes:
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
        tag_bt709(frame)
        return frame

    def load(self, frame: av.VideoFrame) -> None:
        self.buf[:] = frame.to_ndarray().reshape(-1)


def tag_bt709(obj: av.VideoFrame | av.video.codeccontext.VideoCodecContext) -> None:
    """Label colour metadata so players convert back to RGB with the matrix used here."""
    obj.colorspace = BT709
    obj.color_primaries = BT709
    obj.color_trc = BT709
    obj.color_range = RANGE_MPEG


class Overlay:
    """A premultiplied straight-alpha sprite in yuv420p, blended with uint16 integer maths.

    out = (P * (256 - A) + premult) >> 8 stays below 65536 because it is a convex
    combination of 8-bit values scaled by 256, so no widening beyond uint16 is needed.
    """

    def __init__(self, rgb: np.ndarray, alpha: np.ndarray) -> None:
        """rgb: (h, w, 3) 0..255, alpha: (h, w) 0..1; h and w must be even."""
        yuv = rgb_to_yuv(rgb)
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

    def apply(self, planes: Planes, x: int, y: int, strength: int = 256) -> None:
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
