"""Provider tables that a kind's defaults (kinds.py) and its adapter both read: the canonical
sizes and lengths a provider produces, and the provider parameters that produce each one.

Data only, importing nothing of vidgate's, so the channel loader can offer exactly what an
adapter can map without importing the adapter (which would import the channel loader back).
"""

from __future__ import annotations

# Seedance 1.5 pro and 2.0 on Ark: what each `resolution` and `ratio` render (the models'
# width x height table); a canonical size maps onto the pair that produces exactly it.
ARK_SIZES: dict[str, tuple[str, str]] = {
    "864x496": ("480p", "16:9"), "752x560": ("480p", "4:3"), "640x640": ("480p", "1:1"),
    "560x752": ("480p", "3:4"), "496x864": ("480p", "9:16"), "992x432": ("480p", "21:9"),
    "1280x720": ("720p", "16:9"), "1112x834": ("720p", "4:3"), "960x960": ("720p", "1:1"),
    "834x1112": ("720p", "3:4"), "720x1280": ("720p", "9:16"), "1470x630": ("720p", "21:9"),
    "1920x1080": ("1080p", "16:9"), "1664x1248": ("1080p", "4:3"),
    "1440x1440": ("1080p", "1:1"), "1248x1664": ("1080p", "3:4"),
    "1080x1920": ("1080p", "9:16"),
}

# Luma: canonical size -> (aspect_ratio, resolution). Only the sizes whose pixels are certain:
# the 16:9 and 9:16 frames of the 540p, 720p and 1080p tiers. Other ratios (1:1, 4:3,
# 21:9...) and the 4k tier have no published pixel size, so vidgate does not offer them.
LUMA_SIZES: dict[str, tuple[str, str]] = {
    "960x540": ("16:9", "540p"), "540x960": ("9:16", "540p"),
    "1280x720": ("16:9", "720p"), "720x1280": ("9:16", "720p"),
    "1920x1080": ("16:9", "1080p"), "1080x1920": ("9:16", "1080p"),
}
LUMA_SECONDS = (5, 9)  # `duration` "5s" / "9s"

# Wan on DashScope: the text-to-video size table, by resolution tier (the i2v `resolution`).
DASHSCOPE_TIERS: dict[str, str] = {
    **dict.fromkeys(("832x480", "480x832", "624x624"), "480P"),
    **dict.fromkeys(("1280x720", "720x1280", "960x960", "1088x832", "832x1088"), "720P"),
    **dict.fromkeys(("1920x1080", "1080x1920", "1440x1440", "1632x1248", "1248x1632"),
                    "1080P"),
}

# MiniMax Hailuo: the `resolution` each canonical size asks for, and the lengths it allows
# (768P is 6 or 10 s, 1080P is 6 s only).
MINIMAX_RESOLUTIONS: dict[str, str] = {"1366x768": "768P", "1920x1080": "1080P"}
MINIMAX_SECONDS: dict[str, tuple[int, ...]] = {"1366x768": (6, 10), "1920x1080": (6,)}

# Kling: what each mode produces, in the order of KLING_RATIOS (720p in `std`, 1080p in `pro`).
KLING_RATIOS = ("16:9", "9:16", "1:1")
KLING_SIZES: dict[str, tuple[str, ...]] = {
    "std": ("1280x720", "720x1280", "720x720"),
    "pro": ("1920x1080", "1080x1920", "1080x1080"),
}
