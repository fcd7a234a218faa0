"""The one address policy for every fetch of a URL that a client or an upstream chose.

Reference images come from client URLs and result videos from upstream URLs; fetched from
inside a private network, either could reach internal services (SSRF). Both fetchers build
their aiohttp connector with `guarded_connector`, so:

- every address a name resolves to is checked, and one bad address refuses the whole name;
- the resolver hands aiohttp only the addresses it checked, and aiohttp dials those very
  addresses (the URL's host is kept for `Host` and TLS), so a second DNS answer cannot swap
  in an internal address between the check and the connect (DNS rebinding);
- IP literals never reach a resolver in aiohttp, so `check_host` checks them before each hop.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

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
# (an IPv6-only host with DNS64 sees every IPv4-only host this way).
_NAT64 = tuple(ipaddress.ip_network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48"))


class AddressRefused(Exception):
    """The host is, or resolves to, an address the policy forbids.

    Not an OSError on purpose: aiohttp would wrap it as a connection error, and callers
    must tell "forbidden" (a final answer) from "unreachable" (maybe later)."""

    def __init__(self, host: str) -> None:
        super().__init__(f"{host} is not an allowed address")
        self.host = host


@dataclass(frozen=True)
class AddressPolicy:
    allow_private: bool = False             # operators may allow loopback/private hosts
    allowed_networks: tuple[str, ...] = field(default_factory=tuple)
    networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Parsed once, so a bad CIDR fails at start-up rather than on some request.
        parsed = tuple(ipaddress.ip_network(n.strip(), strict=False)
                       for n in self.allowed_networks)
        object.__setattr__(self, "networks", parsed)


def address_allowed(address: str, policy: AddressPolicy) -> bool:
    """May the gateway open a connection to `address` (an IP literal)?"""
    ip = _canonical(ipaddress.ip_address(address.split("%", 1)[0]))  # drop an IPv6 zone
    if any(ip in net for net in policy.networks):
        return True
    if any(ip in net for net in _ALWAYS_REFUSED):
        return False
    if policy.allow_private:
        return True
    return _public(ip)


def check_host(host: str, policy: AddressPolicy) -> None:
    """Refuse an IP-literal host the policy forbids; names are left to the resolver.

    Anything aiohttp would treat as a literal (a colon, or only digits and dots) must be a
    plain IP address: the legacy forms sockets accept (2130706433, 127.1, 0177.0.0.1) are
    refused rather than left to a parser that might read them differently from this one.
    """
    try:
        allowed = address_allowed(host, policy)
    except ValueError:
        if ":" in host or host.replace(".", "").isdigit():
            raise AddressRefused(host) from None
        return
    if not allowed:
        raise AddressRefused(host)


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


def system_resolver() -> AbstractResolver:
    """The resolver underneath the guard (tests stand in a fake one for DNS)."""
    return aiohttp.ThreadedResolver()


class GuardedResolver(AbstractResolver):
    """Resolves through `lower`, checks every answer, and returns only checked answers."""

    def __init__(self, policy: AddressPolicy, lower: AbstractResolver | None = None) -> None:
        self.policy = policy
        self._lower = lower or system_resolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        answers = await self._lower.resolve(host, port, family)
        if not answers or not all(address_allowed(a["host"], self.policy) for a in answers):
            raise AddressRefused(host)
        return answers

    async def close(self) -> None:
        await self._lower.close()


def guarded_connector(policy: AddressPolicy, *, lower: AbstractResolver | None = None,
                      limit: int = 100) -> aiohttp.TCPConnector:
    """A connector whose every connection goes to an address `policy` allows.

    No DNS cache: each new connection is resolved and checked afresh (these fetches are few
    and large, so a lookup each is nothing)."""
    return aiohttp.TCPConnector(resolver=GuardedResolver(policy, lower), use_dns_cache=False,
                                limit=limit, limit_per_host=0)
