"""Reading a create request's fields, the same way on all three route families.

The families differ only in which spellings come first (`seconds` before `duration` on
`/v1/videos`, the reverse elsewhere; `input_reference` or `images` first) and in how they
render; what a field may hold is decided here once. An image field may hold an uploaded file
part, an http(s) URL, a data: URL, a list of those (first one used), or an object such as
`{"image_url": ...}` / `{"image_url": {"url": ...}}`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import Request

from ..catalog import ImageInput, RawVideoRequest
from ..domain import ApiKey, Task
from ..errors import invalid
from ..tasks import TaskService
from .bodies import Body, read_body


@dataclass(frozen=True)
class CreateRoute:
    """How one family creates: its name, its body parser and TaskService.create's
    family-specific defaults (default size, the status of an unknown model)."""

    family: str
    parse: Callable[[Body], RawVideoRequest]
    options: dict[str, Any] = field(default_factory=dict)

    async def create(self, tasks: TaskService, owner_id: str, body: Body,
                     idempotency_key: str | None) -> Task:
        return await tasks.create(owner_id, self.parse(body), family=self.family,
                                  idempotency_key=idempotency_key, **self.options)


async def create_task(request: Request, key: ApiKey, route: CreateRoute) -> Task:
    """Read the body and create the task with the request's Idempotency-Key."""
    services = request.app.state.services
    body = await read_body(request, services.settings.max_upload_bytes)
    return await route.create(services.tasks, key.id, body,
                              request.headers.get("idempotency-key"))


def raw_request(
    body: Body, *, seconds_fields: tuple[str, ...], image_fields: tuple[str, ...]
) -> RawVideoRequest:
    """Body fields -> raw request; `param` of a length error names the spelling used."""
    seconds_param = next((n for n in seconds_fields if body.first(n) is not None),
                         seconds_fields[0])
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


def _metadata(value: Any) -> Any:
    """A multipart form can only carry metadata as a JSON string; decode it when it is one."""
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value  # the catalog rejects a non-object with param "metadata"
    return value


def task_error(task: Task) -> dict[str, str] | None:
    """The `error` field of every family: null, or the failure reason and its message."""
    if not task.error_code:
        return None
    return {"code": task.error_code, "message": task.error_message or ""}


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
