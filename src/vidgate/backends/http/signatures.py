"""Checking the signatures providers put on their callbacks.

Two schemes, each from the provider's own documentation and SDK:

- Standard Webhooks (Replicate; `replicate/webhook.py` `Webhooks.validate` and the
  `standardwebhooks` package): HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`
  with the base64 key after `whsec_`, sent as space-separated `v1,<base64>` entries in
  `webhook-signature`.
- fal (docs.fal.ai, "Webhooks: verifying your webhook"): ED25519 over the lines
  `request_id`, `user_id`, `timestamp`, `sha256_hex(body)` joined with `\\n`, from the
  `X-Fal-Webhook-Request-Id`, `-User-Id`, `-Timestamp` headers, the signature in hex in
  `X-Fal-Webhook-Signature`; the public keys are the `x` (base64url) of fal's JWKS.

Both bound the timestamp to five minutes either side of now, as both documents say, so a
captured delivery cannot be replayed later.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..base import CallbackRefused

TOLERANCE_SECONDS = 300
JWKS_TTL_SECONDS = 24 * 3600   # fal: keys may rotate; cache them for at most a day
JWKS_RETRY_SECONDS = 60        # an unknown signature refetches the keys at most this often


def _fresh(timestamp: str | None, now: float) -> str:
    if not timestamp or not timestamp.strip().isdigit():
        raise CallbackRefused("the callback carries no usable timestamp")
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        raise CallbackRefused("the callback's timestamp is outside five minutes of now")
    return timestamp.strip()


def standard_webhook(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> str:
    """Verify a Standard Webhooks delivery; returns its `webhook-id`."""
    msg_id = headers.get("webhook-id")
    signatures = headers.get("webhook-signature")
    if not msg_id or not signatures:
        raise CallbackRefused("the callback is not signed (webhook-id, webhook-signature)")
    timestamp = _fresh(headers.get("webhook-timestamp"), now)
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"))
    except (binascii.Error, ValueError) as exc:
        raise CallbackRefused("the channel's webhook secret is not a whsec_ key",
                              status=503) from exc
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = hmac.new(key, signed, hashlib.sha256).digest()
    for entry in signatures.split():
        version, _, value = entry.partition(",")
        try:
            given = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        if version == "v1" and hmac.compare_digest(given, expected):
            return msg_id
    raise CallbackRefused("the callback's signature does not match")


def fal_message(headers: Mapping[str, str], body: bytes, now: float) -> tuple[bytes, bytes]:
    """(the signed message, the signature) of a fal delivery, timestamp checked."""
    request_id = headers.get("x-fal-webhook-request-id")
    user_id = headers.get("x-fal-webhook-user-id")
    signature = headers.get("x-fal-webhook-signature")
    if not request_id or not user_id or not signature:
        raise CallbackRefused("the callback is not signed (X-Fal-Webhook-* headers)")
    timestamp = _fresh(headers.get("x-fal-webhook-timestamp"), now)
    try:
        raw = bytes.fromhex(signature)
    except ValueError as exc:
        raise CallbackRefused("the callback's signature is not hex") from exc
    lines = [request_id, user_id, timestamp, hashlib.sha256(body).hexdigest()]
    return "\n".join(lines).encode(), raw


def ed25519_keys(jwks: Any) -> list[Ed25519PublicKey]:
    """The ED25519 keys of a JWKS document (`keys[].x`, base64url, padded or not)."""
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    found = []
    for item in keys if isinstance(keys, list) else []:
        x = item.get("x") if isinstance(item, dict) else None
        if not isinstance(x, str) or (item.get("crv") not in (None, "Ed25519")):
            continue
        try:
            raw = base64.urlsafe_b64decode(x.rstrip("=") + "=" * (-len(x.rstrip("=")) % 4))
            found.append(Ed25519PublicKey.from_public_bytes(raw))
        except (binascii.Error, ValueError):
            continue
    return found


class Jwks:
    """A provider's published keys, fetched on first use and kept for a day; a signature no
    known key matches refetches them (at most once a minute), for keys that rotated."""

    def __init__(self, fetch: Callable[[], Awaitable[Any]]) -> None:
        self._fetch = fetch
        self._keys: list[Ed25519PublicKey] = []
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()  # callbacks arriving together fetch the keys once

    async def keys(self, refresh: bool = False) -> list[Ed25519PublicKey]:
        async with self._lock:
            return await self._keys_now(refresh)

    async def _keys_now(self, refresh: bool) -> list[Ed25519PublicKey]:
        now = time.monotonic()
        age = now - self._fetched_at
        if not self._keys or age > JWKS_TTL_SECONDS or (refresh and age > JWKS_RETRY_SECONDS):
            try:
                fetched = ed25519_keys(await self._fetch())
            except Exception as exc:  # keep the keys we had; say why we cannot verify
                if not self._keys:
                    raise CallbackRefused("the provider's keys cannot be fetched now",
                                          status=503) from exc
                fetched = []
            if fetched:
                self._keys, self._fetched_at = fetched, now
        return self._keys

    async def verify(self, message: bytes, signature: bytes) -> None:
        for refresh in (False, True):
            for key in await self.keys(refresh):
                try:
                    key.verify(signature, message)
                    return
                except InvalidSignature:
                    continue
        raise CallbackRefused("the callback's signature does not match")
