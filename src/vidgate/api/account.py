"""A key's own view of its account: balance, limits and usage (`/v1/account`)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from .auth import Owner
from .contract import answers
from .deps import Deps
from .edge import Int64Query
from .responses import json_response
from .schemas import ref

router = APIRouter()


@router.get("/v1/account", openapi_extra=answers(ref("Account")))
async def account(key: Owner, services: Deps) -> Response:
    key = await services.accounts.get(key.id) or key  # a fresh balance
    return json_response({
        "object": "account",
        "key_id": key.id,
        "name": key.name,
        "unlimited": key.unlimited,
        "balance_micro": key.balance_micro,
        "balance_usd": None if key.unlimited else key.balance_micro / 1e6,
        "rpm_limit": key.rpm_limit,
        "max_concurrent": key.max_concurrent,
        "allowed_models": key.allowed_models,
        "webhook_url": key.webhook_url,
    })


@router.get("/v1/account/usage", openapi_extra=answers(ref("UsageList")))
async def account_usage(key: Owner, services: Deps, since: Int64Query = None,
                        until: Int64Query = None) -> Response:
    rows = await services.accounts.usage(key.id, since, until)
    return json_response({"object": "list", "data": rows})
