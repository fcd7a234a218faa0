"""Reference images: decode data: URLs, fetch http(s) URLs safely, validate with Pillow.

Fetching a client-supplied URL from inside a private network is a classic SSRF hole, so:

- every address a name resolves to is checked, and one bad address refuses the whole URL;
- the connection then goes to the very address that was checked (the URL's host is kept for
  `Host` and TLS), so a second DNS answer cannot swap in an internal address (rebinding);
- redirects are followed by hand and every hop is checked the same way before it is opened;
- one parser (httpx's) reads the URL for both the check and the request, so the two cannot
  disagree about which host is meant;
- the environment is not trusted (no proxies, no .netrc credentials), the body is read raw
  (never decompressed) and capped, and the whole fetch, redirects included, has one deadline.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

import httpx

from .catalog import ImageInput
from .errors import ApiError
from .media import images as media

MAX_REDIRECTS = 3
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Never reachable through `allow_private`, only by listing them in `allowed_networks`:
# link-local holds the cloud metadata services (169.254.169.254, fd00:ec2::254 is AWS's IPv6
# one, 100.100.100.200 Alibaba's), "this network" and multicast are never image hosts.
_ALWAYS_REFUSED = tuple(ipaddress.ip_network(n) for n in (
    "169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32",
    "0.0.0.0/8", "::/128", "224.0.0.0/4", "ff00::/8",
))
# NAT64 prefixes: the IPv4 address in the low 32 bits is where the packets really go
# (an IPv6-only host with DNS64 sees every IPv4-only image host this way).
_NAT64 = tuple(ipaddress.ip_network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48"))


@dataclass(frozen=True)
class ImagePolicy:
    max_bytes: int = 20 * 1024 * 1024
    timeout_seconds: float = 10.0
    allow_private: bool = False             # operators may allow loopback/private sources
    allowed_networks: tuple[str, ...] = field(default_factory=tuple)
    networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Parsed once, so a bad CIDR fails at start-up rather than on some request.
        parsed = tuple(ipaddress.ip_network(n.strip(), strict=False)
                       for n in self.allowed_networks)
        object.__setattr__(self, "networks", parsed)


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


def address_allowed(address: str, policy: ImagePolicy) -> bool:
    """May the gateway open a connection to `address` to fetch a client's image?"""
    ip = _canonical(ipaddress.ip_address(address.split("%", 1)[0]))  # drop an IPv6 zone
    if any(ip in net for net in policy.networks):
        return True
    if any(ip in net for net in _ALWAYS_REFUSED):
        return False
    if policy.allow_private:
        return True
    return _public(ip)


def _canonical(ip: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is that IPv4 address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _public(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and any(ip in net for net in _NAT64):
        return _public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if not ip.is_global or ip.is_reserved or ip.is_multicast:
        return False
    return all(_public(inner) for inner in _embedded_ipv4(ip))


def _embedded_ipv4(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 one tunnels to (6to4, Teredo): they must be public too."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    return [a for a in (ip.sixtofour, *(ip.teredo or ())) if a is not None]


async def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, in the resolver's order (tests stand in for DNS)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def _vetted_addresses(url: httpx.URL, param: str, policy: ImagePolicy) -> list[str]:
    """Resolve the URL's host and refuse it unless every address is allowed."""
    if url.scheme not in ("http", "https"):
        raise bad_image("The image URL must be http(s).", param)
    host = url.host
    if not host:
        raise bad_image("The image URL has no host.", param)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        addresses = await resolve(host, port)
    except (OSError, UnicodeError) as exc:
        raise bad_image(f"The image host '{host}' could not be resolved.", param) from exc
    if not addresses or not all(address_allowed(a, policy) for a in addresses):
        raise bad_image(f"The image host '{host}' is not an allowed address.", param)
    return addresses


def _pinned_request(client: httpx.AsyncClient, url: httpx.URL, address: str) -> httpx.Request:
    """A request that connects to `address` while Host, SNI and the certificate use the name."""
    return client.build_request(
        "GET",
        url.copy_with(host=address),
        # identity: a compressed body could inflate far past the byte cap in one chunk
        headers={"Host": url.netloc.decode("ascii"), "Accept-Encoding": "identity"},
        extensions={"sni_hostname": url.host},
    )


async def _open(client: httpx.AsyncClient, url: httpx.URL, addresses: list[str]) -> httpx.Response:
    """Open a streamed response from the first vetted address that accepts a connection."""
    error: httpx.ConnectError | None = None
    for address in addresses:
        try:
            return await client.send(_pinned_request(client, url, address), stream=True)
        except httpx.ConnectError as exc:
            error = exc
    assert error is not None
    raise error


async def _fetch(url: str, param: str, policy: ImagePolicy) -> bytes:
    try:
        async with asyncio.timeout(policy.timeout_seconds):
            return await _follow(httpx.URL(url), param, policy)
    except TimeoutError as exc:
        raise bad_image(
            f"Fetching the image took longer than {policy.timeout_seconds:g} seconds.", param
        ) from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise bad_image(f"The image could not be fetched: {exc}", param) from exc


async def _follow(url: httpx.URL, param: str, policy: ImagePolicy) -> bytes:
    timeout = httpx.Timeout(policy.timeout_seconds)
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False,
                                 trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            addresses = await _vetted_addresses(url, param, policy)
            response = await _open(client, url, addresses)
            try:
                location = response.headers.get("location")
                if response.is_redirect and location:
                    url = url.join(location)  # checked at the top of the next round
                    continue
                if response.status_code != 200:
                    raise bad_image(
                        f"Fetching the image failed with HTTP {response.status_code}.", param
                    )
                return await _read_capped(response, param, policy.max_bytes)
            finally:
                await response.aclose()
    raise bad_image("The image URL redirects too many times.", param)


async def _read_capped(response: httpx.Response, param: str, cap: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise bad_image(f"The image is larger than {cap} bytes.", param)
    chunks = []
    total = 0
    async for chunk in response.aiter_raw():  # never inflated, whatever the server sends
        total += len(chunk)
        if total > cap:
            raise bad_image(f"The image is larger than {cap} bytes.", param)
        chunks.append(chunk)
    return b"".join(chunks)
