"""Family A rejections: right status, OpenAI's error body naming `param`, nothing written."""

from __future__ import annotations

import base64

import pytest


def assert_openai_error(response, status: int, code: str, param: str | None, type_: str):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    assert error["param"] == param
    assert error["type"] == type_
    assert error["message"]


async def assert_nothing_written(app_client):
    assert await app_client.count_tasks() == 0
    assert app_client.blob_files() == []


async def test_missing_key_is_401(app_client):
    r = await app_client.client.post("/v1/videos", json={"prompt": "x"})
    assert_openai_error(r, 401, "invalid_api_key", None, "authentication_error")
    await assert_nothing_written(app_client)


async def test_unknown_key_is_401(app_client):
    r = await app_client.client.get("/v1/videos", headers=app_client.headers("sk-vg-nope"))
    assert_openai_error(r, 401, "invalid_api_key", None, "authentication_error")


async def test_revoked_key_is_401(app_client):
    secret = await app_client.new_key("to revoke")
    assert await app_client.services.db.revoke_key(secret)
    r = await app_client.client.post("/v1/videos", json={"prompt": "x"},
                                     headers=app_client.headers(secret))
    assert_openai_error(r, 401, "invalid_api_key", None, "authentication_error")
    assert "revoked" in r.json()["error"]["message"]
    await assert_nothing_written(app_client)


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"prompt": "a cat", "model": "sora-9"}, 404, "model_not_found", "model"),
        ({"prompt": "a cat", "size": "640x480"}, 400, "invalid_size", "size"),
        ({"prompt": "a cat", "size": "big"}, 400, "invalid_size", "size"),
        ({"prompt": "a cat", "size": "1792x1024"}, 400, "invalid_size", "size"),
        ({"prompt": "a cat", "seconds": "7"}, 400, "invalid_duration", "seconds"),
        ({"prompt": "a cat", "seconds": "four"}, 400, "invalid_duration", "seconds"),
        ({"prompt": "a cat", "duration": 3}, 400, "invalid_duration", "duration"),
        ({"prompt": "a cat", "seconds": True}, 400, "invalid_duration", "seconds"),
        ({"model": "sora-2"}, 400, "invalid_request", "prompt"),
        ({"prompt": "   "}, 400, "invalid_request", "prompt"),
        ({"prompt": 5}, 400, "invalid_request", "prompt"),
        ({"prompt": "x" * 32001}, 400, "invalid_request", "prompt"),
        ({"prompt": "a cat", "size": "1280x720", "aspect_ratio": "9:16"}, 400, "invalid_size",
         "aspect_ratio"),
        ({"prompt": "a cat", "aspect_ratio": "4:3"}, 400, "invalid_size", "aspect_ratio"),
        ({"prompt": "a cat", "model": 7}, 400, "invalid_request", "model"),
        ({"prompt": "a cat", "input_reference": {"image_url": "data:image/png;base64,AAAA"}},
         400, "invalid_image", "input_reference"),
        ({"prompt": "a cat", "input_reference": "ftp://example.com/a.png"},
         400, "invalid_image", "input_reference"),
        ({"prompt": "a cat", "image_url": 12}, 400, "invalid_image", "image_url"),
    ],
)
async def test_bad_create_json(app_client, body, status, code, param):
    r = await app_client.client.post("/v1/videos", json=body, headers=app_client.headers())
    assert_openai_error(r, status, code, param,
                        "invalid_request_error" if status != 404 else "invalid_request_error")
    await assert_nothing_written(app_client)


async def test_malformed_json_is_400(app_client):
    r = await app_client.client.post(
        "/v1/videos", content=b'{"prompt": ', headers={**app_client.headers(),
                                                      "content-type": "application/json"})
    assert_openai_error(r, 400, "invalid_request", None, "invalid_request_error")
    assert "JSON" in r.json()["error"]["message"]
    await assert_nothing_written(app_client)


async def test_json_array_body_is_400(app_client):
    r = await app_client.client.post("/v1/videos", json=["prompt"], headers=app_client.headers())
    assert_openai_error(r, 400, "invalid_request", None, "invalid_request_error")


async def test_unsupported_content_type_is_415(app_client):
    r = await app_client.client.post(
        "/v1/videos", content=b"prompt=x", headers={**app_client.headers(),
                                                    "content-type": "text/plain"})
    assert_openai_error(r, 415, "invalid_request", None, "invalid_request_error")
    await assert_nothing_written(app_client)


