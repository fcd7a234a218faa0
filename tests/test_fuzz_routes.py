"""Fuzzing every route of the OpenAPI document: no input may produce a 5xx or a reset.

The route list is read from `gateway.api.openapi()` (tests/fuzz_cases.py), so a new route
is fuzzed without being listed here. Hypothesis runs derandomized (a fixed seed) with a
bounded number of cases: `VIDGATE_FUZZ_CASES` (default 5000) in-process through the ASGI
transport, which is where most bugs show and costs little CI time, then
`VIDGATE_FUZZ_LIVE_CASES` (default 400) against a real uvicorn server on one keep-alive
client, where a connection reset (an early answer the server closed on) would show.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings

from fuzz_cases import Case, cases, operations
from support import fresh_database_url, server_env, start_server
from vidgate.app import create_app
from vidgate.config import Settings

ADMIN = "fuzz-admin-token"
CASES = int(os.environ.get("VIDGATE_FUZZ_CASES", "5000"))
LIVE_CASES = int(os.environ.get("VIDGATE_FUZZ_LIVE_CASES", "400"))
MIN_PER_ROUTE = 20


def fuzz_settings(max_examples: int) -> hsettings:
    return hsettings(max_examples=max_examples, derandomize=True, deadline=None, database=None,
                     phases=[Phase.explicit, Phase.generate, Phase.shrink],
                     suppress_health_check=list(HealthCheck))


def credentials(key: str, other: str, revoked: str) -> dict[str, str]:
    return {"key": f"Bearer {key}", "other": f"Bearer {other}", "admin": f"Bearer {ADMIN}",
            "revoked": f"Bearer {revoked}", "unknown": "Bearer sk-unknown", "none": "",
            "basic": "Basic eDp5"}


def real_ids(task_id: str, key_id: str) -> dict[str, list[str]]:
    return {"video_id": [task_id], "task_id": [task_id], "key_id": [key_id],
            "model_id": ["sora-2"], "variant": ["video", "thumbnail"]}


def check(case: Case, response: httpx.Response) -> None:
    assert response.status_code < 500, (
        f"{case.method} {case.url} -> {response.status_code}: {response.text[:500]}")


def check_coverage(document: dict, seen: Counter, least: int) -> None:
    missing = {(m, p): seen[(m, p)] for m, p, _ in operations(document) if seen[(m, p)] < least}
    assert not missing, f"routes fuzzed fewer than {least} times: {missing}"


def test_fuzz_every_route_in_process(settings: Settings) -> None:
    settings = dataclasses.replace(settings, run_engine=False, admin_token=ADMIN)
    app = create_app(settings)
    document = app.api.openapi()
    ops = operations(document)
    seen: Counter = Counter()
    with asyncio.Runner() as runner:
        stack = AsyncExitStack()
        runner.run(stack.enter_async_context(app.lifespan()))
        try:
            db = app.services.db
            _, key = runner.run(db.create_key("fuzz"))
            _, other = runner.run(db.create_key("other"))
            revoked_key, revoked = runner.run(db.create_key("revoked"))
            runner.run(db.revoke_key(revoked_key.id))
            victim, _ = runner.run(db.create_key("victim"))
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                       base_url="http://testserver")
            stack.push_async_callback(client.aclose)
            created = runner.run(client.post("/v1/videos", json={"prompt": "a cat"},
                                              headers={"Authorization": f"Bearer {key}"}))
            assert created.status_code == 200, created.text

            @fuzz_settings(CASES)
            @given(cases(ops, credentials(key, other, revoked),
                         real_ids(created.json()["id"], victim.id)))
            def fuzz(case: Case) -> None:
                seen[(case.method, case.path)] += 1
                check(case, runner.run(client.request(case.method, case.url,
                                                      **case.request_kwargs())))

            fuzz()
        finally:
            runner.run(stack.aclose())
    assert sum(seen.values()) >= CASES
    check_coverage(document, seen, min(MIN_PER_ROUTE, CASES // (4 * len(ops))))


def test_fuzz_live_server_never_resets(tmp_path: Path) -> None:
    url, cleanup = fresh_database_url(tmp_path)
    server = start_server(server_env(tmp_path / "data", url, VIDGATE_ROLE="api",
                                     VIDGATE_ADMIN_TOKEN=ADMIN))
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            document = client.get("/openapi.json").json()
            other = server.new_key("other")
            admin = {"Authorization": f"Bearer {ADMIN}"}
            revoked = client.post("/admin/keys", json={"name": "revoked"}, headers=admin).json()
            client.post(f"/admin/keys/{revoked['id']}/revoke", headers=admin)
            victim = client.post("/admin/keys", json={"name": "victim"}, headers=admin).json()
            created = client.post("/v1/videos", json={"prompt": "a cat"},
                                  headers=server.headers())
            assert created.status_code == 200, created.text
            seen: Counter = Counter()
            resets: list[str] = []

            @fuzz_settings(LIVE_CASES)
            @given(cases(operations(document),
                         credentials(server.key, other, revoked["key"]),
                         real_ids(created.json()["id"], victim["id"])))
            def fuzz(case: Case) -> None:
                seen[(case.method, case.path)] += 1
                try:
                    response = client.request(case.method, case.url, **case.request_kwargs())
                except httpx.TransportError as exc:  # reset, closed mid-answer, ...
                    resets.append(f"{case.method} {case.url}: {exc!r}")
                    raise
                check(case, response)

            fuzz()
            assert not resets
            assert sum(seen.values()) >= LIVE_CASES
            assert client.get("/healthz").status_code == 200
    finally:
        server.stop()
        cleanup()
