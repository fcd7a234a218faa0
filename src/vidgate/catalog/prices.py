"""What a video costs: per-second prices by size tier, and the billable length.

A tier covers sizes of at most `max_pixels` pixels (so 720x1280 and 1280x720 cost the same);
the last tier covers everything larger. Money is kept in integer micro-USD everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

MICRO = 1_000_000


@dataclass(frozen=True)
class PriceTier:
    """Per-second price in micro-USD for sizes with at most as many pixels as `max_size`
    (None: any size)."""

    max_size: str | None
    micro_usd_per_second: int

    @property
    def max_pixels(self) -> int | None:
        if self.max_size is None:
            return None
        width, height = self.max_size.split("x")
        return int(width) * int(height)


def usd_to_micro(usd: float) -> int:
    return round(usd * MICRO)


def per_second(tiers: tuple[PriceTier, ...], width: int, height: int) -> int:
    """The price per second of the first tier the size fits in."""
    pixels = width * height
    for tier in tiers:
        if tier.max_pixels is None or pixels <= tier.max_pixels:
            return tier.micro_usd_per_second
    return tiers[-1].micro_usd_per_second


def billable_seconds(seconds: float) -> int:
    """Whole seconds, rounded to nearest, at least one: what a delivered video is billed for."""
    return max(1, round(seconds))


def charged_seconds(params: dict, seconds: float) -> float:
    """The seconds a task pays for out of `seconds` (its requested or delivered length): an
    extension pays only for what it added to its source (params["source"], derived.py)."""
    source = params.get("source") or {}
    if source.get("operation") == "extend":
        return seconds - float(source.get("seconds") or 0)
    return seconds
