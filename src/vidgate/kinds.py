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
}


def vertex_base_url(location: str) -> str:
    """Vertex AI's endpoint for a location: regional hosts are `{location}-aiplatform`,
    the `global` location has the bare host."""
    host = "aiplatform.googleapis.com" if location == "global" \
        else f"{location}-aiplatform.googleapis.com"
    return f"https://{host}/v1"
