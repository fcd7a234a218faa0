"""Declared models through the HTTP API: listed, creatable on every family, held to their own
sizes and lengths, and priced by their own tiers (in-process app, sandbox channel)."""

from __future__ import annotations

import httpx
import openai
import pytest
import sqlalchemy as sa

from helpers_async import wait_completed
from support import await_for
from vidgate.app import create_app
from vidgate.store.schema import ledger, tasks

CONFIG = """
models:
  - name: veo-3.1
    sizes: ["1280x720", "720x1280", "1920x1080", "1080x1920"]
    seconds: [4, 6, 8]
    default_seconds: 8
    prices:
      - {max_size: "1280x720", usd_per_second: 0.15}
      - {usd_per_second: 0.40}
    aliases: ["veo-3.1-generate-preview"]
  - name: wan-2.2
    sizes: ["848x480", "480x848"]
    seconds: [5]
    prices: [{usd_per_second: 0.02}]
    created: 1753920000
channels:
  - name: local
    kind: sandbox
    models: {sora-2: sora-2, sora-2-pro: sora-2-pro, veo-3.1: veo-3.1, wan-2.2: wan-2.2}
"""


class Client:
    def __init__(self, app, http: httpx.AsyncClient, key: str) -> None:
        self.app, self.http, self.key = app, http, key
        self.services = app.services

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    async def post(self, path: str, body: dict, key: str | None = None) -> httpx.Response:
        return await self.http.post(path, json=body, headers=self.headers(key))

    async def get(self, path: str, key: str | None = None) -> httpx.Response:
        return await self.http.get(path, headers=self.headers(key))

    async def count_tasks(self) -> int:
        async with self.services.db.engine.connect() as conn:
            return (await conn.execute(sa.select(sa.func.count()).select_from(tasks))).scalar()

    async def ledger(self, key_id: str) -> list[tuple]:
        async with self.services.db.engine.connect() as conn:
            rows = (await conn.execute(
                sa.select(ledger.c.task_id, ledger.c.kind, ledger.c.amount_micro)
                .where(ledger.c.key_id == key_id).order_by(ledger.c.id))).all()
        return [tuple(r) for r in rows]

    async def cost(self, task_id: str) -> int | None:
        async with self.services.db.engine.connect() as conn:
            return (await conn.execute(sa.select(tasks.c.cost_micro)
                                       .where(tasks.c.id == task_id))).scalar()


@pytest.fixture
async def declared(settings, tmp_path):
    path = tmp_path / "vidgate.yaml"
    path.write_text(CONFIG)
    settings.config_path = path
    app = create_app(settings)
    async with app.lifespan():
        _, key = await app.services.db.create_key("test")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield Client(app, http, key)


async def test_models_are_listed_and_retrieved_through_the_allow_list(declared):
    listed = (await declared.get("/v1/models")).json()
    assert listed["object"] == "list"
    assert [m["id"] for m in listed["data"]] == ["sora-2", "sora-2-pro", "veo-3.1", "wan-2.2"]
    for model in listed["data"]:
        assert model["object"] == "model" and model["owned_by"] == "vidgate"
        assert isinstance(model["created"], int) and model["created"] > 0
    assert listed["data"][3]["created"] == 1753920000

    one = await declared.get("/v1/models/veo-3.1")
    assert one.status_code == 200 and one.json() == listed["data"][2]
    by_alias = await declared.get("/v1/models/veo-3.1-generate-preview")
    assert by_alias.json()["id"] == "veo-3.1"

    missing = await declared.get("/v1/models/veo-4")
    assert missing.status_code == 404
    assert missing.json() == {"error": {
        "message": "The model 'veo-4' does not exist or you do not have access to it.",
        "type": "invalid_request_error", "param": "model", "code": "model_not_found"}}
    assert (await declared.http.get("/v1/models")).status_code == 401
    assert (await declared.get("/v1/models", key="sk-vg-wrong")).status_code == 401

    # an allow-list may name a model by its alias; the key sees only what it may use
    _, narrow = await declared.services.db.create_key(
        "narrow", allowed_models=["veo-3.1-generate-preview"])
    listed = (await declared.get("/v1/models", key=narrow)).json()["data"]
    assert [m["id"] for m in listed] == ["veo-3.1"]
    hidden = await declared.get("/v1/models/sora-2", key=narrow)
    assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "model_not_found"
    allowed = await declared.post("/v1/videos", {"prompt": "x", "model": "veo-3.1",
                                                 "size": "1280x720", "seconds": "4"}, narrow)
    assert allowed.status_code == 200, allowed.text
    denied = await declared.post("/v1/videos", {"prompt": "x", "model": "sora-2"}, narrow)
    assert denied.status_code == 403 and denied.json()["error"]["param"] == "model"


