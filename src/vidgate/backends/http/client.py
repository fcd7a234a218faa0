"""One HTTP client per channel: the channel's limits, its key kept on its own origin, and
result downloads that stream to disk through the network guard."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp
import orjson
import yarl
from aiolimiter import AsyncLimiter

from ...channels import ChannelConfig, origin_of
from ...netguard import AddressPolicy, AddressRefused, check_host, guarded_connector
from ...observability import metrics
from ..base import ResultUnavailable, SubmitRefused, TransientError
from .answers import retry_after
from .credentials import Credentials

MAX_REDIRECTS = 5
CHUNK = 256 * 1024
_REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class UpstreamResponse:
    """What the protocol code reads of an upstream's answer (status, headers, body)."""

    status_code: int
    headers: Mapping[str, str]  # case-insensitive
    content: bytes = b""


def pacer(rate: float) -> AsyncLimiter:
    """At most `rate` requests per second, in bursts of up to one second's worth (at least
    one request, so a channel slower than one a second still gets its single request)."""
    burst = max(1.0, rate)
    return AsyncLimiter(burst, burst / rate)


class ChannelClient:
    """One shared aiohttp session per channel.

    It caps concurrent requests (API calls and downloads separately, so slow downloads
    cannot starve status polls), paces requests to the channel's rate, and adds the key
    only to requests bound for the channel's own origin. aiohttp rather than httpx: with
    hundreds of polls waiting for a connection, httpx's pool cost ~1.5 ms of CPU per request
    against aiohttp's ~0.06 ms, and polls were most of the engine's CPU (bench/RESULTS.md).

    Results on any other origin come through a second session whose connector only dials
    addresses `policy` allows (`netguard`), unless the channel allows private result URLs.
    """

    def __init__(self, config: ChannelConfig, *, credentials: Credentials | None = None,
                 max_downloads: int = 4, policy: AddressPolicy | None = None) -> None:
        self.config = config
        self.base = config.base_url or ""
        self.origin = config.origin
        self.policy = policy or AddressPolicy()
        self._credentials = credentials
        self._api = asyncio.Semaphore(config.max_concurrent_requests)
        self._downloads = asyncio.Semaphore(max_downloads)
        self._max_downloads = max_downloads
        self._rate = (pacer(config.max_requests_per_second)
                      if config.max_requests_per_second else None)
        self._max_connections = config.max_concurrent_requests + max_downloads
        self._session: aiohttp.ClientSession | None = None
        self._foreign: aiohttp.ClientSession | None = None
        self._latency: dict[str, object] = {}  # method -> this channel's histogram child

    def _http(self) -> aiohttp.ClientSession:
        """The session, made on first use: aiohttp binds it to the running loop."""
        if self._session is None:
            self._session = self._new_session(
                aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0))
        return self._session

    def _foreign_http(self) -> aiohttp.ClientSession:
        """The session for result hosts the operator did not point vidgate at."""
        if self._foreign is None:
            self._foreign = self._new_session(
                guarded_connector(self.policy, limit=self._max_downloads))
        return self._foreign

    def _new_session(self, connector: aiohttp.BaseConnector) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=connector, timeout=self._timeout(self.config.timeout_seconds),
            json_serialize=lambda obj: orjson.dumps(obj).decode(), trust_env=False,
        )

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
            started = time.perf_counter()
            try:
                async with self._http().request(
                    method, yarl.URL(url, encoded=True), headers=headers, json=json,
                    data=_multipart(files) if files is not None else None, params=params,
                    allow_redirects=False,
                ) as response:
                    return UpstreamResponse(response.status, response.headers,
                                            await response.read())
            except (TimeoutError, aiohttp.ClientError) as exc:
                message = f"{method} {path} failed: {type(exc).__name__}"
                if submit:
                    raise SubmitRefused(message, answer_lost=not _never_sent(exc)) from exc
                raise TransientError(message) from exc
            finally:
                self._observe(method, time.perf_counter() - started)

    def _observe(self, method: str, seconds: float) -> None:
        child = self._latency.get(method)
        if child is None:
            child = self._latency[method] = metrics.upstream_duration.labels(
                self.config.name, method.upper())
        child.observe(seconds)

    async def get_json(self, url: str, limit: int = 256 * 1024) -> Any:
        """A small public JSON document at a URL the operator configured (a provider's
        published keys): fetched without the channel's key, which it does not need."""
        try:
            async with self._http().get(url, allow_redirects=False) as response:
                body = await response.content.read(limit + 1)
                if response.status != 200 or len(body) > limit:
                    raise TransientError(f"GET {url} answered HTTP {response.status}")
                return orjson.loads(body)
        except (TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError) as exc:
            raise TransientError(f"GET {url} failed: {type(exc).__name__}") from exc

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
                try:
                    async with self._session_for(url).get(
                        url, headers=await self.headers_for(url), allow_redirects=False,
                        timeout=self._timeout(self.config.download_timeout_seconds),
                    ) as response:
                        if response.status in _REDIRECTS and "location" in response.headers:
                            url = urljoin(url, response.headers["location"])
                            continue
                        _check_download(UpstreamResponse(response.status, response.headers))
                        return await self._write(response, dest)
                except AddressRefused as exc:
                    raise ResultUnavailable("the result URL points at a private address") from exc
                except (TimeoutError, aiohttp.ClientError) as exc:
                    raise TransientError(f"download failed: {type(exc).__name__}") from exc
        raise ResultUnavailable("the result URL redirects too many times")

    def _session_for(self, url: str) -> aiohttp.ClientSession:
        """The channel's own origin is trusted (the operator pointed vidgate at it); any
        other host goes through the guard unless the operator allows private results."""
        try:
            parsed = yarl.URL(url)
        except ValueError:
            parsed = yarl.URL()
        if parsed.scheme not in ("http", "https") or not parsed.raw_host:
            raise ResultUnavailable("the result URL is not an http(s) URL")
        if self.config.allow_private_result_urls or origin_of(url) == self.origin:
            return self._http()
        check_host(parsed.raw_host, self.policy)  # names are checked by the resolver
        return self._foreign_http()

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

    async def close(self) -> None:
        for session in (self._session, self._foreign):
            if session is not None:
                await session.close()


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


def _never_sent(exc: BaseException) -> bool:
    """Whether a failed request certainly never reached the upstream (no connection was
    made); any other failure may have lost the answer to a request it handled."""
    return isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError))
