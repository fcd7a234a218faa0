"""Who may call what: every route of `/openapi.json` x every kind of wrong credential.

One table (`EXPECTED`) says what each credential gets on each kind of route; the routes come
from the OpenAPI document, so a new route is checked without being listed here. Owner A
holds a task; each row sends one credential to one route and checks the status and the
error body (code, type and message, in the route family's shape).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import httpx
import pytest

from vidgate.app import create_app
from vidgate.config import Settings
from vidgate.signing import signature
from vidgate.store.characters import Character

ADMIN = "matrix-admin-token"
NO_KEY = (401, "unauthorized", "authentication_error", "Missing API key")
UNKNOWN = (401, "unauthorized", "authentication_error", "Incorrect API key provided.")
REVOKED = (401, "unauthorized", "authentication_error", "This API key has been revoked.")
ADMIN_MISSING = (401, "unauthorized", "authentication_error", "Missing admin token")
ADMIN_REFUSED = (403, "forbidden", "permission_error", "This token may not use the admin API.")
NOT_YOURS = (404, "task_not_exist", "not_found_error", "No ")  # video, character
BAD_SIGNATURE = (403, "forbidden", "permission_error",
                 "This URL has expired or its signature does not match.")
SERVED = (200, None, None, None)  # the key is accepted: the route answers on its merits

# credential -> kind of route -> expected (status, canonical code, type, message prefix)
EXPECTED: dict[str, dict[str, tuple]] = {
    "no key": {"v1": NO_KEY, "v1 owned": NO_KEY, "admin": ADMIN_MISSING},
    "unknown key": {"v1": UNKNOWN, "v1 owned": UNKNOWN, "admin": ADMIN_REFUSED},
    "revoked key": {"v1": REVOKED, "v1 owned": REVOKED, "admin": ADMIN_REFUSED},
    "another owner's key": {"v1": SERVED, "v1 owned": NOT_YOURS, "admin": ADMIN_REFUSED},
    "admin token on /v1": {"v1": UNKNOWN, "v1 owned": UNKNOWN},
    "/v1 key on /admin": {"admin": ADMIN_REFUSED},
    "expired signed URL": {"files": BAD_SIGNATURE},
    "tampered signed URL": {"files": BAD_SIGNATURE},
    "signed URL of another task": {"files": BAD_SIGNATURE},
}
OWNED_PARAMS = {"video_id", "task_id", "character_id"}  # naming something owner A owns
SOURCE_ROUTES = ("/v1/videos/edits", "/v1/videos/extensions")  # owner A's video in the body
CODES_OF_FAMILY_A = {"unauthorized": "invalid_api_key", "task_not_exist": "video_not_found"}
BODIES = {"/admin/keys": {"name": "m"}, "/admin/keys/{key_id}/topup": {"amount_micro": 1},
          "/admin/keys/{key_id}": {"name": "m"}}


@dataclasses.dataclass
class World:
    client: httpx.AsyncClient
    owner: str
    other: str
    revoked: str
    task_id: str
    other_task_id: str
    key_id: str
    secret: bytes
    character_id: str


def route_kind(path: str, operation: dict) -> str:
    if path.startswith("/admin"):
        return "admin"
    if path.startswith("/files"):
        return "files"
    if path in SOURCE_ROUTES:
        return "v1 owned"
    names = {p["name"] for p in operation.get("parameters", []) if p["in"] in ("path", "query")}
    return "v1 owned" if names & OWNED_PARAMS else "v1"


def request_for(world: World, method: str, path: str, operation: dict,
                credential: str) -> dict[str, Any]:
    values = {"video_id": world.task_id, "task_id": world.task_id, "key_id": world.key_id,
              "character_id": world.character_id,
              "model_id": "sora-2", "variant": "video"}
    url = path
    query: dict[str, str] = {}
    for param in operation.get("parameters", []):
        if param["in"] == "path":
            url = url.replace("{" + param["name"] + "}", values[param["name"]])
        elif param["in"] == "query" and param["name"] in OWNED_PARAMS:
            query[param["name"]] = world.task_id
    if path.startswith("/files"):
        query.update(signed_query(world, credential))
    headers = {}
    token = {"unknown key": "sk-unknown", "revoked key": world.revoked,
             "another owner's key": world.other, "admin token on /v1": ADMIN,
             "/v1 key on /admin": world.owner}.get(credential)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request: dict[str, Any] = {"method": method, "url": url, "params": query,
                               "headers": headers}
    if method in ("POST", "PATCH", "PUT"):
        request["json"] = BODIES.get(path, {"prompt": "a cat", "model": "sora-2"})
        if path in SOURCE_ROUTES:
            request["json"] = {"prompt": "a cat", "video": {"id": world.task_id}}
    return request


def signed_query(world: World, credential: str) -> dict[str, str]:
    now = int(time.time())
    if credential == "expired signed URL":
        exp = now - 10
        return {"exp": str(exp), "sig": signature(world.secret, world.task_id, "video", exp)}
    exp = now + 3600
    if credential == "tampered signed URL":
        sig = signature(world.secret, world.task_id, "video", exp)
        return {"exp": str(exp), "sig": sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")}
    # a valid signature, but of another task than the URL names
    return {"exp": str(exp), "sig": signature(world.secret, world.other_task_id, "video", exp)}


def error_of(path: str, response: httpx.Response) -> tuple[int, str, str, str]:
    """(status, canonical code, type, message) from either family's error shape."""
    body = response.json()
    error = body["error"]
    code = error["code"]
    if path.startswith("/v1/video/"):  # the envelope carries the canonical code twice
        assert body["code"] == code and body["message"] == error["message"]
    else:
        code = {v: k for k, v in CODES_OF_FAMILY_A.items()}.get(code, code)
    return response.status_code, code, error["type"], error["message"]


