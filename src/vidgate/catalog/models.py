"""Public models: what each accepts and costs, and the two built in (`sora-2`, `sora-2-pro`)."""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd

from .prices import PriceTier, per_second

STANDARD_SIZES = ("1280x720", "720x1280", "1920x1080", "1080x1920", "1080x1080", "720x720")
PRO_EXTRA_SIZES = ("1792x1024", "1024x1792")
SECONDS = (4, 5, 8, 10, 12, 15, 16, 20)
DEFAULT_SECONDS = 4  # the built-ins' length when a request gives none (spec section 3)
# What the built-ins' `aspect_ratio` values give (spec section 3). The catalog derives the
# same answers from any model's sizes; the unified backend reads this to name a size's ratio.
ASPECT_RATIOS = {"16:9": "1280x720", "9:16": "720x1280", "1:1": "720x720"}
SORA_2_CREATED = 1759190400  # 2025-09-30, the day OpenAI announced Sora 2


@dataclass(frozen=True)
class Model:
    """One public model. `default_size` None means "the route family's default" (the
    built-ins keep OpenAI's 720x1280 on /v1/videos and 1280x720 elsewhere); a declared model
    always has one."""

    name: str
    sizes: tuple[str, ...]
    seconds: tuple[int, ...]
    prices: tuple[PriceTier, ...]
    default_size: str | None = None
    default_seconds: int = DEFAULT_SECONDS
    aliases: tuple[str, ...] = ()
    created: int = SORA_2_CREATED
    owned_by: str = "vidgate"

    def price_per_second(self, width: int, height: int) -> int:
        return per_second(self.prices, width, height)

    def size_for_ratio(self, ratio: tuple[int, int]) -> str | None:
        """The smallest of this model's sizes with that aspect ratio (the cheapest tier; for
        the built-ins it gives 16:9 -> 1280x720, 9:16 -> 720x1280, 1:1 -> 720x720)."""
        matching = [s for s in self.sizes if same_ratio(parse_size(s), ratio)]
        return min(matching, key=_pixels, default=None)

    def ratios(self) -> list[str]:
        """The aspect ratios this model has a size for, as `W:H` (for error messages)."""
        seen: list[str] = []
        for size in self.sizes:
            w, h = parse_size(size)
            d = gcd(w, h)
            label = f"{w // d}:{h // d}"
            if label not in seen:
                seen.append(label)
        return seen


def parse_size(size: str) -> tuple[int, int]:
    w, h = size.split("x")
    return int(w), int(h)


def same_ratio(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Equal within 1%: 848x480 counts as 16:9, 1792x1024 (7:4) does not."""
    ra, rb = a[0] / a[1], b[0] / b[1]
    return abs(ra - rb) <= 0.01 * rb


def _pixels(size: str) -> int:
    w, h = parse_size(size)
    return w * h


BUILTIN_MODELS: tuple[Model, ...] = (
    Model("sora-2", STANDARD_SIZES, SECONDS,
          (PriceTier("1280x720", 100_000), PriceTier(None, 300_000))),
    Model("sora-2-pro", STANDARD_SIZES + PRO_EXTRA_SIZES, SECONDS,
          (PriceTier("1280x720", 300_000), PriceTier("1792x1024", 500_000),
           PriceTier(None, 700_000))),
)
DEFAULT_MODELS: dict[str, Model] = {m.name: m for m in BUILTIN_MODELS}
