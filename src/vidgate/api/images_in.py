"""Finding the reference image in a request body, in every spelling the three families accept.

Shared so that `/v1/videos`, `/v1/video/generations` and `/v1/video/create` agree on what an
image field may hold: an uploaded file part, an http(s) URL, a data: URL, a list of those
(first one used), or an object such as `{"image_url": ...}` / `{"image_url": {"url": ...}}`.
"""

from __future__ import annotations

from typing import Any

from ..catalog import ImageInput
from ..errors import invalid
from .bodies import Body


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