async def test_openai_sdk_lists_retrieves_and_creates(declared):
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=declared.app),
                             base_url="http://testserver")
    async with openai.AsyncOpenAI(base_url="http://testserver/v1", api_key=declared.key,
                                  http_client=http, max_retries=0) as client:
        ids = [m.id async for m in client.models.list()]
        assert ids == ["sora-2", "sora-2-pro", "veo-3.1", "wan-2.2"]
        model = await client.models.retrieve("veo-3.1-generate-preview")
        assert (model.id, model.object, model.owned_by) == ("veo-3.1", "model", "vidgate")
        with pytest.raises(openai.NotFoundError) as err:
            await client.models.retrieve("veo-4")
        assert err.value.code == "model_not_found"

        video = await client.videos.create(model="veo-3.1-generate-preview", prompt="a fox",
                                           size="1080x1920", seconds="6")
        assert (video.model, video.size, video.seconds) == ("veo-3.1", "1080x1920", "6")
        again = await client.videos.retrieve(video.id)
        assert again.model == "veo-3.1"
        with pytest.raises(openai.BadRequestError) as err:
            await client.videos.create(model="veo-3.1", prompt="a fox", seconds="12")
        assert err.value.body["param"] == "seconds"


async def test_declared_models_are_creatable_on_all_three_families(declared):
    videos = await declared.post("/v1/videos", {"prompt": "a", "model": "veo-3.1-generate-preview",
                                                "size": "1920x1080", "seconds": "6"})
    assert videos.status_code == 200, videos.text
    assert (videos.json()["model"], videos.json()["size"], videos.json()["seconds"]) == (
        "veo-3.1", "1920x1080", "6")

    generations = await declared.post("/v1/video/generations", {
        "prompt": "b", "model": "veo-3.1", "aspect_ratio": "9:16", "duration": 4})
    assert generations.status_code == 200, generations.text
    task = (await declared.get(f"/v1/video/generations/{generations.json()['task_id']}")).json()
    assert (task["model"], task["size"]) == ("veo-3.1", "720x1280")

    unified = await declared.post("/v1/video/create", {
        "prompt": "c", "model": "wan-2.2", "aspect_ratio": "9:16"})
    assert unified.status_code == 200, unified.text
    assert unified.json()["model"] == "wan-2.2"
    queried = (await declared.get(f"/v1/video/query?task_id={unified.json()['id']}")).json()
    assert queried["model"] == "wan-2.2"

    async with declared.services.db.engine.connect() as conn:
        rows = (await conn.execute(sa.select(tasks.c.family, tasks.c.model, tasks.c.width,
                                             tasks.c.height, tasks.c.seconds)
                                   .order_by(tasks.c.created_at, tasks.c.id))).all()
    # the stored record names the model itself, never the alias the client used
    assert sorted(tuple(r) for r in rows) == sorted([
        ("videos", "veo-3.1", 1920, 1080, 6), ("generations", "veo-3.1", 720, 1280, 4),
        ("unified", "wan-2.2", 480, 848, 5)])


async def test_defaults_come_from_the_model(declared):
    declared_video = (await declared.post("/v1/videos", {"prompt": "a", "model": "veo-3.1"}))
    assert (declared_video.json()["size"], declared_video.json()["seconds"]) == ("1280x720", "8")
    wan = await declared.post("/v1/video/generations", {"prompt": "a", "model": "wan-2.2"})
    task = (await declared.get(f"/v1/video/generations/{wan.json()['task_id']}")).json()
    assert task["size"] == "848x480"
    # the built-ins keep OpenAI's portrait default on /v1/videos and 1280x720 elsewhere
    sora = (await declared.post("/v1/videos", {"prompt": "a"})).json()
    assert (sora["model"], sora["size"], sora["seconds"]) == ("sora-2", "720x1280", "4")
    sora = await declared.post("/v1/video/generations", {"prompt": "a", "model": "sora-2"})
    task = (await declared.get(f"/v1/video/generations/{sora.json()['task_id']}")).json()
    assert task["size"] == "1280x720"


