"""Reading a create request's fields, the same way on all three route families.

The families differ only in which spellings come first (`seconds` before `duration` on
`/v1/videos`, the reverse elsewhere; `input_reference` or `images` first) and in how they
render; what a field may hold is decided here once. An image field may hold an uploaded file
part, an http(s) URL, a data: URL, a list of those (first one used), or an object such as
`{"image_url": ...}` / `{"image_url": {"url": ...}}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from ..catalog import ImageInput, RawVideoRequest
from ..errors import invalid
from .bodies import Body
from .contract import FormBody
from .schemas import Schema

TEXT_OR_INT: Schema = {"type": ["string", "integer"]}
# The fields every create reads under one spelling, as a JSON body holds them (a form holds
# text: `metadata` as a JSON string). The catalog (catalog/requests.py) decides what values
# are valid; these are the types a request may send.
CREATE_FIELDS: dict[str, Schema] = {
    "prompt": {"type": "string", "description": "1..32000 characters after trimming"},
    "model": {"type": "string"},
    "size": {"type": "string", "description": "WIDTHxHEIGHT, e.g. 1280x720"},
    "width": TEXT_OR_INT,
    "height": TEXT_OR_INT,
    "aspect_ratio": {"type": "string", "description": "W:H, e.g. 16:9"},
    "metadata": {"type": "object", "description": "passed to the backend"},
    "n": {**TEXT_OR_INT, "description": "only 1"},
    "seed": TEXT_OR_INT,
}
LENGTH: Schema = {"type": ["string", "integer"], "description": "seconds, e.g. 8 or \"8\""}
# An image field in JSON: a URL or data: URL, a list of those (the first is used), or an
# object {"image_url": ...} / {"image_url": {"url": ...}}
URL_TEXT: Schema = {"type": "string", "description": "an http(s) URL or a data: URL"}
IMAGE_JSON: Schema = {"anyOf": [
    URL_TEXT, {"type": "array", "items": URL_TEXT},
    {"type": "object", "properties": {"image_url": {"anyOf": [
        URL_TEXT, {"type": "object", "properties": {"url": URL_TEXT}}]}, "url": URL_TEXT}},
]}


@dataclass(frozen=True)
class CreateFields:
    """How one family reads a create body: the spellings of the length and of the image,
    each in the order they are read; the same declaration documents the body (`form_body`)."""

    seconds: tuple[str, ...]
    images: tuple[str, ...]
    requires_model: bool = False

    def parse(self, body: Body) -> RawVideoRequest:
        if self.requires_model and body.first("model") is None:
            raise invalid("'model' is required.", param="model")
        return raw_request(body, seconds_fields=self.seconds, image_fields=self.images)

    def form_body(self) -> FormBody:
        required = ("prompt", "model") if self.requires_model else ("prompt",)
        lengths = dict.fromkeys(self.seconds, LENGTH)
        form = {name: {"type": "string"} for name in (*CREATE_FIELDS, *self.seconds)}
        form["metadata"] = {"type": "string", "description": "a JSON object"}
        # a form's image: a file part, a URL, or the bracketed spellings api/bodies.py nests
        images = {name: URL_TEXT for name in self.images}
        for name in self.images:
            images[f"{name}[image_url]"] = URL_TEXT
            images[f"{name}[]"] = URL_TEXT
        return FormBody(json={**CREATE_FIELDS, **lengths,
                              **dict.fromkeys(self.images, IMAGE_JSON)},
                        form={**form, **images}, files=self.images,
                        json_required=required, form_required=required,
                        example={"prompt": "a red fox in the snow", "model": "sora-2",
                                 self.seconds[0]: 4})


VIDEOS = CreateFields(seconds=("seconds", "duration"), images=("input_reference", "image_url"))
# `model` is required on this family, unlike the others
GENERATIONS = CreateFields(seconds=("duration", "seconds"),
                           images=("image", "image_url", "images", "input_reference"),
                           requires_model=True)
UNIFIED = CreateFields(seconds=("duration", "seconds"),
                       images=("images", "image_url", "image", "input_reference"))


def raw_request(
    body: Body, *, seconds_fields: tuple[str, ...], image_fields: tuple[str, ...]
) -> RawVideoRequest:
    """Body fields -> raw request; `param` of a length error names the spelling used."""
    seconds_param = _one_length(body, seconds_fields)
    values = {name: body.fields.get(name) for name in CREATE_FIELDS}
    values["metadata"] = _metadata(values["metadata"])
    return RawVideoRequest(
        **values,
        seconds=body.first(*seconds_fields),
        seconds_param=seconds_param,
        image=image_from_body(body, *image_fields),
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
