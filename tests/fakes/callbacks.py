"""How the provider fakes call vidgate back: one POST to the URL vidgate gave at submit,
recorded with its answer, on loopback only."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx


@dataclass
class Delivery:
    url: str
    headers: dict[str, str]
    body: bytes
    status: int | None = None  # vidgate's answer (None: it could not be reached)
    at: float = field(default_factory=time.monotonic)  # when it was sent


class Deliveries:
    """Every callback a fake sent, in order."""

    def __init__(self) -> None:
        self.sent: list[Delivery] = []
        self._lock = threading.Lock()

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> Delivery:
        if urlsplit(url).hostname not in ("127.0.0.1", "localhost"):
            raise AssertionError(f"a fake calls back only on loopback, not {url}")
        delivery = Delivery(url, headers, body)
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.post(url, content=body, headers={
                    **headers, "content-type": "application/json"})
            delivery.status = response.status_code
        except httpx.HTTPError:
            pass
        with self._lock:
            self.sent.append(delivery)
        return delivery

    def statuses(self) -> list[int | None]:
        with self._lock:
            return [d.status for d in self.sent]
