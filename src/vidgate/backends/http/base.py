"""The base of the HTTP backends: what the protocol kinds share besides the client."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...channels import ChannelConfig
from ...images import data_url
from ..base import (
    CallbackRefused,
    Job,
    PollResult,
    ResultFiles,
    ResultUnavailable,
    TransientError,
)
from .client import ChannelClient
from .credentials import Credentials, bearer


def put_image(body: dict[str, Any], field: str, reference: bytes) -> None:
    """Add the reference image as a data URL under `field` (a one-element list for
    `images`, the spelling that carries several)."""
    image = data_url(reference)
    body[field] = [image] if field == "images" else image


class HttpBackend:
    """What the three HTTP kinds have in common; each subclass speaks one protocol."""

    sticky = False
    supports_remix = False
    idempotent_submit = False  # the hosted providers document no idempotency key
    supports_callbacks = False  # kinds that take provider callbacks say so (base.CallbackKind)
    operations: frozenset[str] = frozenset()

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

    async def verify_callback(self, headers: Mapping[str, str], body: bytes,
                              now: float) -> str | None:
        raise CallbackRefused("this channel's kind takes no callbacks", status=404)

    def read_callback(self, body: bytes) -> PollResult:
        raise CallbackRefused("this channel's kind takes no callbacks", status=404)

    async def close(self) -> None:
        await self.client.close()
