"""How a channel proves who it is to its provider: the headers for a request to its origin.

`ChannelClient` asks for them only for requests bound for the channel's own origin, so a
credential never reaches a CDN or a redirect target elsewhere. Kinds whose credential expires
(a signed JWT, an OAuth token) implement `Credentials` and renew before the request that
needs it; everything else is a fixed header.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class Credentials(Protocol):
    async def headers(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class StaticHeaders:
    """A credential that never changes: a bearer token or a provider's own key header."""

    values: dict[str, str]

    async def headers(self) -> dict[str, str]:
        return self.values


def bearer(key: str | None) -> Credentials | None:
    return StaticHeaders({"Authorization": f"Bearer {key}"}) if key else None
