"""The sandbox video's audio track: a soft, seeded chord, made in blocks as frames go by."""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 48_000


class Tone:
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
