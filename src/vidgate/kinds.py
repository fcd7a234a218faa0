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
    # Veo 3.x: every size and length pair it renders; 1080p (8 s only) needs its own channel
    "gemini": KindDefaults(base_url="https://generativelanguage.googleapis.com/v1beta",
                           sizes=("1280x720", "720x1280"), seconds=(4, 6, 8)),
    # base_url depends on the channel's location: see vertex_base_url
    "vertex": KindDefaults(sizes=("1280x720", "720x1280"), seconds=(4, 6, 8)),
    # Veo 3 on fal (fal-ai/veo3, fal-ai/veo3/image-to-video): 16:9 and 9:16 at 720p/1080p,
    # 4, 6 or 8 seconds. Other apps: the channel lists what its app renders (docs/backends.md).
    "fal": KindDefaults(base_url="https://queue.fal.run",
                        sizes=("1280x720", "720x1280", "1920x1080", "1080x1920"),
                        seconds=(4, 6, 8)),
    # Veo 3 on Replicate (google/veo-3, veo-3-fast, veo-3.1): 16:9 and 9:16 at 720p/1080p;
    # 8 seconds is the length every one of them takes (its default).
    "replicate": KindDefaults(base_url="https://api.replicate.com/v1",
                              sizes=("1280x720", "720x1280", "1920x1080", "1080x1920"),
                              seconds=(8,)),
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


def vertex_base_url(location: str) -> str:
    """Vertex AI's endpoint for a location: regional hosts are `{location}-aiplatform`,
    the `global` location has the bare host."""
    host = "aiplatform.googleapis.com" if location == "global" \
        else f"{location}-aiplatform.googleapis.com"
    return f"https://{host}/v1"
