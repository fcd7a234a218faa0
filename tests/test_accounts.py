"""Credits, holds and settlement through the HTTP API; allow-lists; per-key limits."""

from __future__ import annotations

import sqlalchemy as sa

from helpers_async import create, wait_completed
from support import await_for
from vidgate.store.schema import ledger, tasks


async def _ledger(app_client, key_id):
    async with app_client.services.db.engine.connect() as conn:
        rows = (await conn.execute(sa.select(ledger.c.task_id, ledger.c.kind,
                                             ledger.c.amount_micro)
                                   .where(ledger.c.key_id == key_id)
                                   .order_by(ledger.c.id))).all()
    return [tuple(r) for r in rows]


async def _key(app_client, **settings):
    key, secret = await app_client.services.db.create_key("billing", **settings)
    return key, secret


async def _balance(app_client, key_id):
    return (await app_client.services.accounts.get(key_id)).balance_micro


async def test_hold_then_settle_on_completion(app_client):
    key, secret = await _key(app_client, balance_micro=1_000_000)
    video = await create(app_client, key=secret, size="720x720", seconds="4")
    # sora-2 at 720p: 0.10 USD per second, 4 seconds held up front
    assert await _balance(app_client, key.id) == 600_000
    await wait_completed(app_client, video["id"], key=secret)
    await await_for(lambda: _settled(app_client, video["id"]), what="settlement")
    assert await _balance(app_client, key.id) == 600_000  # delivered exactly what was held
    assert await _ledger(app_client, key.id) == [
        (None, "topup", 1_000_000), (video["id"], "hold", -400_000)]
    assert await app_client.services.accounts.ledger_sum(key.id) == 600_000
    account = (await app_client.client.get("/v1/account",
                                           headers=app_client.headers(secret))).json()
    assert account["balance_micro"] == 600_000 and account["balance_usd"] == 0.6
    usage = (await app_client.client.get("/v1/account/usage",
                                         headers=app_client.headers(secret))).json()["data"]
    assert [(u["model"], u["tasks_completed"], u["cost_micro"]) for u in usage] == [
        ("sora-2", 1, 400_000)]
    assert abs(usage[0]["seconds_delivered"] - 4) < 0.15


async def _settled(app_client, task_id):
    async with app_client.services.db.engine.connect() as conn:
        cost = (await conn.execute(sa.select(tasks.c.cost_micro)
                                   .where(tasks.c.id == task_id))).scalar()
    return cost is not None


async def test_insufficient_quota_writes_nothing(app_client):
    key, secret = await _key(app_client, balance_micro=399_999)
    for path, body in [("/v1/videos", {"prompt": "x", "size": "720x720", "seconds": "4"}),
                       ("/v1/video/generations", {"model": "sora-2", "prompt": "x",
                                                  "size": "720x720", "duration": 4})]:
        r = await app_client.client.post(path, json=body, headers=app_client.headers(secret))
        assert r.status_code == 402, r.text
        error = r.json()["error"]
        assert error["code"] == "insufficient_quota" and error["type"] == "insufficient_quota"
        if path.startswith("/v1/video/"):
            assert r.json()["code"] == "insufficient_quota" and r.json()["data"] is None
    assert await app_client.count_tasks() == 0
    assert await _balance(app_client, key.id) == 399_999
    assert await _ledger(app_client, key.id) == [(None, "topup", 399_999)]


async def test_delete_of_unfinished_task_refunds_once(app_client):
    key, secret = await _key(app_client, balance_micro=2_000_000)
    video = await create(app_client, key=secret, size="1280x720", seconds="20")
    assert await _balance(app_client, key.id) == 0
    r = await app_client.client.delete(f"/v1/videos/{video['id']}",
                                       headers=app_client.headers(secret))
    assert r.status_code == 200

    async def refunded():
        return len(await _ledger(app_client, key.id)) == 3

    await await_for(refunded, timeout=60, what="the cancellation to be settled")
    assert await _balance(app_client, key.id) == 2_000_000
    assert await _ledger(app_client, key.id) == [
        (None, "topup", 2_000_000), (video["id"], "hold", -2_000_000),
        (video["id"], "refund", 2_000_000)]
    assert await app_client.services.db.events(video["id"]) == [(video["id"], "failed")]


async def test_model_allow_list_is_403(app_client):
    key, secret = await _key(app_client, allowed_models=["sora-2"])
    r = await app_client.client.post("/v1/videos", json={"prompt": "x", "model": "sora-2-pro"},
                                     headers=app_client.headers(secret))
    assert r.status_code == 403
    assert r.json()["error"] == {"message": r.json()["error"]["message"],
                                 "type": "permission_error", "param": "model",
                                 "code": "forbidden"}
    r = await app_client.client.post("/v1/video/create",
                                      json={"prompt": "x", "model": "sora-2-pro"},
                                      headers=app_client.headers(secret))
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert await app_client.count_tasks() == 0
    ok = await app_client.client.post("/v1/videos", json={"prompt": "x", "model": "sora-2"},
                                      headers=app_client.headers(secret))
    assert ok.status_code == 200


async def test_concurrent_task_limit_is_429(app_client):
    app_client.services.engine.stop()
    _, secret = await _key(app_client, max_concurrent=2)
    for _ in range(2):
        await create(app_client, key=secret)
    r = await app_client.client.post("/v1/videos", json={"prompt": "third"},
                                     headers=app_client.headers(secret))
    assert r.status_code == 429 and r.headers["retry-after"].isdigit()
    assert r.json()["error"]["code"] == "rate_limited"
    assert r.json()["error"]["type"] == "rate_limit_error"
    assert await app_client.count_tasks() == 2


async def test_requests_per_minute_limit_is_429(app_client):
    _, secret = await _key(app_client, rpm_limit=3)
    codes = [(await app_client.client.get("/v1/videos", headers=app_client.headers(secret)))
             for _ in range(4)]
    assert [r.status_code for r in codes] == [200, 200, 200, 429]
    assert 1 <= int(codes[-1].headers["retry-after"]) <= 60
    r = await app_client.client.get("/v1/video/query?task_id=video_x",
                                    headers=app_client.headers(secret))
    assert r.status_code == 429 and r.json()["code"] == "rate_limited"
    # another key is not affected
    assert (await app_client.client.get("/v1/videos",
                                        headers=app_client.headers())).status_code == 200


def test_overage_policy_setting(monkeypatch, tmp_path):
    import pytest

    from vidgate.config import load_settings

    monkeypatch.setenv("VIDGATE_DATA_DIR", str(tmp_path))
    assert load_settings().charge_overage is False
    monkeypatch.setenv("VIDGATE_OVERAGE_POLICY", "charge")
    assert load_settings().charge_overage is True
    monkeypatch.setenv("VIDGATE_OVERAGE_POLICY", "sometimes")
    with pytest.raises(SystemExit, match="VIDGATE_OVERAGE_POLICY"):
        load_settings()