async def test_oversized_upload_is_413(app_client):
    app_client.services.settings.max_upload_bytes = 1000
    r = await app_client.client.post(
        "/v1/videos", data={"prompt": "a cat"},
        files={"input_reference": ("big.png", b"\0" * 5000, "image/png")},
        headers=app_client.headers())
    assert_openai_error(r, 413, "invalid_request", "input_reference", "invalid_request_error")
    await assert_nothing_written(app_client)


async def test_undecodable_upload_is_invalid_image(app_client):
    r = await app_client.client.post(
        "/v1/videos", data={"prompt": "a cat"},
        files={"input_reference": ("x.png", b"not an image at all", "image/png")},
        headers=app_client.headers())
    assert_openai_error(r, 400, "invalid_image", "input_reference", "invalid_request_error")
    await assert_nothing_written(app_client)


async def test_bad_data_url_base64(app_client):
    junk = "data:image/png;base64," + base64.b64encode(b"garbage").decode()
    r = await app_client.client.post("/v1/videos", json={"prompt": "a", "image_url": junk},
                                     headers=app_client.headers())
    assert_openai_error(r, 400, "invalid_image", "image_url", "invalid_request_error")
    await assert_nothing_written(app_client)


@pytest.mark.parametrize(
    ("query", "param"), [("limit=0", "limit"), ("limit=101", "limit"), ("limit=x", "limit"),
                         ("order=sideways", "order")])
async def test_bad_list_params(app_client, query, param):
    r = await app_client.client.get(f"/v1/videos?{query}", headers=app_client.headers())
    assert_openai_error(r, 400, "invalid_request", param, "invalid_request_error")


async def test_unknown_video_is_404_everywhere(app_client):
    h = app_client.headers()
    missing = "video_" + "0" * 32
    for method, path, kwargs in [
        ("GET", f"/v1/videos/{missing}", {}),
        ("DELETE", f"/v1/videos/{missing}", {}),
        ("GET", f"/v1/videos/{missing}/content", {}),
        ("POST", f"/v1/videos/{missing}/remix", {"json": {"prompt": "again"}}),
    ]:
        r = await app_client.client.request(method, path, headers=h, **kwargs)
        assert_openai_error(r, 404, "video_not_found", None, "not_found_error")
    await assert_nothing_written(app_client)


async def test_bad_variant_is_400(app_client):
    r = await app_client.client.post("/v1/videos", json={"prompt": "a cat"},
                                     headers=app_client.headers())
    vid = r.json()["id"]
    r = await app_client.client.get(f"/v1/videos/{vid}/content?variant=poster",
                                    headers=app_client.headers())
    assert_openai_error(r, 400, "invalid_request", "variant", "invalid_request_error")


async def test_content_before_completion_is_video_not_ready(app_client):
    app_client.services.engine.stop()  # keep the task queued
    r = await app_client.client.post("/v1/videos", json={"prompt": "a cat"},
                                     headers=app_client.headers())
    vid = r.json()["id"]
    r = await app_client.client.get(f"/v1/videos/{vid}/content", headers=app_client.headers())
    assert_openai_error(r, 400, "video_not_ready", "video_id", "invalid_request_error")
    r = await app_client.client.post(f"/v1/videos/{vid}/remix", json={"prompt": "again"},
                                     headers=app_client.headers())
    assert_openai_error(r, 400, "video_not_ready", "video_id", "invalid_request_error")
    assert await app_client.count_tasks() == 1


async def test_unknown_route_is_404_json(app_client):
    r = await app_client.client.get("/v1/nothing-here", headers=app_client.headers())
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "not_found_error"


async def test_oversized_json_body_is_413(app_client):
    app_client.services.settings.max_upload_bytes = 3000  # JSON limit: 4000 + 1 MiB
    huge = {"prompt": "a cat", "image_url": "data:image/png;base64," + "A" * (2 * 1024 * 1024)}
    r = await app_client.client.post("/v1/videos", json=huge, headers=app_client.headers())
    assert_openai_error(r, 413, "invalid_request", None, "invalid_request_error")
    r = await app_client.client.post("/v1/video/generations", json={**huge, "model": "sora-2"},
                                     headers=app_client.headers())
    assert r.status_code == 413 and r.json()["code"] == "invalid_request"

    async def chunked():  # no Content-Length: the cap applies while reading
        yield b'{"prompt": "a cat", "pad": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    r = await app_client.client.post("/v1/videos", content=chunked(), headers={
        **app_client.headers(), "content-type": "application/json"})
    assert r.status_code == 413
    await assert_nothing_written(app_client)