@pytest.mark.parametrize("path, body, param, code", [
    ("/v1/videos", {"model": "veo-3.1", "size": "720x720"}, "size", "invalid_size"),
    ("/v1/videos", {"model": "veo-3.1", "size": "1792x1024"}, "size", "invalid_size"),
    ("/v1/videos", {"model": "veo-3.1", "seconds": "5"}, "seconds", "invalid_duration"),
    ("/v1/videos", {"model": "wan-2.2", "size": "1280x720"}, "size", "invalid_size"),
    ("/v1/videos", {"model": "veo-3.1", "aspect_ratio": "1:1"}, "aspect_ratio",
     "invalid_size"),
    ("/v1/videos", {"model": "veo-3", "size": "1280x720"}, "model", "model_not_found"),
    ("/v1/video/generations", {"model": "veo-3.1", "duration": 12}, "duration",
     "invalid_duration"),
    ("/v1/video/generations", {"model": "wan-2.2", "duration": 4}, "duration",
     "invalid_duration"),
    ("/v1/video/generations", {"model": "veo-3.1", "width": 1024, "height": 1024}, "size",
     "invalid_size"),
    ("/v1/video/create", {"model": "wan-2.2", "aspect_ratio": "1:1"}, "aspect_ratio",
     "invalid_size"),
    ("/v1/video/create", {"model": "veo-3.1", "size": "720x1280", "aspect_ratio": "16:9"},
     "aspect_ratio", "invalid_size"),
    ("/v1/video/create", {"model": "veo-3.1", "aspect_ratio": "wide"}, "aspect_ratio",
     "invalid_size"),
    ("/v1/video/create", {"model": "sora-2", "seconds": 6}, "seconds", "invalid_duration"),
])
async def test_declared_model_rejects_what_it_does_not_declare(declared, path, body, param,
                                                               code):
    key, secret = await declared.services.db.create_key("limited", balance_micro=50_000_000)
    r = await declared.post(path, {"prompt": "p", **body}, secret)
    assert r.status_code == (404 if code == "model_not_found" and path == "/v1/videos"
                             else 400), r.text
    error = r.json()["error"]
    assert (error["param"], error["code"]) == (param, code), error
    assert error["type"] == "invalid_request_error"
    if body.get("model") == "wan-2.2" and param != "model":
        assert "wan-2.2" in error["message"]
    assert await declared.count_tasks() == 0
    assert await declared.ledger(key.id) == [(None, "topup", 50_000_000)]


async def test_declared_models_are_priced_by_their_own_tiers(declared):
    key, secret = await declared.services.db.create_key("limited", balance_micro=10_000_000)

    async def create(body: dict) -> str:
        r = await declared.post("/v1/videos", {"prompt": "p", **body}, secret)
        assert r.status_code == 200, r.text
        return r.json()["id"]

    big = await create({"model": "veo-3.1", "size": "1920x1080", "seconds": "8"})
    portrait = await create({"model": "veo-3.1-generate-preview", "size": "720x1280",
                             "seconds": "4"})
    wan = await create({"model": "wan-2.2", "size": "480x848", "seconds": "5"})
    # 0.40 USD/s above 720p; 0.15 USD/s up to 720p (a portrait 720p has as many pixels);
    # 0.02 USD/s for the one-tier model
    assert await declared.ledger(key.id) == [
        (None, "topup", 10_000_000), (big, "hold", -3_200_000), (portrait, "hold", -600_000),
        (wan, "hold", -100_000)]
    r = await declared.http.delete(f"/v1/videos/{big}", headers=declared.headers(secret))
    assert r.status_code == 200

    for video in (portrait, wan):
        await wait_completed(_Waiter(declared), video, key=secret, timeout=120)
        await await_for(lambda v=video: _is_settled(declared, v), what="settlement")
    assert await declared.cost(portrait) == 600_000 and await declared.cost(wan) == 100_000

    async def refunded():
        return len(await declared.ledger(key.id)) == 5

    await await_for(refunded, timeout=60, what="the cancelled task's refund")
    assert (await declared.ledger(key.id))[4] == (big, "refund", 3_200_000)
    balance = (await declared.services.accounts.get(key.id)).balance_micro
    assert balance == 10_000_000 - 600_000 - 100_000
    usage = (await declared.get("/v1/account/usage", key=secret)).json()["data"]
    assert sorted((u["model"], u["tasks_completed"], u["cost_micro"]) for u in usage) == [
        ("veo-3.1", 1, 600_000), ("wan-2.2", 1, 100_000)]


async def _is_settled(declared: Client, task_id: str) -> bool:
    return await declared.cost(task_id) is not None


class _Waiter:
    """The shape helpers_async.wait_completed expects (client + headers)."""

    def __init__(self, declared: Client) -> None:
        self.client = declared.http
        self.headers = declared.headers
