"""What the HTTP backends share: status mapping, progress and URL parsing, and one client
per channel that enforces the channel's limits and keeps its key on its own origin."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import ipaddress
import re
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import aiohttp
import orjson
import yarl

from ..channels import ChannelConfig, origin_of
from ..domain import COMPLETED, FAILED, IN_PROGRESS, MODERATION_BLOCKED, QUEUED, UPSTREAM_ERROR
from ..images import ImagePolicy, address_allowed
from .base import (
    UNKNOWN,
    Job,
    PollResult,
    ResultFiles,
    ResultUnavailable,
    SubmitRefused,
    TransientError,
    UpstreamFailed,
)

# spec/upstreams.md, "Status mapping (all kinds)"; anything missing maps to UNKNOWN.
STATUS_MAP = {
    **dict.fromkeys(("not_start", "submitted", "queued", "pending"), QUEUED),
    **dict.fromkeys(("in_progress", "processing", "running"), IN_PROGRESS),
    **dict.fromkeys(("completed", "succeeded", "success"), COMPLETED),
    **dict.fromkeys(("failed", "failure", "error", "cancelled", "canceled", "expired"), FAILED),
}

# Where servers put the video's URL, most specific first (spec/upstreams.md).
RESULT_URL_PATHS = (
    ("url",), ("video_url",), ("video", "url"), ("metadata", "url"), ("result_url",),
    ("data", "url"), ("data", "metadata", "url"), ("data", "video_url"),
    ("data", "result_url"),
)
THUMBNAIL_URL_PATHS = (("thumbnail_url",), ("data", "thumbnail_url"))

_MODERATION = re.compile(r"moderat|content[ _-]?polic|safety|nsfw|sensitive", re.IGNORECASE)
_URLS = re.compile(r"https?://\S+")
MAX_MESSAGE = 300
MAX_REDIRECTS = 5
CHUNK = 256 * 1024


def map_status(value: Any) -> str:
    if not isinstance(value, str):
        return UNKNOWN
    return STATUS_MAP.get(value.strip().lower().replace(" ", "_"), UNKNOWN)


def parse_progress(value: Any) -> int | None:
    """Progress as servers send it: 30, 30.5, "30", "30%"; anything else is absent."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip().removesuffix("%").strip())
        except ValueError:
            return None
    else:
        return None
    if number != number:  # NaN
        return None
    return max(0, min(100, int(number)))


def dig(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def find_url(obj: Any, paths: tuple[tuple[str, ...], ...] = RESULT_URL_PATHS) -> str | None:
    for path in paths:
        value = dig(obj, path)
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return value
    return None


def retry_after(response: UpstreamResponse) -> float | None:
    """Seconds from a Retry-After header (delta or HTTP date); None when absent or silly."""
    raw = response.headers.get("retry-after")
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, min(seconds, 3600.0))


def json_body(response: UpstreamResponse) -> Any:
    """The parsed body, or None when it is not JSON (garbage must not crash a poll)."""
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


def clean_message(text: Any, fallback: str) -> str:
    """An upstream's message, fit to show a client: no upstream URLs, bounded length."""
    if not isinstance(text, str) or not text.strip():
        return fallback
    text = _URLS.sub("[url]", text.strip())
    return text[:MAX_MESSAGE]


def error_fields(body: Any) -> tuple[str, str]:
    """(code, message) from the error shapes seen in the wild, as plain strings."""
    if not isinstance(body, dict):
        return "", ""
    err = body.get("error")
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    if isinstance(err, dict):
        return str(err.get("code") or err.get("type") or ""), str(err.get("message") or "")
    code = body.get("code") or data.get("code") or ""
    message = (body.get("fail_reason") or data.get("fail_reason") or body.get("message")
               or (err if isinstance(err, str) else "") or data.get("message") or "")
    return str(code), str(message)


def failure_code(code: str, message: str) -> str:
    return MODERATION_BLOCKED if _MODERATION.search(f"{code} {message}") else UPSTREAM_ERROR


