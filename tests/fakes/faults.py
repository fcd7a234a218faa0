"""Switchable faults, injected in front of a fake's routes as ASGI middleware.

Each request is classified into a call type (submit, poll, content, download, cancel); with
the probability configured for that type, one of the configured fault kinds happens instead
of (or before) the real answer:

  500, 502, 503   an error status with a JSON error body
  429             Too Many Requests with `Retry-After: <retry_after>`
  slow            the real answer, but only after `slow_seconds` (past the client timeout)
  reset           headers promise a body, half of it is sent, the connection is dropped
  garbage         200 with a body that is not JSON
  404             a not-found flap (the job exists, the server forgot it for a moment)
  lost            the request is handled in full (a submit makes its job), then the answer
                  is dropped half-way as in `reset`: the client cannot tell it was accepted.
                  Only when asked for (in `kinds` or by `script`), never among the defaults.

`script(call, kinds)` queues faults that the next requests of that call type get, in order,
before any random ones: a test that must see a kind injected says so instead of hoping the
seed and the interleaving of concurrent requests produce it.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from dataclasses import dataclass, field

KINDS = ("500", "502", "503", "429", "slow", "reset", "garbage", "404")
# What a caller must survive without failing a task (a 404 flap is a result gone, elsewhere)
TRANSIENT = ("500", "502", "503", "429", "slow", "reset", "garbage")
# The same for a file download, whose answer is a body, not JSON that could be garbage
DOWNLOAD_TRANSIENT = ("500", "502", "503", "429", "slow", "reset")


@dataclass
class Faults:
    rates: dict[str, float] = field(default_factory=dict)       # call type -> probability
    kinds: dict[str, tuple[str, ...]] = field(default_factory=dict)  # call type -> kinds
    slow_seconds: float = 1.5
    retry_after: int = 1
    seed: int = 1234
    injected: Counter = field(default_factory=Counter)           # (call type, kind) -> count
    scripted: dict[str, list[str]] = field(default_factory=dict)  # call type -> next kinds

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def pick(self, call: str) -> str | None:
        with self._lock:
            queued = self.scripted.get(call)
            if queued:
                kind = queued.pop(0)
                self.injected[(call, kind)] += 1
                return kind
            rate = self.rates.get(call, 0.0)
            if rate <= 0 or self._rng.random() >= rate:
                return None
            kind = self._rng.choice(self.kinds.get(call) or KINDS)
            self.injected[(call, kind)] += 1
            return kind

    def everywhere(self, rate: float, kinds: tuple[str, ...] = KINDS) -> Faults:
        for call in ("submit", "poll", "content", "download", "cancel"):
            self.rates[call] = rate
            self.kinds.setdefault(call, kinds)
        return self

    def script(self, call: str, kinds: list[str]) -> Faults:
        with self._lock:
            self.scripted.setdefault(call, []).extend(kinds)
        return self

    def off(self) -> None:
        self.rates.clear()
        self.scripted.clear()


class FaultMiddleware:
    """Records every request's Authorization header, then maybe misbehaves."""

    def __init__(self, app, faults: Faults, classify, record) -> None:
        self.app = app
        self.faults = faults
        self.classify = classify
        self.record = record

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        auth = headers.get(b"authorization")
        self.record(scope["method"], scope["path"], auth.decode() if auth else None)
        call = self.classify(scope["method"], scope["path"])
        kind = self.faults.pick(call) if call else None
        if kind is None:
            await self.app(scope, receive, send)
        elif kind == "slow":
            await asyncio.sleep(self.faults.slow_seconds)
            await self.app(scope, receive, send)
        elif kind == "reset":
            await _drop(send)
        elif kind == "lost":
            await self.app(scope, receive, _discard)
            await _drop(send)
        elif kind == "garbage":
            await _send(send, 200, b"<html>upstream proxy hiccup</html>{{", b"text/html")
        elif kind == "429":
            await _send(send, 429, b'{"error":{"message":"slow down","code":"rate_limited"}}',
                        extra=[(b"retry-after", str(self.faults.retry_after).encode())])
        else:
            status = int(kind)
            await _send(send, status,
                        b'{"error":{"message":"fake fault","code":"fault_%d"}}' % status)


async def _discard(_message) -> None:
    """Where the real answer of a `lost` request goes."""


async def _drop(send) -> None:
    """Headers that promise a body, half of one, then the connection is dropped."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", b"200")]})
    await send({"type": "http.response.body", "body": b'{"status": "compl', "more_body": True})
    raise ConnectionResetError("fake reset")  # uvicorn drops the connection


async def _send(send, status: int, body: bytes, content_type: bytes = b"application/json",
                extra: list | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode()), *(extra or [])]})
    await send({"type": "http.response.body", "body": body})
