"""Middleware added with `Gateway.add_middleware` (app.py) wraps both paths: the fast path
(api/hot_routes.py) and FastAPI's routes. A spy on `HotRoutes.answer` records which path
served each request, so the test cannot pass with every request on one path."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class CountingMiddleware:
    """Counts HTTP requests and stamps each answer with its number, as a request-id or
    metrics middleware would."""

    def __init__(self, app: ASGIApp, seen: list[str]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.seen.append(f"{scope['method']} {scope['path']}")
        number = str(len(self.seen)).encode()

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], (b"x-seen", number)]}
            await send(message)

        await self.app(scope, receive, stamped)


async def test_middleware_sees_requests_of_both_paths(app_client):
    hot = app_client.app.hot_routes
    answered: list[bool] = []
    original = hot.answer

    async def spy(scope, receive, send):
        done = await original(scope, receive, send)
        answered.append(done)
        return done

    hot.answer = spy
    seen: list[str] = []
    app_client.app.add_middleware(CountingMiddleware, seen=seen)
    client, headers = app_client.client, app_client.headers()
    app_client.services.key_cache.clear()

    created = await client.post("/v1/video/create", json={"model": "sora-2", "prompt": "a cat"},
                                headers=headers)                           # key not cached yet
    task_id = created.json()["id"]
    read = await client.get(f"/v1/video/query?task_id={task_id}", headers=headers)
    again = await client.post("/v1/videos", json={"model": "sora-2", "prompt": "a dog"},
                              headers=headers)
    multipart = await client.post("/v1/videos", data={"model": "sora-2", "prompt": "a cow"},
                                  files={"unused": ("a.txt", b"x", "text/plain")},
                                  headers=headers)
    unknown = await client.get(f"/v1/videos/{task_id}",
                               headers={"Authorization": "Bearer sk-vg-nope"})
    health = await client.get("/healthz")

    answers = [created, read, again, multipart, unknown, health]
    assert [r.status_code for r in answers] == [200, 200, 200, 200, 401, 200]
    assert answered == [False, True, True, False, False, False]
    assert seen == ["POST /v1/video/create", "GET /v1/video/query", "POST /v1/videos",
                    "POST /v1/videos", f"GET /v1/videos/{task_id}", "GET /healthz"]
    assert [r.headers["x-seen"] for r in answers] == ["1", "2", "3", "4", "5", "6"]


async def test_the_last_middleware_added_runs_first(app_client):
    order: list[str] = []

    def named(name: str):
        class Named:
            def __init__(self, app: ASGIApp) -> None:
                self.app = app

            async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
                order.append(name)
                await self.app(scope, receive, send)
        return Named

    app_client.app.add_middleware(named("inner"))
    app_client.app.add_middleware(named("outer"))
    r = await app_client.client.get("/healthz")
    assert r.status_code == 200 and order == ["outer", "inner"]
