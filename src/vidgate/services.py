"""What a request handler may use: one typed object, built once per process by `app.py`.

Routes reach it through `api.deps.services_of` (FastAPI) or hold it directly (the fast path
in `api/hot_routes.py`), so an editor can follow a call from a route to the database.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from starlette.requests import Request

from .api.key_cache import KeyCache
from .characters import CharacterService
from .config import Settings
from .derived import DerivedVideos
from .domain import Task
from .engine.callbacks import CallbackIntake
from .engine.janitor import Janitor
from .engine.router import Router
from .engine.scheduler import Engine
from .engine.webhooks import WebhookSender
from .observability.health import Readiness
from .observability.scrape import Scrape
from .ratelimit import RateLimiter
from .signing import AssetLinks, Signer
from .store.blobs import BlobStore
from .store.database import Database
from .store.keys import Keys
from .tasks import TaskService
from .watch import TaskWatch


@dataclass
class Services:
    settings: Settings
    db: Database
    blobs: BlobStore
    tasks: TaskService
    signer: Signer
    engine: Engine | None
    limiter: RateLimiter
    webhooks: WebhookSender | None
    accounts: Keys
    janitor: Janitor | None
    key_cache: KeyCache
    router: Router  # channels, breakers (read-only outside the engine: GET /admin/channels)
    watch: TaskWatch  # live progress for the SSE routes (api/events.py)
    readiness: Readiness
    scrape: Scrape
    callbacks: CallbackIntake
    derived: DerivedVideos
    characters: CharacterService

    def links(self, task: Task, request: Request) -> AssetLinks:
        return self.links_at(task, str(request.base_url))

    def links_at(self, task: Task, request_base_url: str) -> AssetLinks:
        """Fresh signed links, under VIDGATE_PUBLIC_URL when set, else the request's base."""
        base = self.settings.public_url or request_base_url
        return self.signer.links(task, base, time.time())
