"""A tiny blocking JSON client for the harness's own setup calls (creating the tasks the
phases read, waiting for them): stdlib only, loopback only."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

CREATE_BODY = {"model": "sora-2", "prompt": "bench: a cat playing piano", "seconds": "4",
               "size": "1280x720"}


def _loopback_only(url: str) -> None:
    host = urlsplit(url).hostname
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise ValueError(f"the harness only talks to loopback, not {host!r}")


def call(method: str, url: str, headers: dict[str, str], body: Any = None,
         timeout: float = 30.0) -> tuple[int, Any]:
    _loopback_only(url)
    data = None
    headers = dict(headers)
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def create(base: str, auth: dict[str, str], model: str = "sora-2",
           size: str | None = None) -> dict:
    body = {**CREATE_BODY, "model": model, **({"size": size} if size else {})}
    status, body = call("POST", f"{base}/v1/videos", auth, body)
    if status != 200 or not isinstance(body, dict):
        raise RuntimeError(f"create answered {status}: {body}")
    return body


def wait_completed(base: str, auth: dict[str, str], ids: list[str],
                   timeout: float = 120.0) -> dict[str, dict]:
    """Poll until every id is completed; the final objects by id."""
    deadline = time.monotonic() + timeout
    done: dict[str, dict] = {}
    while time.monotonic() < deadline:
        for video_id in [i for i in ids if i not in done]:
            status, body = call("GET", f"{base}/v1/videos/{video_id}", auth)
            if status == 200 and body.get("status") == "completed":
                done[video_id] = body
            elif status == 200 and body.get("status") == "failed":
                raise RuntimeError(f"{video_id} failed: {body.get('error')}")
        if len(done) == len(ids):
            return done
        time.sleep(0.2)
    raise TimeoutError(f"{len(ids) - len(done)} of {len(ids)} tasks not completed in time")
