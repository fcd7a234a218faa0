"""What the sandbox renders, and the one source of its randomness."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np


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


def spec_rng(spec: RenderSpec) -> np.random.Generator:
    """All randomness comes from (prompt, seed), so the same spec renders the same video."""
    key = f"{spec.seed}\x00{spec.prompt}".encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(key, digest_size=16, person=b"vidgate-sandbox").digest()
    return np.random.default_rng(int.from_bytes(digest, "big"))
