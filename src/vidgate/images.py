"""Reference images: decode data: URLs, fetch http(s) URLs safely, validate with Pillow.

Fetching a client-supplied URL from inside a private network is a classic SSRF hole, so the
fetch goes through `netguard` (every address checked, and the connection made to the
checked address), and besides:

- redirects are followed by hand and every hop is checked the same way before it is opened;
- one parser (yarl's, which aiohttp uses) reads the URL for both the check and the request,
  so the two cannot disagree about which host is meant;
- the environment is not trusted (no proxies, no .netrc credentials), the body is read raw
  (never decompressed) and capped, and the whole fetch, redirects included, has one deadline.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

import aiohttp
import yarl

from .catalog import ImageInput
from .errors import ApiError
from .media.images import decode_image
from .netguard import AddressPolicy, AddressRefused, check_host, guarded_connector

MAX_REDIRECTS = 3
_REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class ImagePolicy(AddressPolicy):
    """Where reference images may come from (the address rules) and how much to read."""

    max_bytes: int = 20 * 1024 * 1024
    timeout_seconds: float = 10.0


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
        await asyncio.to_thread(decode_image, data)
    except ValueError as exc:
        raise bad_image(f"The image could not be decoded: {exc}", image.param) from exc
    return data


async def _from_url(url: str, param: str, policy: ImagePolicy) -> bytes:
    if url[:5].lower() == "data:":
        return _decode_data_url(url, param, policy.max_bytes)
    if url.split(":", 1)[0].lower() not in ("http", "https"):
        raise bad_image("Image URLs must be http(s) or data: URLs.", param)
    return await _fetch(url, param, policy)


def _decode_data_url(url: str, param: str, max_bytes: int) -> bytes:
    header, sep, payload = url[5:].partition(",")
    if not sep:
        raise bad_image("Malformed data: URL.", param)
    # Refuse an oversized payload before decoding it (base64 is 4 chars per 3 bytes).
    if len(payload) > max_bytes * 4 // 3 + 1024:
        raise bad_image(f"The image is larger than {max_bytes} bytes.", param)
    try:
        if header.lower().endswith(";base64"):
            return _b64decode(payload)
        return unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as exc:
        raise bad_image("Malformed base64 in data: URL.", param) from exc


def _b64decode(payload: str) -> bytes:
    """Standard or URL-safe base64, percent-encoded or wrapped, padding optional."""
    text = "".join(unquote_to_bytes(payload).decode("ascii").split())
    text = text.replace("-", "+").replace("_", "/").rstrip("=")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


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
    """The image as a data: URL, the way upstreams that take JSON receive a reference."""
    media_type, _ = sniff_image(data)
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


async def _fetch(url: str, param: str, policy: ImagePolicy) -> bytes:
    try:
        async with asyncio.timeout(policy.timeout_seconds):
            return await _follow(yarl.URL(url), param, policy)
    except TimeoutError as exc:
        raise bad_image(
            f"Fetching the image took longer than {policy.timeout_seconds:g} seconds.", param
        ) from exc
    except AddressRefused as exc:
        raise bad_image(f"The image host '{exc.host}' is not an allowed address.", param) from exc
    except aiohttp.ClientConnectorDNSError as exc:
        raise bad_image(f"The image host '{exc.host}' could not be resolved.", param) from exc
    except (aiohttp.ClientError, ValueError) as exc:
        raise bad_image(f"The image could not be fetched: {exc}", param) from exc


async def _follow(url: yarl.URL, param: str, policy: ImagePolicy) -> bytes:
    session = aiohttp.ClientSession(
        connector=guarded_connector(policy), trust_env=False, auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=policy.timeout_seconds),
    )
    async with session:
        for _ in range(MAX_REDIRECTS + 1):
            _check_hop(url, param, policy)
            # identity: a compressed body could inflate far past the byte cap in one chunk
            async with session.get(url, allow_redirects=False,
                                   headers={"Accept-Encoding": "identity"}) as response:
                location = response.headers.get("location")
                if response.status in _REDIRECTS and location:
                    url = url.join(yarl.URL(location))  # checked at the top of the next round
                    continue
                if response.status != 200:
                    raise bad_image(
                        f"Fetching the image failed with HTTP {response.status}.", param
                    )
                return await _read_capped(response, param, policy.max_bytes)
    raise bad_image("The image URL redirects too many times.", param)


def _check_hop(url: yarl.URL, param: str, policy: ImagePolicy) -> None:
    if url.scheme not in ("http", "https"):
        raise bad_image("The image URL must be http(s).", param)
    if not url.raw_host:
        raise bad_image("The image URL has no host.", param)
    check_host(url.raw_host, policy)  # names are checked by the connector's resolver


async def _read_capped(response: aiohttp.ClientResponse, param: str, cap: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise bad_image(f"The image is larger than {cap} bytes.", param)
    chunks = []
    total = 0
    # auto_decompress is off: these are the bytes on the wire, whatever the server sends
    async for chunk in response.content.iter_chunked(64 * 1024):
        total += len(chunk)
        if total > cap:
            raise bad_image(f"The image is larger than {cap} bytes.", param)
        chunks.append(chunk)
    return b"".join(chunks)