def check_submit(response: UpstreamResponse) -> Any:
    """The JSON body of an accepted submit, or the right error for a refusal.

    5xx, 429 and 408 are refusals, and so are 401/403/404/405 (a bad key or base URL is the
    channel's fault, not the request's): another channel may take the job. Other 4xx mean
    the upstream judged this request and said no, so the task fails.
    """
    status = response.status_code
    body = json_body(response)
    if 200 <= status < 300:
        if not isinstance(body, dict):
            # Accepted or not, we cannot know the id: treat as refused and try again.
            raise SubmitRefused(f"submit answered {status} without a JSON object")
        return body
    code, message = error_fields(body)
    if status in (400, 403, 413, 415, 422) and (
        status != 403 or _MODERATION.search(f"{code} {message}")
    ):
        raise UpstreamFailed(
            clean_message(message, f"The upstream rejected the request (HTTP {status})."),
            code=failure_code(code, message),
        )
    raise SubmitRefused(f"submit refused with HTTP {status}", retry_after=retry_after(response))


def check_poll(response: UpstreamResponse) -> Any:
    """The JSON body of a status answer; errors here are never the job's failure."""
    status = response.status_code
    if status != 200:
        raise TransientError(f"poll answered HTTP {status}", retry_after=retry_after(response))
    return json_body(response)


def sniff_image(data: bytes) -> tuple[str, str]:
    """(media type, extension) from an image's magic bytes; PNG when unsure."""
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg", "jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif", "gif"
    return "image/png", "png"


def data_url(data: bytes) -> str:
    media_type, _ = sniff_image(data)
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def put_image(body: dict[str, Any], field: str, reference: bytes) -> None:
    """Add the reference image as a data URL under `field` (a one-element list for
    `images`, the spelling that carries several)."""
    image = data_url(reference)
    body[field] = [image] if field == "images" else image


class RateLimiter:
    """A token bucket: at most `rate` requests per second, bursts up to one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


class Credentials(Protocol):
    """How a channel proves who it is: the headers for a request to its own origin.

    Async so that a kind whose credential expires (a signed JWT, an OAuth token) can renew
    it before the request that needs it."""

    async def headers(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class StaticHeaders:
    """A credential that never changes: a bearer token or a provider's own key header."""

    values: dict[str, str]

    async def headers(self) -> dict[str, str]:
        return self.values


def bearer(key: str | None) -> Credentials | None:
    return StaticHeaders({"Authorization": f"Bearer {key}"}) if key else None


@dataclass(frozen=True)
class UpstreamResponse:
    """What the protocol code reads of an upstream's answer (status, headers, body)."""

    status_code: int
    headers: Mapping[str, str]  # case-insensitive
    content: bytes = b""


