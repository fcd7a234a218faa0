"""An extension is charged for the seconds it adds, held up front and settled on delivery."""

from __future__ import annotations

from helpers_async import create, wait_completed
from vidgate.catalog import VideoRequest


async def test_extension_holds_and_settles_only_the_new_seconds(app_client):
    _, key = await app_client.services.db.create_key("paid", balance_micro=10**9)
    source = await create(app_client, key, seconds="4")
    await wait_completed(app_client, source["id"], key, timeout=300)
    r = await app_client.client.post(
        "/v1/videos/extensions", headers=app_client.headers(key),
        json={"prompt": "on and on", "seconds": "12", "video": {"id": source["id"]}})
    assert r.status_code == 200, r.text
    catalog = app_client.services.tasks.catalog

    def price(seconds: int) -> int:
        return catalog.price(VideoRequest(model="sora-2", prompt="p", width=720, height=720,
                                          seconds=seconds))

    row = await app_client.services.db.get_task(r.json()["id"])
    assert row.hold_micro == price(8) and price(8) != price(12)
    await wait_completed(app_client, row.id, key, timeout=300)  # a 12 s render, under load
    row = await app_client.services.db.get_task(row.id)
    assert row.cost_micro == price(8) and round(row.delivered_seconds) == 12
