"""Answers sent before the request body was read to its end still reach the client.

When vidgate refuses a request early (too large, wrong type, malformed multipart), the
client is usually still sending. Closing a socket with unread bytes in its receive buffer
makes the kernel send a TCP reset, which can destroy the answer before the client reads it;
a client on a keep-alive connection also sees its next request reset. So before such an
answer starts, `EarlyAnswers` reads and discards what is left of the body, within a byte and
a time bound, and marks the answer `Connection: close` so the server closes cleanly after it.
A body beyond the bound is not read: that client may see a reset, which is the price of not
reading gigabytes to refuse them.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class EarlyAnswers:
    """ASGI middleware: drain the unread request body before an answer, then close."""

    def __init__(self, app: ASGIApp, *, drain_bytes: int, drain_seconds: float = 30.0) -> None:
        self.app = app
        self.drain_bytes = drain_bytes
        self.drain_seconds = drain_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        body_done = False

        async def tracked_receive() -> Message:
            nonlocal body_done
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start" and not body_done:
                await self._drain(tracked_receive)
                message = {**message, "headers": [
                    *[(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"],
                    (b"connection", b"close")]}
            await send(message)

        await self.app(scope, tracked_receive, answer)

    async def _drain(self, receive: Receive) -> None:
        """Discard the rest of the body, up to `drain_bytes` and `drain_seconds`."""
        drained = 0
        try:
            async with asyncio.timeout(self.drain_seconds):
                while drained <= self.drain_bytes:
                    message = await receive()
                    if message["type"] != "http.request":
                        return
                    drained += len(message.get("body", b""))
                    if not message.get("more_body", False):
                        return
        except TimeoutError:
            return


def _has_body(scope: Scope) -> bool:
    """Whether the request announces a body (a length above 0, or chunked)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
        if name == b"transfer-encoding":
            return True
    return False