class ChannelClient:
    """One shared aiohttp session per channel.

    It caps concurrent requests (API calls and downloads separately, so slow downloads
    cannot starve status polls), paces requests to the channel's rate, and adds the key
    only to requests bound for the channel's own origin. aiohttp rather than httpx: with
    hundreds of polls waiting for a connection, httpx's pool cost ~1.5 ms of CPU per request
    against aiohttp's ~0.06 ms, and polls were most of the engine's CPU (bench/RESULTS.md).
    """

    def __init__(self, config: ChannelConfig, *, credentials: Credentials | None = None,
                 max_downloads: int = 4) -> None:
        self.config = config
        self.base = config.base_url or ""
        self.origin = config.origin
        self._credentials = credentials
        self._api = asyncio.Semaphore(config.max_concurrent_requests)
        self._downloads = asyncio.Semaphore(max_downloads)
        self._rate = (RateLimiter(config.max_requests_per_second)
                      if config.max_requests_per_second else None)
        self._max_connections = config.max_concurrent_requests + max_downloads
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        """The session, made on first use: aiohttp binds it to the running loop."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0),
                timeout=self._timeout(self.config.timeout_seconds),
                json_serialize=lambda obj: orjson.dumps(obj).decode(),
                trust_env=False,
            )
        return self._session

    def _timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        """`seconds` for each wait on the socket, the channel's own limit for connecting,
        and no cap on the whole exchange (a big download may rightly take long)."""
        return aiohttp.ClientTimeout(total=None, sock_connect=self.config.connect_timeout_seconds,
                                     sock_read=seconds)

    def url(self, path: str) -> str:
        return self.base + path

    async def headers_for(self, url: str) -> dict[str, str]:
        """The channel's credential, only for a request bound for the channel's own origin."""
        if self._credentials is not None and self.origin and origin_of(url) == self.origin:
            return await self._credentials.headers()
        return {}

    async def request(self, method: str, path: str, *, submit: bool = False,
                      headers: dict[str, str] | None = None, json: Any = None,
                      files: list[tuple[str, tuple]] | None = None,
                      params: dict[str, str] | None = None) -> UpstreamResponse:
        """One API call on the channel's own origin; transport errors become the error type
        of the phase (refusal at submit, transient otherwise). `files` are multipart parts
        as (name, (filename or None for a plain field, bytes[, media type]))."""
        url = self.url(path)
        headers = {**(headers or {}), **await self.headers_for(url)}
        if self._rate:
            await self._rate.acquire()
        async with self._api:
            try:
                async with self._http().request(
                    method, yarl.URL(url, encoded=True), headers=headers, json=json,
                    data=_multipart(files) if files is not None else None, params=params,
                    allow_redirects=False,
                ) as response:
                    return UpstreamResponse(response.status, response.headers,
                                            await response.read())
            except (TimeoutError, aiohttp.ClientError) as exc:
                kind = SubmitRefused if submit else TransientError
                raise kind(f"{method} {path} failed: {type(exc).__name__}") from exc

    async def download(self, url: str, dest: Path) -> int:
        """Stream `url` into `dest` without holding it in memory; returns the byte count.

        Redirects are followed here, hop by hop, so the key is dropped as soon as a hop
        leaves the channel's origin and every foreign host passes the address check.
        """
        url = urljoin(self.url("/"), url)
        if self._rate:
            await self._rate.acquire()
        async with self._downloads:
            for _ in range(MAX_REDIRECTS + 1):
                await self._check_address(url)
                try:
                    async with self._http().get(
                        url, headers=await self.headers_for(url), allow_redirects=False,
                        timeout=self._timeout(self.config.download_timeout_seconds),
                    ) as response:
                        if response.status in _REDIRECTS and "location" in response.headers:
                            url = urljoin(url, response.headers["location"])
                            continue
                        _check_download(UpstreamResponse(response.status, response.headers))
                        return await self._write(response, dest)
                except (TimeoutError, aiohttp.ClientError) as exc:
                    raise TransientError(f"download failed: {type(exc).__name__}") from exc
        raise ResultUnavailable("the result URL redirects too many times")

    async def _write(self, response: aiohttp.ClientResponse, dest: Path) -> int:
        limit = self.config.max_download_bytes
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise ResultUnavailable(f"the result is larger than {limit} bytes")
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".part")
        total = 0
        try:
            # Page-cache writes of one chunk are microseconds: not worth a thread hop each.
            with open(partial, "wb") as out:
                async for chunk in response.content.iter_chunked(CHUNK):
                    total += len(chunk)
                    if total > limit:
                        raise ResultUnavailable(f"the result is larger than {limit} bytes")
                    out.write(chunk)
            partial.replace(dest)
        finally:
            partial.unlink(missing_ok=True)
        return total

    async def _check_address(self, url: str) -> None:
        """Foreign result hosts must be public addresses unless the operator allows more.

        The channel's own origin is trusted: the operator pointed vidgate at it."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ResultUnavailable("the result URL is not an http(s) URL")
        if self.config.allow_private_result_urls or origin_of(url) == self.origin:
            return
        policy = ImagePolicy()
        try:
            ipaddress.ip_address(parts.hostname)
            addresses = [parts.hostname]
        except ValueError:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
            except socket.gaierror as exc:
                raise TransientError(f"cannot resolve the result host: {exc}") from exc
            addresses = [info[4][0] for info in infos]
        if not all(address_allowed(a, policy) for a in addresses):
            raise ResultUnavailable("the result URL points at a private address")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


_REDIRECTS = (301, 302, 303, 307, 308)


