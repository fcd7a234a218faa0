"""Local downloads sent from memory-mapped windows (api/content.MappedFileResponse).

The bytes must be exactly the file's for every range, windows must line up whatever the
offset, and a slow client (whose socket fills, so the server holds on to a view of a window)
must still get every byte right from a real uvicorn server with its default event loop.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from support import free_port, wait_for
from vidgate.api.content import WINDOW_BYTES, MappedFileResponse

SIZE = 3 * WINDOW_BYTES + 12345


@pytest.fixture(scope="module")
def big_file(tmp_path_factory) -> tuple[Path, bytes]:
    path = tmp_path_factory.mktemp("mapped") / "video.mp4"
    data = os.urandom(SIZE)
    path.write_bytes(data)
    return path, data


async def body_of(path: Path, start: int, end: int) -> tuple[bytes, list[dict]]:
    messages: list[dict] = []

    async def send(message):
        if message["type"] == "http.response.body":
            message = {**message, "body": bytes(message["body"])}  # copy out of the window
        messages.append(message)

    file = open(path, "rb")
    response = MappedFileResponse(file, start, end, status_code=206, headers={
        "content-length": str(end - start + 1)}, media_type="video/mp4")
    await response({"type": "http", "method": "GET"}, None, send)
    assert file.closed
    return b"".join(m["body"] for m in messages if m["type"] == "http.response.body"), messages


@pytest.mark.parametrize(("start", "end"), [
    (0, SIZE - 1),                              # whole file
    (1, SIZE - 2),                              # unaligned both ends
    (WINDOW_BYTES - 3, WINDOW_BYTES + 3),       # across one window boundary
    (WINDOW_BYTES, 2 * WINDOW_BYTES - 1),       # exactly one window
    (SIZE - 1, SIZE - 1),                       # the last byte
    (0, 0),                                     # the first byte
    (4097, 3 * WINDOW_BYTES + 100),             # across three windows from a page offset
])
async def test_every_range_is_the_files_bytes(big_file, start, end):
    path, data = big_file
    body, messages = await body_of(path, start, end)
    assert body == data[start:end + 1]
    assert messages[0]["status"] == 206
    assert messages[-1]["more_body"] is False
    assert all(m["more_body"] for m in messages[1:-1])
    assert all(len(m["body"]) <= WINDOW_BYTES for m in messages[1:])


def test_a_slow_client_gets_every_byte_from_a_real_server(big_file):
    path, data = big_file

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        response = MappedFileResponse(open(path, "rb"), 0, SIZE - 1, status_code=200,
                                      headers={"content-length": str(SIZE)},
                                      media_type="video/mp4")
        await response(scope, receive, send)

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, timeout=10, what="uvicorn to start")
        digests = set()
        for _ in range(2):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                received = bytearray()
                while chunk := sock.recv(64 * 1024):
                    received += chunk
                    if len(received) < 2 * WINDOW_BYTES:
                        time.sleep(0.001)  # slower than the server: its socket fills up
            head, _, body = bytes(received).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            digests.add(hashlib.sha256(body).hexdigest())
        assert digests == {hashlib.sha256(data).hexdigest()}
    finally:
        server.should_exit = True
        thread.join(timeout=10)
