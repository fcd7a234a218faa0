"""Reference images: decode data: URLs, fetch http(s) URLs safely, validate with Pillow.

Fetching a client-supplied URL from inside a private network is a classic SSRF hole, so every
address a name resolves to (and every redirect hop) is checked before a byte is requested.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes, urljoin, urlsplit

import httpx

from . import media
from .catalog import ImageInput
from .errors import ApiError

MAX_REDIRECTS = 3
# Cloud metadata endpoints that are not covered by the private/link-local checks.
_METADATA_ADDRESSES = {ipaddress.ip_address("fd00:ec2::254")}


@dataclass(frozen=True)
class ImagePolicy:
    max_bytes: int = 20 * 1024 * 1024
    timeout_seconds: float = 10.0
    allow_private: bool = False             # operators may allow loopback/private sources
    allowed_networks: tuple[str, ...] = field(default_factory=tuple)


def bad_image(message: str, param: str) -> ApiError:
    return ApiError(400, "invalid_image", message, param=param)


async def load_reference(image: ImageInput, policy: ImagePolicy) -> bytes:
    """Return validated image bytes, or raise a 400 `invalid_image` naming the field."""
    if image.data is not None:
        data = image.data
    elif image.url is not None:
        data = await _from_url(image.url.strip(), image.param, policy)
    else:
        raise bad_image("No image was given.", image.param)
    if len(data) > policy.max_bytes:
        raise bad_image(f"The image is larger than {policy.max_bytes} bytes.", image.param)
    try:
        await asyncio.to_thread(media.decode_image, data)
    except ValueError as exc:
        raise bad_image(f"The image could not be decoded: {exc}", image.param) from exc
    return data


async def _from_url(url: str, param: str, policy: ImagePolicy) -> bytes:
    if url.startswith("data:"):
        return _decode_data_url(url, param)
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise bad_image("Image URLs must be http(s) or data: URLs.", param)
    return await _fetch(url, param, policy)


def _decode_data_url(url: str, param: str) -> bytes:
    header, sep, payload = url[5:].partition(",")
    if not sep:
        raise bad_image("Malformed data: URL.", param)
    try:
        if header.endswith(";base64"):
            return base64.b64decode(payload, validate=False)
        return unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as exc:
        raise bad_image("Malformed base64 in data: URL.", param) from exc


def address_allowed(address: str, policy: ImagePolicy) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in ipaddress.ip_network(net) for net in policy.allowed_networks):
        return True
    if policy.allow_private:
        return True
    return not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
        or ip.is_reserved or ip.is_unspecified or ip in _METADATA_ADDRESSES
        or ip in ipaddress.ip_network("100.64.0.0/10")
    )


async def _check_host(url: str, param: str, policy: ImagePolicy) -> None:
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        raise bad_image("The image URL has no host.", param)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise bad_image(f"The image host '{host}' could not be resolved.", param) from exc
    for info in infos:
        if not address_allowed(info[4][0], policy):
            raise bad_image(f"The image host '{host}' is not an allowed address.", param)


async def _fetch(url: str, param: str, policy: ImagePolicy) -> bytes:
    timeout = httpx.Timeout(policy.timeout_seconds)
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            await _check_host(url, param, policy)
            try:
                async with client.stream("GET", url) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        if urlsplit(url).scheme not in ("http", "https"):
                            raise bad_image("The image URL redirects to a non-http URL.", param)
                        continue
                    if response.status_code != 200:
                        raise bad_image(
                            f"Fetching the image failed with HTTP {response.status_code}.", param
                        )
                    return await _read_capped(response, param, policy.max_bytes)
            except httpx.HTTPError as exc:
                raise bad_image(f"The image could not be fetched: {exc}", param) from exc
    raise bad_image("The image URL redirects too many times.", param)


async def _read_capped(response: httpx.Response, param: str, cap: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise bad_image(f"The image is larger than {cap} bytes.", param)
    chunks = []
    total = 0
    async for chunk in response.aiter_bytes():
        total += len(chunk)
        if total > cap:
            raise bad_image(f"The image is larger than {cap} bytes.", param)
        chunks.append(chunk)
    return b"".join(chunks)