@pytest.fixture
async def world(settings: Settings):
    app = create_app(dataclasses.replace(settings, run_engine=False, admin_token=ADMIN))
    async with app.lifespan():
        db = app.services.db
        owner_key, owner = await db.create_key("owner")
        _, other = await db.create_key("other")
        revoked_key, revoked = await db.create_key("revoked")
        await db.revoke_key(revoked_key.id)
        victim, _ = await db.create_key("victim")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            made = [await client.post("/v1/videos", json={"prompt": "a cat"},
                                      headers={"Authorization": f"Bearer {owner}"})
                    for _ in range(2)]
            assert all(r.status_code == 200 for r in made)
            # owner A's character, stored as the characters route stores one
            character = Character(id="char_" + "a" * 32, owner_id=owner_key.id, name="ann",
                                  created_at=int(time.time()), clip_key="characters/none")
            await db.characters.insert(character)
            yield World(client, owner, other, revoked, made[0].json()["id"],
                        made[1].json()["id"], victim.id, settings.secret, character.id)


async def test_access_matrix(world: World):
    document = (await world.client.get("/openapi.json")).json()
    checked, wrong = 0, []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            kind = route_kind(path, operation)
            for credential, by_kind in EXPECTED.items():
                if kind not in by_kind:
                    continue
                want = by_kind[kind]
                request = request_for(world, method.upper(), path, operation, credential)
                response = await world.client.request(**request)
                checked += 1
                if want == SERVED:
                    # a body the route refuses (400/422) still shows the key was let in
                    accepted = response.status_code in (200, 201, 400, 422)
                    got = SERVED if accepted else (response.status_code, None, None, None)
                    if path == "/v1/videos" and method == "get":  # A's task is not listed
                        assert world.task_id not in response.text
                elif method == "head":
                    got = (response.status_code, want[1], want[2], want[3])
                else:
                    status, code, type_, message = error_of(path, response)
                    got = (status, code, type_, message if not message.startswith(want[3])
                           else want[3])
                if got != want:
                    wrong.append(f"{method.upper()} {path} [{credential}]: {got} != {want}")
    assert not wrong, "\n".join(wrong)
    assert checked >= 3 * len(document["paths"])