def _multipart(parts: list[tuple[str, tuple]]) -> aiohttp.FormData:
    """A multipart/form-data body, even when every part is a plain field."""
    form = aiohttp.FormData(default_to_multipart=True)
    for name, (filename, value, *media_type) in parts:
        if filename is None:
            form.add_field(name, value.decode() if isinstance(value, bytes) else value)
        else:
            form.add_field(name, value, filename=filename,
                           content_type=media_type[0] if media_type else None)
    return form


def _check_download(response: UpstreamResponse) -> None:
    status = response.status_code
    if status == 200:
        return
    if status in (401, 403, 404, 410):
        raise ResultUnavailable(f"the result answered HTTP {status}")
    raise TransientError(f"the result answered HTTP {status}", retry_after=retry_after(response))


class HttpBackend:
    """What the three HTTP kinds have in common; each subclass speaks one protocol."""

    sticky = False
    supports_remix = False

    def free_slots(self) -> int | None:
        return None  # an upstream queues for itself; channel caps come from max_in_flight

    def __init__(self, config: ChannelConfig) -> None:
        self.config = config
        self.name = config.name
        self.poll_interval = config.poll_min_seconds
        self.client = ChannelClient(config, credentials=self.credentials())

    def credentials(self) -> Credentials | None:
        """A bearer token from `api_key_env`; kinds that authenticate otherwise override it."""
        return bearer(self.config.api_key())

    def extra_fields(self, request: Any) -> dict[str, Any]:
        """The channel's default extra fields, overridden by allowed keys of `metadata`.

        Only listed names pass, so a client cannot override the model or smuggle fields
        into an upstream that would reject them."""
        fields = dict(self.config.extra_fields)
        metadata = request.metadata if isinstance(request.metadata, dict) else {}
        for name in self.config.metadata_fields:
            if name in metadata and metadata[name] is not None:
                fields[name] = metadata[name]
        if "seed" in self.config.metadata_fields and request.seed and "seed" not in fields:
            fields["seed"] = request.seed
        return fields

    async def fetch(self, job: Job) -> ResultFiles:
        """Download the URL the last poll reported, plus the upstream's thumbnail if any."""
        if not job.result_url:
            raise ResultUnavailable("the upstream reported completion without a result URL")
        video = job.work_dir / "upstream" / "video.mp4"
        await self.client.download(job.result_url, video)
        thumbnail = await self.fetch_optional(job.thumbnail_url, job.work_dir / "upstream"
                                              / "thumbnail.img")
        return ResultFiles(video=video, thumbnail=thumbnail)

    async def fetch_optional(self, url: str | None, dest: Path) -> Path | None:
        """A preview is a nicety: any failure just means we make our own."""
        if not url:
            return None
        try:
            await self.client.download(url, dest)
        except TransientError:
            return None
        return dest

    async def close(self) -> None:
        await self.client.close()


def upstream_id(body: Any, *keys: str) -> str:
    """The job id from a submit answer (flat or in a `data` envelope), as a string."""
    for source in (body, body.get("data") if isinstance(body, dict) else None):
        if not isinstance(source, dict):
            continue
        for key in keys:
            value = source.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                text = str(value)
                if len(text) <= 255:
                    return text
    raise SubmitRefused("the submit answer carries no job id")


def read_status(body: Any) -> PollResult:
    """A PollResult from a status object, flat or wrapped as {"code","message","data"}.

    Anything we cannot read is UNKNOWN, which the engine treats as "poll again later".
    """
    if not isinstance(body, dict):
        return PollResult(UNKNOWN)
    obj = body
    if "status" not in body and isinstance(body.get("data"), dict):
        obj = body["data"]
    state = map_status(obj.get("status"))
    progress = parse_progress(obj.get("progress"))
    if state == FAILED:
        code, message = error_fields(obj)
        return PollResult(
            FAILED, progress, error_code=failure_code(code, message),
            error_message=clean_message(message, "The upstream failed the job."),
        )
    if state == COMPLETED:
        return PollResult(COMPLETED, 100, result_url=find_url(obj),
                          thumbnail_url=find_url(obj, THUMBNAIL_URL_PATHS))
    return PollResult(state, progress)
