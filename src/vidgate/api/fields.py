"""Reading a create request's fields, the same way on all three route families.

The families differ only in which spellings come first (`seconds` before `duration` on
`/v1/videos`, the reverse elsewhere; `input_reference` or `images` first) and in how they
render; what a field may hold is decided here once. An image field may hold an uploaded file
part, an http(s) URL, a data: URL, a list of those (first one used), or an object such as
`{"image_url": ...}` / `{"image_url": {"url": ...}}`.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..catalog import ImageInput, RawVideoRequest
from ..errors import invalid
from .bodies import Body


def videos_request(body: Body) -> RawVideoRequest:
    return raw_request(body, seconds_fields=("seconds", "duration"),
                       image_fields=("input_reference", "image_url"))


def generations_request(body: Body) -> RawVideoRequest:
    """`model` is required on this family, unlike the others."""
    if body.first("model") is None:
        raise invalid("'model' is required.", param="model")
    return raw_request(body, seconds_fields=("duration", "seconds"),
                       image_fields=("image", "image_url", "images", "input_reference"))


def unified_request(body: Body) -> RawVideoRequest:
    return raw_request(body, seconds_fields=("duration", "seconds"),
                       image_fields=("images", "image_url", "image", "input_reference"))


def raw_request(
    body: Body, *, seconds_fields: tuple[str, ...], image_fields: tuple[str, ...]
) -> RawVideoRequest:
    """Body fields -> raw request; `param` of a length error names the spelling used."""
    seconds_param = _one_length(body, seconds_fields)
    return RawVideoRequest(
        prompt=body.fields.get("prompt"),
        model=body.fields.get("model"),
        size=body.fields.get("size"),
        width=body.fields.get("width"),
        height=body.fields.get("height"),
        seconds=body.first(*seconds_fields),
        seconds_param=seconds_param,
        aspect_ratio=body.fields.get("aspect_ratio"),
        image=image_from_body(body, *image_fields),
        metadata=_metadata(body.fields.get("metadata")),
        n=body.fields.get("n"),
        seed=body.fields.get("seed"),
    )


def _one_length(body: Body, names: tuple[str, ...]) -> str:
    """The spelling of the length the body uses; two spellings that disagree (`duration`
    4 and `seconds` "8") are a 400 naming both, as `size` against `aspect_ratio` is."""
    given = [(name, body.first(name)) for name in names if body.first(name) is not None]
    for (first, a), (other, b) in zip(given, given[1:], strict=False):
        if _length_text(a) != _length_text(b):
            raise invalid(f"'{first}' ({str(a)[:20]}) contradicts '{other}' ({str(b)[:20]}); "
                          "send one of them.", param=other, code="invalid_duration")
    return given[0][0] if given else names[0]


def _length_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().lower().removesuffix("s")


def _metadata(value: Any) -> Any:
    """A multipart form can only carry metadata as a JSON string; decode it when it is one."""
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value  # the catalog rejects a non-object with param "metadata"
    return value


def image_from_body(body: Body, *names: str) -> ImageInput | None:
    """The reference image under the first of `names` that holds one; `param` names it."""
    for name in names:
        for part in (name, name + "[]"):
            if part in body.files:
                return ImageInput(data=body.files[part], param=name)
        value = _unwrap(body.fields.get(name))
        if value in (None, ""):
            continue
        if not isinstance(value, str):
            raise invalid(f"'{name}' must be an image URL, a data: URL or a file.", param=name,
                          code="invalid_image")
        return ImageInput(url=value, param=name)
    return None


def _unwrap(value: Any) -> Any:
    """Reduce a list (first item) or an object (`image_url` / `url`) to the URL inside it."""
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        value = value.get("image_url") or value.get("url")
        if isinstance(value, dict):  # {"image_url": {"url": ...}}
            value = value.get("url")
    return value
