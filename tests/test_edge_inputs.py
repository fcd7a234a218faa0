"""Inputs refused at the edge with a clear 4xx, never a 500 (issue 15, "also found" included).

Integers past 64 bits, NUL characters, over-long digit strings and headers, contradicting
length fields, a reused Idempotency-Key with another request, 405s, the 413's wording and a
JSON body under a form Content-Type (what `curl -d` sends).
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from support import in_ci
from test_videos_validation import assert_nothing_written, assert_openai_error
from vidgate.app import create_app
from vidgate.config import Settings

ADMIN = "edge-admin-token"
INT64_EDGES = [str(2**63), str(-(2**63) - 1), str(10**30), "-" + "9" * 30]
CREATES = ["/v1/videos", "/v1/video/generations", "/v1/video/create"]


def error(response) -> dict:
    body = response.json()
    return body["error"]


@pytest.fixture
async def edge(settings: Settings):
    app = create_app(dataclasses.replace(settings, run_engine=False, admin_token=ADMIN))
    async with app.lifespan():
        _, key = await app.services.db.create_key("edge")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t",
                                     headers={"Authorization": f"Bearer {key}"}) as client:
            yield client


@pytest.mark.parametrize("value", INT64_EDGES)
@pytest.mark.parametrize("param", ["since", "until"])
@pytest.mark.parametrize("route", ["/v1/account/usage", "/admin/usage"])
async def test_usage_bounds_outside_64_bits_are_400_naming_the_param(edge, route, param, value):
    headers = {"Authorization": f"Bearer {ADMIN}"} if route.startswith("/admin") else {}
    r = await edge.get(route, params={param: value}, headers=headers)
    assert_openai_error(r, 400, "invalid_request", param, "invalid_request_error")
    assert f"'{param}'" in error(r)["message"]


@pytest.mark.parametrize("value", [str(2**63 - 1), str(-(2**63))])
async def test_usage_bounds_at_the_64_bit_edges_are_served(edge, value):
    r = await edge.get("/v1/account/usage", params={"since": value, "until": value})
    assert r.status_code == 200 and r.json() == {"object": "list", "data": []}


@pytest.mark.parametrize("path", CREATES)
async def test_contradicting_duration_and_seconds_are_400_naming_both(edge, path):
    body = {"prompt": "a cat", "model": "sora-2", "duration": 4, "seconds": "8"}
    r = await edge.post(path, json=body)
    assert r.status_code == 400, r.text
    message = error(r)["message"]
    assert "'duration'" in message and "'seconds'" in message
    assert error(r)["code"] == "invalid_duration"
    agreeing = await edge.post(path, json={**body, "seconds": "4s"})
    assert agreeing.status_code == 200, agreeing.text


async def test_idempotency_key_with_another_request_is_409(edge, settings):
    headers = {"Idempotency-Key": "order-7"}
    first = await edge.post("/v1/videos", json={"prompt": "a cat", "seconds": 8},
                            headers=headers)
    assert first.status_code == 200
    same = await edge.post("/v1/videos", json={"prompt": "a cat", "seconds": "8"},
                           headers=headers)  # the same request, spelled differently
    assert same.json()["id"] == first.json()["id"]
    other = await edge.post("/v1/videos", json={"prompt": "a dog", "seconds": 8},
                            headers=headers)
    assert_openai_error(other, 409, "idempotency_key_reused", "Idempotency-Key",
                        "invalid_request_error")
    listed = (await edge.get("/v1/videos")).json()["data"]
    assert [v["id"] for v in listed] == [first.json()["id"]]


async def test_idempotency_key_race_with_two_requests_gives_one_task_and_a_409(edge):
    headers = {"Idempotency-Key": "race"}
    answers = await asyncio.gather(*[
        edge.post("/v1/videos", json={"prompt": f"cat {i}"}, headers=headers)
        for i in range(4)])
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200, 409, 409, 409], [r.text for r in answers]
    assert len((await edge.get("/v1/videos")).json()["data"]) == 1


async def test_over_long_idempotency_key_is_400(edge):
    r = await edge.post("/v1/videos", json={"prompt": "a cat"},
                        headers={"Idempotency-Key": "k" * 256})
    assert_openai_error(r, 400, "invalid_request", "Idempotency-Key", "invalid_request_error")


async def test_405_is_an_invalid_request_error(edge):
    r = await edge.put("/v1/videos", json={})
    assert r.status_code == 405
    assert error(r)["type"] == "invalid_request_error"


async def test_413_names_the_configured_limit_in_mib(app_client):
    app_client.services.settings.max_upload_bytes = 512 * 1024
    r = await app_client.client.post(
        "/v1/videos", content=b'{"prompt": "' + b"a" * 2_000_000 + b'"}',
        headers={**app_client.headers(), "content-type": "application/json"})
    assert_openai_error(r, 413, "invalid_request", None, "invalid_request_error")
    assert "0.5 MiB" in error(r)["message"] and "bytes" not in error(r)["message"]
    r = await app_client.client.post(
        "/v1/videos", data={"prompt": "a cat"}, headers=app_client.headers(),
        files={"input_reference": ("x.png", b"\0" * 600_000, "image/png")})
    assert r.status_code == 413 and "0.5 MiB" in error(r)["message"]
    await assert_nothing_written(app_client)


@pytest.mark.parametrize("path", CREATES)
async def test_json_body_under_a_form_content_type_is_read_as_json(edge, path):
    """What `curl -d '{...}'` sends; twice, so the second request (its key now cached)
    also goes through whichever path answers it."""
    for _ in range(2):
        r = await edge.post(path, content=b' {"prompt": "a cat", "model": "sora-2"}',
                            headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 200, r.text
    form = await edge.post(path, data={"prompt": "a dog", "model": "sora-2"})
    assert form.status_code == 200, form.text  # a real url-encoded form still works


@pytest.mark.parametrize(("body", "param"), [
    ({"prompt": "a\x00cat"}, "prompt"),
    ({"prompt": "a cat", "seconds": "9" * 5000}, "seconds"),
    ({"prompt": "a cat", "size": "1" * 5000 + "x1"}, "size"),
    ({"prompt": "a cat", "size": "²x1"}, "size"),
    ({"prompt": "a cat", "aspect_ratio": "9" * 5000 + ":1"}, "aspect_ratio"),
    ({"prompt": "a cat", "model": "m" * 20_000}, "model"),
])
async def test_bad_text_and_digits_are_400(edge, body, param):
    r = await edge.post("/v1/videos", json=body)
    assert_openai_error(r, 400, error(r)["code"], param, "invalid_request_error")


@pytest.mark.parametrize("url", ["/v1/videos/abc%00", "/v1/videos?after=%00",
                                 "/v1/video/query?task_id=a%00b"])
async def test_nul_in_the_url_is_400(edge, url):
    r = await edge.get(url)
    assert r.status_code == 400 and "NUL" in r.text


@pytest.mark.parametrize(("path", "body", "param"), [
    ("/admin/keys", {"name": "a\x00b"}, "name"),
    ("/admin/keys", {"rpm_limit": 2**31}, "rpm_limit"),
    ("/admin/keys", {"balance_micro": 2**63}, "balance_micro"),
])
async def test_admin_bounds_are_400(edge, path, body, param):
    r = await edge.post(path, json=body, headers={"Authorization": f"Bearer {ADMIN}"})
    assert_openai_error(r, 400, "invalid_request", param, "invalid_request_error")


async def test_admin_top_up_past_bigint_is_400(edge):
    admin = {"Authorization": f"Bearer {ADMIN}"}
    key = (await edge.post("/admin/keys", json={"balance_micro": 0}, headers=admin)).json()
    for amount in (2**63, -(2**63) - 1, 10**16):
        r = await edge.post(f"/admin/keys/{key['id']}/topup", json={"amount_micro": amount},
                            headers=admin)
        assert_openai_error(r, 400, "invalid_request", "amount_micro", "invalid_request_error")


async def test_signed_url_with_a_unicode_digit_expiry_is_403(edge):
    r = await edge.get("/files/vid_x/video", params={"exp": "²", "sig": "x"})
    assert r.status_code == 403 and error(r)["code"] == "forbidden"


def test_ci_spellings(monkeypatch):
    for value, expected in [("true", True), ("1", True), ("yes", True), ("TRUE", True),
                            ("false", False), ("0", False), ("", False)]:
        monkeypatch.setenv("CI", value)
        assert in_ci() is expected
    script = Path(__file__).resolve().parents[1] / "scripts" / "test"
    rule = next(line for line in script.open() if line.startswith("is_ci()"))
    for value, expected in [("true", 0), ("1", 0), ("Yes", 0), ("false", 1), ("", 1)]:
        done = subprocess.run(["bash", "-c", rule + "\nis_ci"], env={"CI": value})
        assert done.returncode == expected, value


def test_curl_json_without_content_type(live_server):
    if shutil.which("curl") is None:
        if in_ci():
            pytest.fail("curl is not installed; CI must run the curl tests")
        pytest.skip("curl is not installed")
    done = subprocess.run(
        ["curl", "-sS", f"{live_server.api}/videos", "-H",
         f"Authorization: Bearer {live_server.key}", "-d", '{"prompt": "a cat", "seconds": "4"}'],
        capture_output=True, text=True, timeout=60, check=True)
    assert '"object":"video"' in done.stdout, done.stdout
