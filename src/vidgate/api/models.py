"""The public models a key may use (`/v1/models`), in OpenAI's Models API shape.

A key sees the catalog through its allow-list: a model it may not use is neither listed nor
retrievable (404, as if it did not exist, so that the list and the lookup agree). An alias
retrieves the model it stands for, under the model's own id.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from ..catalog import Model
from ..errors import ApiError
from .auth import Owner
from .contract import answers
from .deps import Deps
from .responses import json_response
from .schemas import ref

router = APIRouter()


def render(model: Model) -> dict[str, Any]:
    """OpenAI's model object, plus what a request may ask of it (the playground's choices):
    its sizes and lengths, and the length it gets when a request names none."""
    return {"id": model.name, "object": "model", "created": model.created,
            "owned_by": model.owned_by, "sizes": list(model.sizes),
            "seconds": list(model.seconds), "default_seconds": model.default_seconds}


@router.get("/v1/models", openapi_extra=answers(ref("ModelList")))
async def list_models(services: Deps, key: Owner) -> Response:
    catalog = services.tasks.catalog
    data = [render(m) for m in catalog.models.values()
            if catalog.allows(key.allowed_models, m.name)]
    return json_response({"object": "list", "data": data})


@router.get("/v1/models/{model_id}", openapi_extra=answers(ref("Model")))
async def retrieve_model(model_id: str, services: Deps, key: Owner) -> Response:
    catalog = services.tasks.catalog
    name = catalog.canonical(model_id)
    if name is None or not catalog.allows(key.allowed_models, name):
        raise ApiError(404, "model_not_found", f"The model '{model_id}' does not exist or "
                       "you do not have access to it.", param="model",
                       type="invalid_request_error")
    return json_response(render(catalog.models[name]))
