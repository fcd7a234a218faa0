"""Families B (`/v1/video/generations`) and C (`/v1/video/create|query`): one test per error
code, checking the HTTP status, both body shapes (gateway envelope + OpenAI object) and that
nothing was written. Codes with no trigger yet are pinned through the renderer itself."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from vidgate.api.errors import error_body, error_response
from vidgate.errors import ApiError

GEN = "/v1/video/generations"
CREATE = "/v1/video/create"
QUERY = "/v1/video/query"
MISSING = "video_" + "0" * 32
JUNK_IMAGE = "data:image/png;base64," + base64.b64encode(b"not an image").decode()


def assert_envelope(response, status: int, code: str, param: str | None, type_: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "data", "error"}
    assert body["code"] == code
    assert body["data"] is None
    assert isinstance(body["message"], str) and body["message"]
    assert body["error"] == {"message": body["message"], "type": type_, "param": param,
                             "code": code}
    return body


async def assert_nothing_written(app_client) -> None:
    assert await app_client.count_tasks() == 0
    assert app_client.blob_files() == []


async def post(app_client, path: str, body, **kwargs):
    return await app_client.client.post(path, json=body, headers=app_client.headers(), **kwargs)


# ---- task_not_exist ------------------------------------------------------------------------

@pytest.mark.parametrize("path", [f"{GEN}/{MISSING}", f"{QUERY}?task_id={MISSING}",
                                  f"{QUERY}?id={MISSING}", f"{GEN}/not-even-an-id"])
async def test_unknown_task_is_404_task_not_exist(app_client, path):
    r = await app_client.client.get(path, headers=app_client.headers())
    assert_envelope(r, 404, "task_not_exist", None, "not_found_error")
    await assert_nothing_written(app_client)


# ---- unauthorized --------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path"), [
    ("POST", GEN), ("GET", f"{GEN}/{MISSING}"), ("POST", CREATE), ("GET", f"{QUERY}?id=x"),
])
@pytest.mark.parametrize("auth", [None, "Bearer sk-vg-wrong", "Basic abc"])
async def test_missing_or_wrong_key_is_401_unauthorized(app_client, method, path, auth):
    headers = {"Authorization": auth} if auth else {}
    body = {"model": "sora-2", "prompt": "a cat"} if method == "POST" else None
    r = await app_client.client.request(method, path, json=body, headers=headers)
    assert_envelope(r, 401, "unauthorized", None, "authentication_error")
    await assert_nothing_written(app_client)


async def test_revoked_key_is_401_unauthorized(app_client):
    secret = await app_client.new_key("revoked")
    assert await app_client.services.db.revoke_key(secret)
    r = await app_client.client.post(GEN, json={"model": "sora-2", "prompt": "a cat"},
                                     headers=app_client.headers(secret))
    body = assert_envelope(r, 401, "unauthorized", None, "authentication_error")
    assert "revoked" in body["message"]
    await assert_nothing_written(app_client)


# ---- invalid_request -----------------------------------------------------------------------

@pytest.mark.parametrize(("path", "body", "param"), [
    (GEN, {"prompt": "a cat"}, "model"),                          # model is required on B
    (GEN, {"model": "", "prompt": "a cat"}, "model"),
    (GEN, {"model": "sora-2"}, "prompt"),
    (GEN, {"model": "sora-2", "prompt": "  "}, "prompt"),
    (GEN, {"model": "sora-2", "prompt": "a cat", "n": 2}, "n"),
    (GEN, {"model": "sora-2", "prompt": "a cat", "metadata": [1]}, "metadata"),
    (GEN, {"model": 7, "prompt": "a cat"}, "model"),
    (CREATE, {"model": "sora-2"}, "prompt"),
    (CREATE, {"prompt": "x" * 32001}, "prompt"),
    (CREATE, {"prompt": "a cat", "n": "3"}, "n"),
])
async def test_bad_fields_are_400_invalid_request(app_client, path, body, param):
    r = await post(app_client, path, body)
    assert_envelope(r, 400, "invalid_request", param, "invalid_request_error")
    await assert_nothing_written(app_client)


@pytest.mark.parametrize("path", [GEN, CREATE])
@pytest.mark.parametrize("raw", [b'{"model": "sora-2", ', b"[1, 2]", b""])
async def test_malformed_json_is_400_invalid_request(app_client, path, raw):
    headers = {**app_client.headers(), "content-type": "application/json"}
    r = await app_client.client.post(path, content=raw, headers=headers)
    assert_envelope(r, 400, "invalid_request", None, "invalid_request_error")
    await assert_nothing_written(app_client)


@pytest.mark.parametrize("path", [GEN, CREATE])
async def test_unsupported_content_type_is_415_invalid_request(app_client, path):
    headers = {**app_client.headers(), "content-type": "text/plain"}
    r = await app_client.client.post(path, content=b"prompt=a cat", headers=headers)
    assert_envelope(r, 415, "invalid_request", None, "invalid_request_error")
    await assert_nothing_written(app_client)


@pytest.mark.parametrize("query", ["", "?task_id=", "?other=1"])
async def test_query_without_task_id_is_400_invalid_request(app_client, query):
    r = await app_client.client.get(QUERY + query, headers=app_client.headers())
    assert_envelope(r, 400, "invalid_request", "task_id", "invalid_request_error")


# ---- model_not_found: 400 on these families (404 on /v1/videos) ---------------------------

@pytest.mark.parametrize("path", [GEN, CREATE])
async def test_unknown_model_is_400_model_not_found(app_client, path):
    r = await post(app_client, path, {"model": "sora-9", "prompt": "a cat"})
    body = assert_envelope(r, 400, "model_not_found", "model", "invalid_request_error")
    assert "sora-2" in body["message"]  # says what is available
    await assert_nothing_written(app_client)


# ---- invalid_size --------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "body", "param"), [
    (GEN, {"size": "640x480"}, "size"),
    (GEN, {"size": "huge"}, "size"),
    (GEN, {"size": "1792x1024"}, "size"),                 # sora-2-pro only
    (GEN, {"width": 640, "height": 480}, "size"),        # catalog names the unsupported size
    (GEN, {"width": "wide", "height": 720}, "width"),
    (GEN, {"aspect_ratio": "4:3"}, "aspect_ratio"),
    (CREATE, {"aspect_ratio": "21:9"}, "aspect_ratio"),
    (CREATE, {"size": "1280x720", "aspect_ratio": "9:16"}, "aspect_ratio"),
    (CREATE, {"size": "1x1"}, "size"),
])
async def test_bad_size_is_400_invalid_size(app_client, path, body, param):
    r = await post(app_client, path, {"model": "sora-2", "prompt": "a cat", **body})
    assert_envelope(r, 400, "invalid_size", param, "invalid_request_error")
    await assert_nothing_written(app_client)


# ---- invalid_duration ----------------------------------------------------------------------

@pytest.mark.parametrize(("path", "body", "param"), [
    (GEN, {"duration": 7}, "duration"),
    (GEN, {"duration": "long"}, "duration"),
    (GEN, {"seconds": 3}, "seconds"),                     # the alias is named when used
    (GEN, {"duration": True}, "duration"),
    (CREATE, {"duration": 60}, "duration"),
    (CREATE, {"duration": 4.5}, "duration"),
])
async def test_bad_duration_is_400_invalid_duration(app_client, path, body, param):
    r = await post(app_client, path, {"model": "sora-2", "prompt": "a cat", **body})
    assert_envelope(r, 400, "invalid_duration", param, "invalid_request_error")
    await assert_nothing_written(app_client)


# ---- invalid_image -------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "body", "param"), [
    (GEN, {"image": JUNK_IMAGE}, "image"),
    (GEN, {"image_url": "ftp://example.com/a.png"}, "image_url"),
    (GEN, {"images": [JUNK_IMAGE, "data:image/png;base64,AAAA"]}, "images"),
    (GEN, {"input_reference": {"image_url": "data:image/png;base64,!!!"}}, "input_reference"),
    (GEN, {"image": 12}, "image"),
    (GEN, {"image_url": "http://127.0.0.1:9/cat.png"}, "image_url"),  # private: refused
    (CREATE, {"images": [JUNK_IMAGE]}, "images"),
    (CREATE, {"image_url": "data:,plain text"}, "image_url"),
    (CREATE, {"images": ["http://[::1]/cat.png"]}, "images"),
    (CREATE, {"images": [{"url": "file:///etc/passwd"}]}, "images"),
])
async def test_bad_image_is_400_invalid_image(app_client, path, body, param):
    r = await post(app_client, path, {"model": "sora-2", "prompt": "a cat", **body})
    assert_envelope(r, 400, "invalid_image", param, "invalid_request_error")
    await assert_nothing_written(app_client)


@pytest.mark.parametrize("field", ["input_reference", "image", "images[]"])
async def test_bad_uploaded_image_is_400_invalid_image(app_client, field):
    r = await app_client.client.post(
        GEN, data={"model": "sora-2", "prompt": "a cat"},
        files={field: ("x.png", b"definitely not a png", "image/png")},
        headers=app_client.headers())
    assert_envelope(r, 400, "invalid_image", field.removesuffix("[]"), "invalid_request_error")
    await assert_nothing_written(app_client)


async def test_oversized_image_is_400_invalid_image(app_client):
    """A decodable image over the byte cap is refused before it is decoded or stored."""
    app_client.services.tasks.image_policy = type(app_client.services.tasks.image_policy)(
        max_bytes=1000)
    buf = io.BytesIO()
    Image.effect_noise((128, 128), 64).save(buf, format="PNG")
    assert len(buf.getvalue()) > 1000
    data_url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    r = await post(app_client, CREATE, {"prompt": "a cat", "image_url": data_url})
    body = assert_envelope(r, 400, "invalid_image", "image_url", "invalid_request_error")
    assert "larger than 1000 bytes" in body["message"]
    await assert_nothing_written(app_client)


# ---- codes triggered by key settings (accounts, limits) ------------------------------------

async def post_with(app_client, path: str, key: str, body: dict | None = None):
    body = body or {"model": "sora-2", "prompt": "a cat", "size": "720x720"}
    return await app_client.client.post(path, json=body, headers=app_client.headers(key))


@pytest.mark.parametrize("path", [GEN, CREATE])
async def test_model_outside_the_key_allow_list_is_403_forbidden(app_client, path):
    _, key = await app_client.services.db.create_key("pro-less", allowed_models=["sora-2"])
    r = await post_with(app_client, path, key, {"model": "sora-2-pro", "prompt": "a cat"})
    assert_envelope(r, 403, "forbidden", "model", "permission_error")
    await assert_nothing_written(app_client)


@pytest.mark.parametrize("path", [GEN, CREATE])
async def test_empty_balance_is_402_insufficient_quota(app_client, path):
    _, key = await app_client.services.db.create_key("broke", balance_micro=0)
    r = await post_with(app_client, path, key)
    assert_envelope(r, 402, "insufficient_quota", None, "insufficient_quota")
    await assert_nothing_written(app_client)


@pytest.mark.parametrize("path", [GEN, CREATE])
async def test_requests_over_the_key_rpm_are_429_rate_limited(app_client, path):
    _, key = await app_client.services.db.create_key("slow", rpm_limit=1)
    missing = f"{GEN}/{MISSING}" if path == GEN else f"{QUERY}?id={MISSING}"
    first = await app_client.client.get(missing, headers=app_client.headers(key))
    assert first.status_code == 404
    r = await post_with(app_client, path, key)
    assert_envelope(r, 429, "rate_limited", None, "rate_limit_error")
    assert int(r.headers["retry-after"]) >= 1
    await assert_nothing_written(app_client)


@pytest.mark.parametrize("path", [GEN, CREATE])
async def test_too_many_unfinished_tasks_is_429_rate_limited(app_client, path):
    _, key = await app_client.services.db.create_key("busy", max_concurrent=1)
    assert (await post_with(app_client, path, key)).status_code == 200
    files = sorted(app_client.blob_files())
    r = await post_with(app_client, path, key)
    assert_envelope(r, 429, "rate_limited", None, "rate_limit_error")
    assert r.headers["retry-after"]
    assert await app_client.count_tasks() == 1
    assert sorted(app_client.blob_files()) == files


# ---- the renderer itself, for every code (some are only raised elsewhere) ----------------

@pytest.mark.parametrize(("error", "type_"), [
    (ApiError(403, "forbidden", "This key may not use sora-2-pro.", param="model"),
     "permission_error"),
    (ApiError(429, "rate_limited", "Too many requests.", headers={"Retry-After": "3"}),
     "rate_limit_error"),
    (ApiError(402, "insufficient_quota", "Not enough credit."), "insufficient_quota"),
    (ApiError(400, "no_available_channel", "No channel can serve sora-2 at 1x1.",
              param="model"), "invalid_request_error"),
    (ApiError(502, "upstream_error", "The backend failed.", type="server_error"),
     "server_error"),
])
@pytest.mark.parametrize("path", [GEN, f"{GEN}/{MISSING}", CREATE, QUERY])
def test_renderer_envelope_for_codes_without_a_trigger(error, type_, path):
    body = error_body(error, path)
    assert body == {
        "code": error.code, "message": error.message, "data": None,
        "error": {"message": error.message, "type": type_, "param": error.param,
                  "code": error.code},
    }
    response = error_response(error, path)
    assert response.status_code == error.status
    for name, value in error.headers.items():
        assert response.headers[name] == value


def test_renderer_keeps_openai_shape_on_family_a():
    """The envelope is for `/v1/video/...` only; `/v1/videos` keeps OpenAI's bare object."""
    error = ApiError(404, "task_not_exist", "No video found with that id.")
    assert set(error_body(error, "/v1/videos/x")) == {"error"}
    assert set(error_body(error, "/v1/video/query")) == {"code", "message", "data", "error"}
