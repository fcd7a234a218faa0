"""What each channel kind brings by default: the provider's public endpoint and the sizes and
lengths its adapter can produce, and the checks a channel of that kind must pass.

Read by the channel loader (channels.py) to fill what a channel leaves out, so an operator
writes only a name, a kind, a key and models, and the router never sends a request the
provider would reject or quietly change. A channel's own `base_url`, `sizes` or `seconds`
always win, within what the provider can make.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .backends.tables import (
    ARK_SIZES,
    DASHSCOPE_TIERS,
    KLING_SIZES,
    LUMA_SECONDS,
    LUMA_SIZES,
    MINIMAX_SECONDS,
)


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
    # Sizes that depend on one of the channel's `extra_fields` (Kling's `mode` picks 720p or
    # 1080p): (field, value when absent, {value: sizes}). A channel's sizes must fit its value.
    sizes_by: tuple[str, str, dict[str, tuple[str, ...]]] | None = None
    # The lengths each size allows, when not every size goes with every length (Hailuo's
    # 1080P is 6 s only). A channel may not offer a size with a length it cannot produce.
    seconds_by_size: dict[str, tuple[int, ...]] | None = None
    # Channel fields this kind cannot work without (Kling signs with a second secret).
    required: tuple[str, ...] = ()

    def default_sizes(self, extra_fields: object) -> tuple[str, ...] | None:
        if self.sizes_by is None:
            return self.sizes
        field, absent, table = self.sizes_by
        value = extra_fields.get(field, absent) if isinstance(extra_fields, dict) else absent
        return table.get(value, self.sizes) if isinstance(value, str) else self.sizes

    def problems(self, channel: Any) -> list[str]:
        """What is wrong with `channel` (a ChannelConfig of this kind) beyond the types, one
        "field '...': why" sentence each; empty when it asks only for what the provider
        produces."""
        extra_fields, metadata_fields = channel.extra_fields, channel.metadata_fields
        sizes, seconds = channel.sizes, channel.seconds
        found = [f"field '{name}': required for this kind" for name in self.required
                 if not getattr(channel, name)]
        if self.sizes_by is not None:
            field, absent, table = self.sizes_by
            value = extra_fields.get(field, absent)
            if not isinstance(value, str) or value not in table:
                found.append(f"field 'extra_fields.{field}': must be one of "
                             f"{', '.join(table)}, not {value!r}")
            elif sizes is not None and (wrong := [s for s in sizes if s not in table[value]]):
                found.append(f"field 'sizes': {', '.join(wrong)} cannot be produced with "
                             f"{field} '{value}' (it makes {', '.join(table[value])})")
            if field in metadata_fields:
                found.append(f"field 'metadata_fields': '{field}' sets the output size, so "
                             f"it is fixed per channel in extra_fields")
        if self.seconds_by_size is not None and sizes is not None:
            for size in sizes:
                allowed = self.seconds_by_size.get(size)
                if allowed is None:
                    found.append(f"field 'sizes': the provider cannot produce {size} "
                                 f"(it makes {', '.join(self.seconds_by_size)})")
                elif seconds is not None and (bad := [s for s in seconds if s not in allowed]):
                    found.append(f"field 'seconds': {size} comes only in "
                                 f"{', '.join(map(str, allowed))} s, not {bad}; put other "
                                 f"lengths on a channel of their own")
        return found


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
        sizes=tuple(LUMA_SIZES),
        seconds=LUMA_SECONDS,
        image_input=False,
        fixed=True,
    ),
    # Kling: 720p in `std` mode, 1080p in `pro` (the docs' own modes); 5 or 10 s.
    "kling": KindDefaults(
        base_url="https://api-singapore.klingai.com",
        sizes=KLING_SIZES["std"], seconds=(5, 10),
        sizes_by=("mode", "std", KLING_SIZES), required=("api_key_env", "secret_key_env"),
        seconds_by_size={size: (5, 10) for sizes in KLING_SIZES.values() for size in sizes},
    ),
    # MiniMax Hailuo: 768P is 1366x768 (6 or 10 s), 1080P is 1920x1080 (6 s only); the
    # default channel offers 768P, a 1080P channel says `sizes: [1920x1080], seconds: [6]`.
    "minimax": KindDefaults(
        base_url="https://api.minimax.io",
        sizes=("1366x768",), seconds=(6, 10),
        seconds_by_size=MINIMAX_SECONDS, required=("api_key_env",),
    ),
    # Seedance on Volcengine Ark; BytePlus ModelArk is https://ark.ap-southeast.bytepluses.com/api/v3
    "ark": KindDefaults(
        base_url="https://ark.cn-beijing.volces.com/api/v3",
        sizes=tuple(ARK_SIZES),
        seconds=tuple(range(4, 13)),
    ),
    # Wan on Model Studio, Singapore; Beijing is https://dashscope.aliyuncs.com/api/v1
    "dashscope": KindDefaults(
        base_url="https://dashscope-intl.aliyuncs.com/api/v1",
        sizes=tuple(DASHSCOPE_TIERS),
        seconds=(5, 10),
    ),
}


def vertex_base_url(location: str) -> str:
    """Vertex AI's endpoint for a location: regional hosts are `{location}-aiplatform`,
    the `global` location has the bare host."""
    host = "aiplatform.googleapis.com" if location == "global" \
        else f"{location}-aiplatform.googleapis.com"
    return f"https://{host}/v1"
