"""The route table of the three create-and-poll families, and the handlers both paths run.

Each family is declared once: its paths, how its create body is read, the options
`TaskService.create` applies for it, how it renders and which headers it adds. FastAPI's
routes (`router`, below) and the fast path (`api/hot_routes.py`) are both built from
`FAMILIES` and both call `create` / `read`, so they answer the same bytes. The error shape
is the path's (`api/errors.error_answer`), the same for every route under a family's prefix.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..catalog import RawVideoRequest
from ..domain import ApiKey, Task
from ..errors import invalid
from ..services import Services
from ..signing import AssetLinks
from . import shapes
from .auth import Owner
from .bodies import Body, read_body
from .contract import answers
from .deps import Deps
from .fields import GENERATIONS as GENERATIONS_FIELDS
from .fields import UNIFIED as UNIFIED_FIELDS
from .fields import VIDEOS as VIDEOS_FIELDS
from .fields import CreateFields
from .responses import json_response
from .schemas import ref

Render = Callable[[Task, AssetLinks], dict[str, Any]]
QUERY_IDS = ("task_id", "id")  # where a family without an id in its path reads it, in order
Answer = tuple[int, Any, dict[str, str]]  # status, JSON body, extra headers


def no_headers(_task: Task) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class Family:
    name: str  # stored on the task
    create_path: str
    status_path: str  # with the task id as `{<id_param>}`, or else read from the query
    events_path: str  # the status read's live stream (api/events.py), the id found alike
    fields: CreateFields  # how a create body is read (and documented)
    render: Render  # a status read's answer
    render_created: Render  # a create's answer
    schema: str  # the OpenAPI schema of a status read's answer (api/schemas.py)
    created_schema: str  # ... and of a create's
    headers: Callable[[Task], dict[str, str]] = no_headers  # on both answers
    default_size: str = "1280x720"
    model_not_found_status: int = 400
    id_param: str = "task_id"
    # OpenAPI's names of create, read and the live stream of events
    operations: tuple[str, str, str] = ("create", "read", "events")

    @property
    def status_prefix(self) -> str | None:
        """What a status path starts with before the id, when the id is in the path."""
        head, brace, _ = self.status_path.partition("{")
        return head if brace else None

    def parse(self, body: Body) -> RawVideoRequest:
        return self.fields.parse(body)


VIDEOS = Family("videos", "/v1/videos", "/v1/videos/{video_id}", "/v1/videos/{video_id}/events",
                VIDEOS_FIELDS, shapes.video, shapes.video, "Video", "Video", shapes.poll_headers,
                default_size="720x1280",  # OpenAI's default for this family
                model_not_found_status=404, id_param="video_id",
                operations=("create_video", "retrieve_video", "video_events"))
GENERATIONS = Family("generations", "/v1/video/generations", "/v1/video/generations/{task_id}",
                     "/v1/video/generations/{task_id}/events",
                     GENERATIONS_FIELDS, shapes.generation, shapes.generation, "Generation",
                     "Generation",
                     operations=("create_generation", "get_generation", "generation_events"))
UNIFIED = Family("unified", "/v1/video/create", "/v1/video/query", "/v1/video/query/events",
                 UNIFIED_FIELDS, shapes.unified_query, shapes.unified_created, "UnifiedQuery",
                 "UnifiedCreated",
                 operations=("create", "query", "query_events"))
FAMILIES = (VIDEOS, GENERATIONS, UNIFIED)


async def create(services: Services, family: Family, owner_id: str, body: Body,
                 idempotency_key: str | None, base_url: str) -> Answer:
    task = await services.tasks.create(
        owner_id, family.parse(body), family=family.name, idempotency_key=idempotency_key,
        default_size=family.default_size, model_not_found_status=family.model_not_found_status)
    return 200, family.render_created(task, services.links_at(task, base_url)), family.headers(task)


async def read(services: Services, family: Family, owner_id: str, task_id: str,
               base_url: str) -> Answer:
    task = await services.tasks.get(owner_id, task_id)
    return 200, family.render(task, services.links_at(task, base_url)), family.headers(task)


# ---- the fast path's view of the table ---------------------------------------------------

CREATES = {family.create_path: family for family in FAMILIES}
_BY_PREFIX = [(f.status_prefix, f) for f in FAMILIES if f.status_prefix is not None]
_BY_QUERY = {f.status_path: f for f in FAMILIES if f.status_prefix is None}


def match_read(path: str, query_string: bytes) -> tuple[Family, str] | None:
    """The family and task id of a plain status read, or None for anything else (those go
    to FastAPI, which also produces every validation error)."""
    family = _BY_QUERY.get(path)
    if family is not None:
        task_id = _query_task_id(query_string)
    else:
        for prefix, candidate in _BY_PREFIX:
            if path.startswith(prefix):
                family, task_id = candidate, path[len(prefix):]
                break
        else:
            return None
    if not task_id or "/" in task_id:
        return None
    return family, task_id


def _query_task_id(query_string: bytes) -> str | None:
    """`task_id` (or `id`) from the query string; None unless each appears at most once
    and nothing else is there, so FastAPI decides every unusual case."""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    params = dict(pairs)
    if len(params) != len(pairs) or not set(params) <= set(QUERY_IDS):
        return None
    return next((params[name] for name in QUERY_IDS if params.get(name)), None)


# ---- FastAPI's view of the table ---------------------------------------------------------

router = APIRouter()


def _create_endpoint(family: Family) -> Callable[..., Any]:
    async def create_task(request: Request, key: Owner, services: Deps) -> Response:
        body = await read_body(request, services.settings.max_upload_bytes)
        status, data, headers = await create(
            services, family, key.id, body, request.headers.get("idempotency-key"),
            str(request.base_url))
        return json_response(data, status, headers)
    return create_task


def with_task_id(family: Family, handler: Callable[..., Any]) -> Callable[..., Any]:
    """A route for `handler(request, key, services, task_id)` that reads the task id as the
    family places it: a path parameter named as the family names it, or the query parameters
    `task_id` / `id` (FastAPI reads parameters off the signature)."""
    in_path = family.status_prefix is not None
    names = (family.id_param,) if in_path else QUERY_IDS

    async def endpoint(request: Request, key: Owner, services: Deps, **ids: str | None
                       ) -> Response:
        task_id = next((ids[name] for name in names if ids.get(name)), None)
        if not task_id:
            raise invalid("'task_id' is required (or 'id').", param="task_id")
        return await handler(request, key, services, task_id)

    fixed = list(inspect.signature(endpoint).parameters.values())[:3]
    kind = inspect.Parameter.KEYWORD_ONLY
    ids = [inspect.Parameter(name, kind, annotation=str) if in_path else
           inspect.Parameter(name, kind, default=None, annotation=str | None) for name in names]
    endpoint.__signature__ = inspect.Signature(fixed + ids)  # type: ignore[attr-defined]
    return endpoint


def _read_endpoint(family: Family) -> Callable[..., Any]:
    async def read_task(request: Request, key: ApiKey, services: Services, task_id: str
                        ) -> Response:
        status, data, headers = await read(services, family, key.id, task_id,
                                           str(request.base_url))
        return json_response(data, status, headers)
    return with_task_id(family, read_task)


def create_answers(family: Family) -> dict[str, Any]:
    """What a create may answer besides what every route does (api/contract.py): a refused
    model (403), an unknown one (404 where the family says so), the balance (402), a reused
    Idempotency-Key (409), and a concurrency cap (429, as a key's rate limit)."""
    return answers(ref(family.created_schema), body=family.fields.form_body(), idempotent=True,
                   errors=(402, 403, 409, family.model_not_found_status))


for _family in FAMILIES:
    router.add_api_route(_family.create_path, _create_endpoint(_family), methods=["POST"],
                         name=_family.operations[0], openapi_extra=create_answers(_family))
    router.add_api_route(_family.status_path, _read_endpoint(_family), methods=["GET"],
                         name=_family.operations[1],
                         openapi_extra=answers(ref(_family.schema), errors=(404,)))
