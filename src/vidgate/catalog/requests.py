"""The rules that turn a loosely spelled request into a canonical one, for any public model.

Route families only pick fields out of their bodies (`RawVideoRequest`); every rule about
what is allowed lives here and reads the requested model's own sizes, lengths and defaults,
so the three families cannot drift apart and a declared model is held to what it declares.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import invalid
from .models import Model, parse_size, same_ratio

MAX_PROMPT_CHARS = 32000
MAX_MODEL_CHARS = 200


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


def normalize(
    lookup: Callable[..., Model],
    raw: RawVideoRequest,
    *,
    default_model: str,
    default_size: str,
    model_not_found_status: int = 400,
) -> VideoRequest:
    """Check `raw` against the model `lookup` finds (by name or alias) and fill defaults.

    The request carries the model's canonical name, so tasks, holds and usage never see an
    alias. `default_size` is the route family's default, used for a model that declares none.
    """
    prompt = _prompt(raw.prompt)
    model_name = default_model if raw.model in (None, "") else raw.model
    if not isinstance(model_name, str):
        raise invalid("'model' must be a string.", param="model")
    if len(model_name) > MAX_MODEL_CHARS:  # the not-found message quotes it
        raise invalid(f"'model' is longer than {MAX_MODEL_CHARS} characters.", param="model")
    model = lookup(model_name, not_found_status=model_not_found_status)
    if raw.n not in (None, "", 1, "1"):
        raise invalid("Only n=1 is supported.", param="n")
    size = _size(raw, model, model.default_size or default_size)
    if size not in model.sizes:
        raise invalid(
            f"Invalid size '{size}' for {model.name}. Supported: {', '.join(model.sizes)}.",
            param="size",
            code="invalid_size",
        )
    seconds = _seconds(raw.seconds, raw.seconds_param, model)
    width, height = parse_size(size)
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
    if "\x00" in prompt:  # PostgreSQL cannot store it in text
        raise invalid("'prompt' must not contain NUL characters.", param="prompt")
    return prompt


def small_int(text: str) -> int | None:
    """An ASCII decimal of at most 9 digits, else None: `"²".isdigit()` is true and a
    5000-digit string is too long for int(), neither may reach it."""
    text = text.strip()
    if text.isascii() and text.isdigit() and len(text) <= 9:
        return int(text)
    return None


def _size(raw: RawVideoRequest, model: Model, default: str) -> str:
    """`size` (or `width`+`height`) wins; else `aspect_ratio` picks the model's size of that
    ratio; else the default. A size that contradicts a given ratio is a 400."""
    ratio = _aspect_ratio(raw.aspect_ratio)
    size = None
    if raw.size not in (None, ""):
        size = str(raw.size).strip().lower().replace("*", "x")
        param = "size"
    elif raw.width not in (None, "") or raw.height not in (None, ""):
        size = f"{raw.width}x{raw.height}"
        param = "width"
    if size is None:
        return default if ratio is None else _size_of_ratio(model, ratio, raw.aspect_ratio)
    parts = size.split("x")
    numbers = [small_int(p) for p in parts]
    if len(numbers) != 2 or not all(n is not None and n > 0 for n in numbers):
        raise invalid(f"Invalid size '{size[:40]}'; expected WIDTHxHEIGHT.", param=param,
                      code="invalid_size")
    size = f"{numbers[0]}x{numbers[1]}"
    if ratio is not None and not same_ratio(parse_size(size), ratio):
        raise invalid(
            f"size '{size}' contradicts aspect_ratio '{raw.aspect_ratio}'.",
            param="aspect_ratio",
            code="invalid_size",
        )
    return size


def _aspect_ratio(value: Any) -> tuple[int, int] | None:
    """`W:H` with positive integers, or None when absent."""
    if value in (None, ""):
        return None
    numbers = [small_int(p) for p in str(value).strip().split(":")]
    if len(numbers) == 2 and all(n is not None and n > 0 for n in numbers):
        return numbers[0], numbers[1]
    raise invalid(f"Invalid aspect_ratio '{str(value)[:40]}'; expected W:H such as 16:9.",
                  param="aspect_ratio", code="invalid_size")


def _size_of_ratio(model: Model, ratio: tuple[int, int], given: Any) -> str:
    size = model.size_for_ratio(ratio)
    if size is None:
        raise invalid(
            f"Invalid aspect_ratio '{given}' for {model.name}. Supported: "
            f"{', '.join(model.ratios())}.",
            param="aspect_ratio",
            code="invalid_size",
        )
    return size


def _seconds(value: Any, param: str, model: Model) -> int:
    if value in (None, ""):
        return model.default_seconds
    if isinstance(value, bool):
        seconds = None
    elif isinstance(value, int):
        seconds = value
    elif isinstance(value, float) and value.is_integer():
        seconds = int(value)
    elif isinstance(value, str):
        seconds = small_int(value.strip().removesuffix("s"))
    else:
        seconds = None
    if seconds not in model.seconds:
        raise invalid(
            f"Invalid {param} '{str(value)[:40]}' for {model.name}. Supported: "
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
