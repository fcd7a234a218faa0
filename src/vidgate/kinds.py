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
    # Seedance on Volcengine Ark; BytePlus ModelArk is https://ark.ap-southeast.bytepluses.com/api/v3
    "ark": KindDefaults(
        base_url="https://ark.cn-beijing.volces.com/api/v3",
        sizes=("864x496", "752x560", "640x640", "560x752", "496x864", "992x432",
               "1280x720", "1112x834", "960x960", "834x1112", "720x1280", "1470x630",
               "1920x1080", "1664x1248", "1440x1440", "1248x1664", "1080x1920"),
        seconds=tuple(range(4, 13)),
    ),
    # Wan on Model Studio, Singapore; Beijing is https://dashscope.aliyuncs.com/api/v1
    "dashscope": KindDefaults(
        base_url="https://dashscope-intl.aliyuncs.com/api/v1",
        sizes=("832x480", "480x832", "624x624", "1280x720", "720x1280", "960x960",
               "1088x832", "832x1088", "1920x1080", "1080x1920", "1440x1440", "1632x1248",
               "1248x1632"),
        seconds=(5, 10),
    ),
}
