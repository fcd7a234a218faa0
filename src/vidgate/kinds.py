"""What each channel kind brings by default: the provider's public endpoint and the sizes and
lengths its adapter can produce.

Pure data, read by the channel loader (channels.py) to fill what a channel leaves out, so an
operator writes only a name, a kind, a key and models, and the router never sends a request
the provider would reject or quietly change. A channel's own `base_url`, `sizes` or
`seconds` always win.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KindDefaults:
    base_url: str | None = None             # None: the operator must give one
    sizes: tuple[str, ...] | None = None    # None: whatever the upstream accepts
    seconds: tuple[int, ...] | None = None
    # False when the provider cannot take a reference image from vidgate (Luma wants a
    # public URL): the router keeps image-to-video requests away from such channels.
    image_input: bool = True
    # True when the adapter can map only the default sizes and lengths (a fixed table of
    # provider parameters): a channel may narrow them, never widen them.
    fixed: bool = False


KINDS: dict[str, KindDefaults] = {
    "sandbox": KindDefaults(),
    "openai": KindDefaults(),
    "generations": KindDefaults(),
    "unified": KindDefaults(),
    # runwayml SDK: base URL api.dev.runwayml.com + /v1 paths; `ratio` is the output's pixel
    # size (gen4_turbo / gen4.5 image-to-video list); gen4_turbo takes 5 or 10 seconds.
    "runway": KindDefaults(
        base_url="https://api.dev.runwayml.com/v1",
        sizes=("1280x720", "720x1280", "1104x832", "832x1104", "960x960", "1584x672"),
        seconds=(5, 10),
    ),
    # lumaai SDK: base URL; sizes are the 16:9 / 9:16 frames of 540p, 720p and 1080p
    # (backends/luma.py SIZES), `duration` "5s" or "9s"; keyframes only as public URLs.
    "luma": KindDefaults(
        base_url="https://api.lumalabs.ai/dream-machine/v1",
        sizes=("960x540", "540x960", "1280x720", "720x1280", "1920x1080", "1080x1920"),
        seconds=(5, 9),
        image_input=False,
        fixed=True,
    ),
}
