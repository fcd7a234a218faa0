"""The admin API and the CLI offer every account operation; wrong tokens get 401/403."""

from __future__ import annotations

import json
import subprocess

import pytest

from helpers_async import create, wait_completed
from support import fresh_database_url, server_env, vidgate_cmd

ADMIN = {"Authorization": "Bearer admin-secret"}


@pytest.fixture
async def admin_client(app_client):
    app_client.services.settings.admin_token = "admin-secret"
    return app_client


async def test_wrong_tokens(admin_client):
    c = admin_client.client
    assert (await c.get("/admin/keys")).status_code == 401
    r = await c.get("/admin/keys", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"
    # a user's API key is not an admin token
    assert (await c.get("/admin/keys", headers=admin_client.headers())).status_code == 403
    admin_client.services.settings.admin_token = None
    r = await c.get("/admin/keys", headers=ADMIN)
    assert r.status_code == 403 and "disabled" in r.json()["error"]["message"]


async def test_key_lifecycle_topup_limits_webhook_usage_ledger(admin_client):
    c = admin_client.client
    r = await c.post("/admin/keys", headers=ADMIN, json={
        "name": "customer", "balance_micro": 1_000_000, "rpm_limit": 100,
        "max_concurrent": 3, "allowed_models": ["sora-2"],
        "webhook_url": "http://127.0.0.1:9/hook"})
    assert r.status_code == 201, r.text
    created = r.json()
    secret, key_id = created["key"], created["id"]
    assert created["balance_micro"] == 1_000_000 and created["webhook_secret"].startswith("whsec_")
    listed = (await c.get("/admin/keys", headers=ADMIN)).json()["data"]
    assert key_id in {k["id"] for k in listed}
    assert all("key" not in k for k in listed)

    r = await c.post(f"/admin/keys/{key_id}/topup", headers=ADMIN,
                     json={"amount_micro": 500_000, "note": "invoice 7"})
    assert r.json() == {"key_id": key_id, "balance_micro": 1_500_000}
    r = await c.post(f"/admin/keys/{key_id}/topup", headers=ADMIN,
                     json={"amount_micro": -9_000_000})
    assert r.status_code == 400 and r.json()["error"]["param"] == "amount_micro"

    r = await c.patch(f"/admin/keys/{key_id}", headers=ADMIN,
                      json={"allowed_models": ["sora-2", "sora-2-pro"], "rpm_limit": 50,
                            "rotate_webhook_secret": True})
    assert r.status_code == 200
    updated = r.json()
    assert updated["allowed_models"] == ["sora-2", "sora-2-pro"]
    assert updated["rpm_limit"] == 50
    assert updated["webhook_secret"] != created["webhook_secret"]
    bad = await c.patch(f"/admin/keys/{key_id}", headers=ADMIN,
                        json={"allowed_models": ["sora-9"]})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "model_not_found"
    bad = await c.patch(f"/admin/keys/{key_id}", headers=ADMIN, json={"rpm_limit": 0})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "rpm_limit"
    bad = await c.patch(f"/admin/keys/{key_id}", headers=ADMIN, json={"colour": "red"})
    assert bad.status_code == 400
    # a null name clears it (PostgreSQL refused the NULL with a 500; schemathesis found it)
    r = await c.patch(f"/admin/keys/{key_id}", headers=ADMIN, json={"name": None})
    assert r.status_code == 200 and r.json()["name"] == ""
    assert (await c.get("/admin/keys/key_missing", headers=ADMIN)).status_code == 404

    video = await create(admin_client, key=secret)
    # 50 requests a minute: poll at a pace the key's own limit allows, however slow the render
    await wait_completed(admin_client, video["id"], key=secret, interval=1.5)
    usage = (await c.get(f"/admin/usage?key_id={key_id}", headers=ADMIN)).json()["data"]
    assert [(u["key_id"], u["model"], u["tasks_completed"]) for u in usage] == [
        (key_id, "sora-2", 1)]
    rows = (await c.get(f"/admin/ledger?key_id={key_id}", headers=ADMIN)).json()["data"]
    assert [r["kind"] for r in rows] == ["hold", "topup", "topup"]  # newest first
    assert sum(r["amount_micro"] for r in rows) == 1_100_000

    r = await c.post(f"/admin/keys/{key_id}/revoke", headers=ADMIN)
    assert r.json()["revoked_at"] is not None
    assert (await c.get("/v1/videos", headers=admin_client.headers(secret))).status_code == 401


def test_cli_account_operations(tmp_path):
    url, cleanup = fresh_database_url(tmp_path)
    env = server_env(tmp_path / "data", url)

    def run(*args, check=True):
        return subprocess.run(vidgate_cmd(*args), env=env, capture_output=True, text=True,
                              check=check, timeout=120)

    try:
        out = run("keys", "create", "--name", "cli", "--balance-usd", "2.5", "--rpm", "30",
                  "--max-concurrent", "2", "--models", "sora-2",
                  "--webhook-url", "http://127.0.0.1:9/h").stdout.splitlines()
        key_id = out[0].split()[1]
        assert out[1].startswith("webhook secret: whsec_")
        assert out[-1].startswith("sk-vg-")
        shown = json.loads(run("keys", "show", key_id).stdout)
        assert shown["balance_micro"] == 2_500_000 and shown["rpm_limit"] == 30
        assert shown["allowed_models"] == ["sora-2"] and shown["max_concurrent"] == 2
        assert run("keys", "topup", key_id, "1.25", "--note", "cli").stdout.strip() == \
            "balance 3.750000 USD"
        refused = run("keys", "topup", key_id, "--", "-10", check=False)
        assert refused.returncode == 1 and "below zero" in refused.stderr
        changed = json.loads(run("keys", "set", key_id, "--rpm", "0", "--models", "all",
                                 "--webhook-url", "none").stdout)
        assert changed["rpm_limit"] is None and changed["allowed_models"] is None
        assert changed["webhook_url"] is None
        rows = [json.loads(line) for line in run("ledger", "--key", key_id).stdout.splitlines()]
        assert [(r["kind"], r["amount_micro"]) for r in rows] == [
            ("topup", 1_250_000), ("topup", 2_500_000)]
        assert run("usage", "--key", key_id).stdout == ""  # nothing finished yet
        assert run("keys", "show", "key_nope", check=False).returncode == 1
    finally:
        cleanup()
