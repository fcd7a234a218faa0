"""Operator API under /admin, guarded by the VIDGATE_ADMIN_TOKEN bearer token."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, HttpUrl
from starlette.responses import Response

from ..errors import ApiError
from ..store.keys import key_view
from ..store.ledger import InsufficientBalance
from .responses import json_response

router = APIRouter(prefix="/admin")


async def require_admin(request: Request) -> None:
    settings = request.app.state.services.settings
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


class KeySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200)
    rpm_limit: int | None = Field(None, ge=1)
    max_concurrent: int | None = Field(None, ge=1)
    allowed_models: list[str] | None = None
    webhook_url: HttpUrl | None = None


class KeyCreate(KeySettings):
    balance_micro: int | None = Field(None, ge=0, description="omit for no limit")


class KeyUpdate(KeySettings):
    rotate_webhook_secret: bool = False


class TopUp(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount_micro: int
    note: str | None = Field(None, max_length=500)


def _settings(body: KeySettings) -> dict[str, Any]:
    values = body.model_dump(exclude_unset=True, exclude={"rotate_webhook_secret"})
    if values.get("webhook_url") is not None:
        values["webhook_url"] = str(values["webhook_url"])
    return values


def _check_models(request: Request, models: list[str] | None) -> None:
    known = request.app.state.services.tasks.catalog.models
    for name in models or []:
        if name not in known:
            raise ApiError(400, "model_not_found", f"Unknown model '{name}'.",
                           param="allowed_models")


async def _existing(request: Request, key_id: str):
    key = await request.app.state.services.accounts.get(key_id)
    if key is None:
        raise ApiError(404, "not_found", f"No API key '{key_id}'.")
    return key


@router.get("/keys")
async def list_keys(request: Request, _: Admin) -> Response:
    keys = await request.app.state.services.db.list_keys()
    return json_response({"object": "list", "data": [key_view(k) for k in keys]})


@router.post("/keys")
async def create_key(body: KeyCreate, request: Request, _: Admin) -> Response:
    values = _settings(body)
    _check_models(request, values.get("allowed_models"))
    name = values.pop("name", None) or ""
    key, secret = await request.app.state.services.db.create_key(name, **values)
    return json_response({**key_view(key), "key": secret}, status=201)


@router.get("/keys/{key_id}")
async def get_key(key_id: str, request: Request, _: Admin) -> Response:
    return json_response(key_view(await _existing(request, key_id)))


@router.patch("/keys/{key_id}")
async def update_key(key_id: str, body: KeyUpdate, request: Request, _: Admin) -> Response:
    values = _settings(body)
    _check_models(request, values.get("allowed_models"))
    await _existing(request, key_id)
    key = await request.app.state.services.accounts.update(
        key_id, values, rotate_webhook_secret=body.rotate_webhook_secret)
    request.app.state.services.key_cache.clear()
    return json_response(key_view(key))


@router.post("/keys/{key_id}/revoke")
async def revoke_key(key_id: str, request: Request, _: Admin) -> Response:
    key = await _existing(request, key_id)
    if key.revoked_at is None:
        await request.app.state.services.db.revoke_key(key_id)
        request.app.state.services.key_cache.clear()
    return json_response(key_view(await _existing(request, key_id)))


@router.post("/keys/{key_id}/topup")
async def top_up(key_id: str, body: TopUp, request: Request, _: Admin) -> Response:
    await _existing(request, key_id)
    try:
        balance = await request.app.state.services.accounts.top_up(
            key_id, body.amount_micro, body.note)
    except InsufficientBalance as exc:
        raise ApiError(400, "invalid_request", "The balance cannot go below zero.",
                       param="amount_micro") from exc
    return json_response({"key_id": key_id, "balance_micro": balance})


@router.get("/usage")
async def usage(request: Request, _: Admin, key_id: str | None = None,
                since: int | None = None, until: int | None = None) -> Response:
    rows = await request.app.state.services.accounts.usage(key_id, since, until)
    return json_response({"object": "list", "data": rows})


@router.get("/ledger")
async def ledger(request: Request, _: Admin, key_id: str | None = None,
                 limit: int = Query(100, ge=1, le=1000)) -> Response:
    rows = await request.app.state.services.accounts.ledger(key_id, limit)
    return json_response({"object": "list", "data": rows})
