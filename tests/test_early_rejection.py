"""Refusals sent before the body is read reach the client, on a real server (issue 15).

vidgate refuses a 30 MB upload over the 20 MiB cap as soon as the Content-Length says so, and
a malformed multipart stream at its first bad part; the client is still sending. The server
drains the rest and closes with `Connection: close` (api/early_answers.py), so httpx and the
`openai` SDK read the 413/400 with its error body instead of a reset, and the next request,
on a new connection, is served.
"""

from __future__ import annotations

import io
import socket

import httpx
import openai
import pytest

from support import Server

OVER_CAP = 30 * 1000 * 1000  # 30 MB against the default 20 MiB cap


def _big_file() -> io.BytesIO:
    return io.BytesIO(b"\x89PNG\r\n\x1a\n" + b"\0" * (OVER_CAP - 8))


def _assert_next_request_served(server: Server) -> None:
    with httpx.Client(base_url=server.api, timeout=30) as fresh:
        answer = fresh.get("/models", headers=server.headers())
    assert answer.status_code == 200, answer.text


def test_oversized_multipart_upload_gets_the_413_through_httpx(live_server):
    with httpx.Client(base_url=live_server.api, timeout=60) as client:
        answer = client.post("/videos", headers=live_server.headers(),
                             data={"prompt": "a cat", "model": "sora-2"},
                             files={"input_reference": ("big.png", _big_file(), "image/png")})
        assert answer.status_code == 413, answer.text
        assert answer.headers["connection"] == "close"
        error = answer.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert "20 MiB" in error["message"] and "bytes" not in error["message"]
        # the same client opens a new connection for its next request
        assert client.get("/models", headers=live_server.headers()).status_code == 200
    _assert_next_request_served(live_server)


def test_oversized_json_body_gets_the_413_through_httpx(live_server):
    with httpx.Client(base_url=live_server.api, timeout=60) as client:
        answer = client.post("/videos", headers={**live_server.headers(),
                                                 "content-type": "application/json"},
                             content=b'{"prompt": "' + b"a" * 40_000_000 + b'"}')
    assert answer.status_code == 413, answer.text
    assert "20 MiB" in answer.json()["error"]["message"]
    _assert_next_request_served(live_server)


def test_malformed_multipart_stream_gets_the_400_through_httpx(live_server):
    body = (b"--abc\r\nthis is not a header line\r\n\r\nhello\r\n--abc\r\n"
            + b"x" * (5 * 1024 * 1024))
    with httpx.Client(base_url=live_server.api, timeout=60) as client:
        answer = client.post("/videos", content=body, headers={
            **live_server.headers(), "content-type": "multipart/form-data; boundary=abc"})
    assert answer.status_code == 400, answer.text
    assert answer.headers["connection"] == "close"
    assert answer.json()["error"]["message"].startswith("Malformed form body")
    _assert_next_request_served(live_server)


def test_early_answer_read_on_a_raw_socket_without_reset(live_server):
    """The server answers while the client still has most of the body to send; the client
    then sends all of it, reads the whole answer and sees a clean close (b"" from recv),
    never ECONNRESET."""
    host, port = live_server.url.removeprefix("http://").split(":")
    body = b"x" * OVER_CAP
    head = (f"POST /v1/videos HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer "
            f"{live_server.key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(head + body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    status_line, _, rest = received.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large"
    assert b"connection: close" in rest.lower()
    assert b"20 MiB" in rest


def test_openai_sdk_sees_the_413_of_an_oversized_input_reference(live_server):
    client = openai.OpenAI(base_url=live_server.api, api_key=live_server.key, max_retries=0)
    with pytest.raises(openai.APIStatusError) as raised:
        client.videos.create(prompt="a cat", model="sora-2",
                             input_reference=("big.png", _big_file(), "image/png"))
    assert raised.value.status_code == 413
    assert "20 MiB" in raised.value.body["message"]
    assert client.models.list().data  # the next request, on a new connection, is served
    _assert_next_request_served(live_server)
