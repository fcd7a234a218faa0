"""Listing `/v1/videos`: both orders, `after` in both, and every field of the SDK's `Video`
model (openai 3.57.0, types/video.py) on each item."""

from __future__ import annotations

from openai.types import Video

from helpers_async import create


async def _ids(app_client, **params) -> tuple[list[str], bool]:
    r = await app_client.client.get("/v1/videos", params=params, headers=app_client.headers())
    assert r.status_code == 200, r.text
    page = r.json()
    return [v["id"] for v in page["data"]], page["has_more"]


async def test_order_and_after_in_both_directions(app_client):
    made = [(await create(app_client, prompt=f"item {i}"))["id"] for i in range(5)]
    assert (await _ids(app_client, order="asc")) == (made, False)
    assert (await _ids(app_client)) == (made[::-1], False)  # desc is the default
    assert (await _ids(app_client, order="asc", after=made[1], limit=2)) == (made[2:4], True)
    assert (await _ids(app_client, order="asc", after=made[3])) == (made[4:], False)
    assert (await _ids(app_client, order="desc", after=made[3], limit=2)) == (
        [made[2], made[1]], True)
    assert (await _ids(app_client, order="desc", after=made[0])) == ([], False)


async def test_bad_order_is_a_400_naming_order(app_client):
    r = await app_client.client.get("/v1/videos", params={"order": "sideways"},
                                    headers=app_client.headers())
    assert r.status_code == 400 and r.json()["error"]["param"] == "order"


async def test_every_field_of_the_sdk_video_model_is_present(app_client):
    await create(app_client, size="720x1280")  # a size the SDK's Literal lists
    r = await app_client.client.get("/v1/videos", headers=app_client.headers())
    item = r.json()["data"][0]
    missing = set(Video.model_fields) - set(item)
    assert not missing, missing
    Video.model_validate(item)
