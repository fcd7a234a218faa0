"""The HTTP side of `vidgate generate` and `vidgate videos`: which server, which key, and
OpenAI-style errors turned into one line and exit status 1.

Which key, in order: `--api-key`, `VIDGATE_API_KEY`, then a key of the local data folder.
Keys are stored hashed, so the one `serve` printed on its first start cannot be read back.
Instead, when the server is on this machine (a loopback address) and the data folder holds
its database, the CLI creates a key named "cli" once and keeps it in `<data dir>/cli-key`
(mode 0600, beside the signing secret, which is kept the same way); later runs reuse it.
A remote server never gets a locally made key: there a key must be given.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import httpx
import typer

from . import local

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
KEY_FILE = "cli-key"
KEY_NAME = "cli"

BaseUrl = typer.Option(None, "--base-url", envvar="VIDGATE_BASE_URL", metavar="URL",
                       help=f"The vidgate server (default: {DEFAULT_BASE_URL}).")
ApiKey = typer.Option(None, "--api-key", envvar="VIDGATE_API_KEY", metavar="KEY",
                      help="API key (default: the data folder's cli key; see README).")


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _is_loopback(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _saved_key(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def _create_local_key(where: local.Location, path: Path) -> str:
    """Create the "cli" key in the local database and keep it in `path` (0600)."""
    async def create(db) -> tuple[str, str]:
        key, secret = await db.create_key(KEY_NAME)
        return key.id, secret

    async def revoke(db) -> bool:
        return await db.revoke_key(key_id)

    key_id, secret = local.read(create)
    tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    try:
        os.link(tmp, path)  # fails if another run saved its key first: use that one
    except FileExistsError:
        local.read(revoke)
        return _saved_key(path) or fail(f"{path} is empty: delete it and run again")
    finally:
        tmp.unlink()
    local.note(f"no API key given: created key {key_id} named {KEY_NAME!r} and saved it in "
               f"{path} (mode 0600); later runs use it. Give another with --api-key or "
               "VIDGATE_API_KEY.")
    return secret


def resolve_key(base_url: str, given: str | None) -> tuple[str, Path | None]:
    """The key to send and, when it came from the data folder, the file it is kept in."""
    if given:
        return given, None
    how = ("pass --api-key KEY or set VIDGATE_API_KEY (the key `vidgate serve` printed on its "
           "first start, or one from `vidgate keys create`)")
    if not _is_loopback(base_url):
        fail(f"no API key for {base_url}: {how}.")
    where = local.locate()
    path = where.data_dir / KEY_FILE
    saved = _saved_key(path)
    if saved:
        local.note(f"using the API key saved in {path}")
        return saved, path
    if not (where.exists and where.data_dir.is_dir()):
        fail(f"no API key: {how}. No key could be made here either: "
             + local.missing_message(where))
    return _create_local_key(where, path), path


class Api:
    """A small synchronous client of vidgate's `/v1/videos` routes."""

    def __init__(self, base_url: str | None, api_key: str | None) -> None:
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        key, self.key_file = resolve_key(self.base_url, api_key)
        self.http = httpx.Client(base_url=self.base_url + "/v1",
                                 headers={"Authorization": f"Bearer {key}"},
                                 timeout=httpx.Timeout(60.0, connect=10.0))

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            fail(f"cannot reach vidgate at {self.base_url} ({exc.__class__.__name__}: {exc}). "
                 "Is `vidgate serve` running? Another server: --base-url or VIDGATE_BASE_URL.")
        if response.is_error:
            self.refuse(response)
        return response

    def refuse(self, response: httpx.Response) -> NoReturn:
        """Exit 1 with the OpenAI-style error's code and message."""
        try:
            error = response.json().get("error") or {}
        except ValueError:
            error = {}
        code = error.get("code") or error.get("type") or f"http_{response.status_code}"
        message = error.get("message") or response.text.strip() or response.reason_phrase
        hint = ""
        if response.status_code == 401 and self.key_file is not None:
            hint = (f"\nthe key saved in {self.key_file} was refused: that server may not use "
                    "this data folder's database, or the key was revoked. Delete the file to "
                    "make a new one, or pass --api-key.")
        fail(f"error {response.status_code} {code}: {message}{hint}")

    def video(self, video_id: str) -> httpx.Response:
        return self.request("GET", f"/videos/{video_id}")

    def delete(self, video_id: str) -> dict:
        return self.request("DELETE", f"/videos/{video_id}").json()

    @contextmanager
    def content(self, video_id: str, variant: str = "video") -> Iterator[httpx.Response]:
        try:
            with self.http.stream("GET", f"/videos/{video_id}/content",
                                  params={"variant": variant}) as response:
                if response.is_error:
                    response.read()
                    self.refuse(response)
                yield response
        except httpx.TransportError as exc:
            fail(f"download from {self.base_url} broke off ({exc.__class__.__name__}: {exc})")

    def download(self, video_id: str, out: Path, variant: str = "video") -> int:
        """Stream a variant into `out` (through `out.part`, so a broken download leaves no
        file that looks whole); returns the bytes written."""
        part = out.with_name(out.name + ".part")
        written = 0
        try:
            with self.content(video_id, variant) as response, open(part, "wb") as f:
                for chunk in response.iter_bytes(1 << 20):
                    f.write(chunk)
                    written += len(chunk)
        except BaseException:  # an error, an exit or Ctrl-C: no half file stays behind
            part.unlink(missing_ok=True)
            raise
        os.replace(part, out)
        return written


def poll_after(response: httpx.Response, default: float = 1.0) -> float:
    """Seconds to wait before asking again, as the server suggests (bounded, so a wrong
    header can neither spin nor stall the CLI)."""
    try:
        value = float(response.headers["openai-poll-after-ms"]) / 1000
    except (KeyError, ValueError):
        value = default
    return min(max(value, 0.05), 30.0)
