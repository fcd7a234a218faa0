"""Public models and the rules that turn a loosely spelled request into a canonical one.

Route families only pick fields out of their bodies (`RawVideoRequest`); every rule about
what is allowed lives here, so the three families cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError, invalid

STANDARD_SIZES = ("1280x720", "720x1280", "1920x1080", "1080x1920", "1080x1080", "720x720")
PRO_EXTRA_SIZES = ("1792x1024", "1024x1792")
SECONDS = (4, 5, 8, 10, 12, 15, 16, 20)
ASPECT_RATIOS = {"16:9": "1280x720", "9:16": "720x1280", "1:1": "720x720"}
MAX_PROMPT_CHARS = 32000
P720 = 1280 * 720  # pixels of 720p: the first price tier


@dataclass(frozen=True)
class PriceTier:
    """Per-second price in micro-USD for sizes of at most `max_pixels` pixels."""

    max_pixels: int
    micro_usd_per_second: int


@dataclass(frozen=True)
class Model:
    name: str
    sizes: tuple[str, ...]
    seconds: tuple[int, ...]
    prices: tuple[PriceTier, ...]

    def price_per_second(self, width: int, height: int) -> int:
        pixels = width * height
        for tier in self.prices:
            if pixels <= tier.max_pixels:
                return tier.micro_usd_per_second
        return self.prices[-1].micro_usd_per_second


DEFAULT_MODELS: dict[str, Model] = {
    "sora-2": Model(
        "sora-2",
        STANDARD_SIZES,
        SECONDS,
        (PriceTier(P720, 100_000), PriceTier(10**12, 300_000)),
    ),
    "sora-2-pro": Model(
        "sora-2-pro",
        STANDARD_SIZES + PRO_EXTRA_SIZES,
        SECONDS,
        (PriceTier(P720, 300_000), PriceTier(1792 * 1024, 500_000),
         PriceTier(10**12, 700_000)),
    ),
}

DEFAULT_MODEL = "sora-2"
DEFAULT_SIZE = "1280x720"
DEFAULT_SECONDS = 4


@dataclass(frozen=True)
class ImageInput:
    """A reference image as the client gave it: uploaded bytes or a URL (http(s) or data:)."""

    data: bytes | None = None
    url: str | None = None
    param: str = "input_reference"


@dataclass
class RawVideoRequest:
    """Fields as a family found them, before any rule is applied."""

    prompt: Any = None
    model: Any = None
    size: Any = None
    width: Any = None
    height: Any = None
    seconds: Any = None
    seconds_param: str = "seconds"
    aspect_ratio: Any = None
    image: ImageInput | None = None
    metadata: Any = None
    n: Any = None
    seed: Any = None


@dataclass(frozen=True)
class VideoRequest:
    """A validated request: what the engine and backends work from."""

    model: str
    prompt: str
    width: int
    height: int
    seconds: int
    metadata: dict = field(default_factory=dict)
    seed: int = 0

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


class Catalog:
    def __init__(self, models: dict[str, Model] | None = None) -> None:
        self.models = dict(models or DEFAULT_MODELS)

    def get(self, name: str, *, not_found_status: int = 400) -> Model:
        model = self.models.get(name)
        if model is None:
            raise ApiError(
                not_found_status,
                "model_not_found",
                f"The model '{name}' does not exist. Available: {', '.join(sorted(self.models))}.",
                param="model",
                type="invalid_request_error",
            )
        return model

    def normalize(
        self,
        raw: RawVideoRequest,
        *,
        default_size: str = DEFAULT_SIZE,
        model_not_found_status: int = 400,
    ) -> VideoRequest:
        prompt = _prompt(raw.prompt)
        model_name = DEFAULT_MODEL if raw.model in (None, "") else raw.model
        if not isinstance(model_name, str):
            raise invalid("'model' must be a string.", param="model")
        model = self.get(model_name, not_found_status=model_not_found_status)
        if raw.n not in (None, "", 1, "1"):
            raise invalid("Only n=1 is supported.", param="n")
        size = _size(raw, default_size)
        if size not in model.sizes:
            raise invalid(
                f"Invalid size '{size}' for {model.name}. Supported: {', '.join(model.sizes)}.",
                param="size",
                code="invalid_size",
            )
        seconds = _seconds(raw.seconds, raw.seconds_param, model)
        width, height = (int(v) for v in size.split("x"))
        metadata = raw.metadata if raw.metadata is not None else {}
        if not isinstance(metadata, dict):
            raise invalid("'metadata' must be an object.", param="metadata")
        return VideoRequest(
            model=model.name,
            prompt=prompt,
            width=width,
            height=height,
            seconds=seconds,
            metadata=metadata,
            seed=_seed(raw.seed),
        )

    def price(self, req: VideoRequest) -> int:
        """What the requested length costs, in micro-USD (the hold on a limited key)."""
        return self.delivered_price(req.model, req.width, req.height, req.seconds)

    def delivered_price(self, model: str, width: int, height: int, seconds: float) -> int:
        """What a delivered video costs: whole seconds, rounded to nearest, at least one."""
        billable = max(1, round(seconds))
        return self.models[model].price_per_second(width, height) * billable


def _prompt(value: Any) -> str:
    if value is None:
        raise invalid("'prompt' is required.", param="prompt")
    if not isinstance(value, str):
        raise invalid("'prompt' must be a string.", param="prompt")
    prompt = value.strip()
    if not prompt:
        raise invalid("'prompt' must not be empty.", param="prompt")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise invalid(f"'prompt' is longer than {MAX_PROMPT_CHARS} characters.", param="prompt")
    return prompt


def _size(raw: RawVideoRequest, default: str) -> str:
    ratio_size = None
    if raw.aspect_ratio not in (None, ""):
        ratio_size = ASPECT_RATIOS.get(str(raw.aspect_ratio).strip())
        if ratio_size is None:
            raise invalid(
                f"Invalid aspect_ratio '{raw.aspect_ratio}'. Supported: "
                f"{', '.join(ASPECT_RATIOS)}.",
                param="aspect_ratio",
                code="invalid_size",
            )
    size = None
    if raw.size not in (None, ""):
        size = str(raw.size).strip().lower().replace("*", "x")
        param = "size"
    elif raw.width not in (None, "") or raw.height not in (None, ""):
        size = f"{raw.width}x{raw.height}"
        param = "width"
    if size is None:
        return ratio_size or default
    parts = size.split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise invalid(f"Invalid size '{size}'; expected WIDTHxHEIGHT.", param=param,
                      code="invalid_size")
    size = f"{int(parts[0])}x{int(parts[1])}"
    if ratio_size is not None and _ratio(size) != _ratio(ratio_size):
        raise invalid(
            f"size '{size}' contradicts aspect_ratio '{raw.aspect_ratio}'.",
            param="aspect_ratio",
            code="invalid_size",
        )
    return size


def _ratio(size: str) -> float:
    w, h = (int(v) for v in size.split("x"))
    return round(w / h, 2) if h else 0.0


def _seconds(value: Any, param: str, model: Model) -> int:
    if value in (None, ""):
        return DEFAULT_SECONDS
    if isinstance(value, bool):
        seconds = None
    elif isinstance(value, int):
        seconds = value
    elif isinstance(value, float) and value.is_integer():
        seconds = int(value)
    elif isinstance(value, str) and value.strip().removesuffix("s").isdigit():
        seconds = int(value.strip().removesuffix("s"))
    else:
        seconds = None
    if seconds not in model.seconds:
        raise invalid(
            f"Invalid {param} '{value}' for {model.name}. Supported: "
            f"{', '.join(str(s) for s in model.seconds)}.",
            param=param,
            code="invalid_duration",
        )
    return seconds


def _seed(value: Any) -> int:
    if value in (None, ""):
        return 0
    try:
        return int(value) & 0x7FFFFFFF
    except (TypeError, ValueError) as exc:
        raise invalid("'seed' must be an integer.", param="seed") from exc
