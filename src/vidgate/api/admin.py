"""Operator API under /admin, guarded by the VIDGATE_ADMIN_TOKEN bearer token."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Security
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, HttpUrl
from starlette.responses import Response

from ..domain import ApiKey
from ..errors import ApiError
from ..services import Services
from ..store.keys import key_view
from ..store.ledger import InsufficientBalance
from .contract import answers
from .deps import Deps, services_of
from .edge import INT32_MAX, Int64Query, Text
from .responses import json_response
from .schemas import ref

router = APIRouter(prefix="/admin")


# Declares the admin token to OpenAPI (see api/auth.API_KEY_SCHEME); never refuses itself.
ADMIN_SCHEME = HTTPBearer(scheme_name="AdminToken", auto_error=False,
                          description="The token set as VIDGATE_ADMIN_TOKEN.")


async def require_admin(request: Request, _scheme: object = Security(ADMIN_SCHEME)) -> None:
    await check_admin(request)


async def check_admin(request: Request) -> None:
    settings = services_of(request).settings
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "Missing admin token: send 'Authorization: Bearer "
                       "<VIDGATE_ADMIN_TOKEN>'.")
    if not settings.admin_token:
        raise ApiError(403, "forbidden", "The admin API is disabled: set VIDGATE_ADMIN_TOKEN.")
    if not hmac.compare_digest(token.strip().encode(), settings.admin_token.encode()):
        raise ApiError(403, "forbidden", "This token may not use the admin API.")


Admin = Annotated[None, Depends(require_admin)]
USD = 1_000_000
# The most one balance or top-up may hold (a billion USD): sums of them stay within BIGINT.
MAX_MICRO = 10**9 * USD


class KeySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text | None = Field(None, max_length=200)
    rpm_limit: int | None = Field(None, ge=1, le=INT32_MAX)
    max_concurrent: int | None = Field(None, ge=1, le=INT32_MAX)
    allowed_models: list[Text] | None = Field(None, max_length=1000)
    webhook_url: HttpUrl | None = None


class KeyCreate(KeySettings):
    balance_micro: int | None = Field(None, ge=0, le=MAX_MICRO, description="omit for no limit")


class KeyUpdate(KeySettings):
    rotate_webhook_secret: bool = False


class TopUp(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount_micro: int = Field(ge=-MAX_MICRO, le=MAX_MICRO)
    note: Text | None = Field(None, max_length=500)


def _settings(body: KeySettings) -> dict[str, Any]:
    values = body.model_dump(exclude_unset=True, exclude={"rotate_webhook_secret"})
    if "name" in values and values["name"] is None:  # the column holds "" for no name
        values["name"] = ""
    if values.get("webhook_url") is not None:
        values["webhook_url"] = str(values["webhook_url"])
    return values


def _check_models(services: Services, models: list[str] | None) -> None:
    catalog = services.tasks.catalog
    for name in models or []:
        if catalog.canonical(name) is None:  # a model's name or one of its aliases
            raise ApiError(400, "model_not_found", f"Unknown model '{name}'.",
                           param="allowed_models")


async def _existing(services: Services, key_id: str) -> ApiKey:
    key = await services.accounts.get(key_id)
    if key is None:
        raise ApiError(404, "not_found", f"No API key '{key_id}'.")
    return key


@router.get("/keys", openapi_extra=answers(ref("ApiKeyList")))
async def list_keys(services: Deps, _: Admin) -> Response:
    keys = await services.db.list_keys()
    return json_response({"object": "list", "data": [key_view(k) for k in keys]})


@router.post("/keys", status_code=201, openapi_extra=answers(ref("ApiKeyCreated"), status=201))
async def create_key(body: KeyCreate, services: Deps, _: Admin) -> Response:
    values = _settings(body)
    _check_models(services, values.get("allowed_models"))
    name = values.pop("name", None) or ""
    key, secret = await services.db.create_key(name, **values)
    return json_response({**key_view(key), "key": secret}, status=201)


@router.get("/keys/{key_id}", openapi_extra=answers(ref("ApiKey")))
async def get_key(key_id: str, services: Deps, _: Admin) -> Response:
    return json_response(key_view(await _existing(services, key_id)))


@router.patch("/keys/{key_id}", openapi_extra=answers(ref("ApiKey")))
async def update_key(key_id: str, body: KeyUpdate, services: Deps, _: Admin) -> Response:
    values = _settings(body)
    _check_models(services, values.get("allowed_models"))
    await _existing(services, key_id)
    key = await services.accounts.update(
        key_id, values, rotate_webhook_secret=body.rotate_webhook_secret)
    services.key_cache.clear()
    return json_response(key_view(key))


@router.post("/keys/{key_id}/revoke", openapi_extra=answers(ref("ApiKey")))
async def revoke_key(key_id: str, services: Deps, _: Admin) -> Response:
    key = await _existing(services, key_id)
    if key.revoked_at is None:
        await services.db.revoke_key(key_id)
        services.key_cache.clear()
    return json_response(key_view(await _existing(services, key_id)))


@router.post("/keys/{key_id}/topup", openapi_extra=answers(ref("TopUp")))
async def top_up(key_id: str, body: TopUp, services: Deps, _: Admin) -> Response:
    await _existing(services, key_id)
    try:
        balance = await services.accounts.top_up(
            key_id, body.amount_micro, body.note)
    except InsufficientBalance as exc:
        raise ApiError(400, "invalid_request", "The balance cannot go below zero.",
                       param="amount_micro") from exc
    return json_response({"key_id": key_id, "balance_micro": balance})


@router.get("/usage", openapi_extra=answers(ref("UsageList")))
async def usage(services: Deps, _: Admin, key_id: str | None = None,
                since: Int64Query = None, until: Int64Query = None) -> Response:
    rows = await services.accounts.usage(key_id, since, until)
    return json_response({"object": "list", "data": rows})


@router.get("/ledger", openapi_extra=answers(ref("Ledger")))
async def ledger(services: Deps, _: Admin, key_id: str | None = None,
                 limit: int = Query(100, ge=1, le=1000)) -> Response:
    rows = await services.accounts.ledger(key_id, limit)
    return json_response({"object": "list", "data": rows})
