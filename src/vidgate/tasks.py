"""Use-cases on tasks: create, read, list, delete, remix, open content.

The HTTP families call these with canonical requests; this module applies the rules (catalog,
idempotency, ownership, readiness) and is the only place that inserts task rows.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable

import orjson

from .catalog import Catalog, ImageInput, RawVideoRequest, VideoRequest
from .domain import CHARACTERS, COMPLETED, QUEUED, VARIANTS, ApiKey, Task, new_task_id
from .errors import ApiError, expired, invalid, not_found
from .images import ImagePolicy, load_reference
from .observability import metrics, requestids
from .store.admission import ConcurrencyLimitReached
from .store.blobs import BlobStore
from .store.database import Database
from .store.ledger import InsufficientBalance

log = logging.getLogger("vidgate.tasks")


class TaskService:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        catalog: Catalog,
        *,
        image_policy: ImagePolicy,
        deadline_seconds: int,
        on_created=None,
        can_route: Callable[[VideoRequest, bool, str | None], bool] | None = None,
    ) -> None:
        self.keys = db.keys
        self.tasks = db.tasks
        self.characters = db.characters
        self.blobs = blobs
        self.catalog = catalog
        self.image_policy = image_policy
        self.deadline_seconds = deadline_seconds
        self._on_created = on_created or (lambda: None)
        # Whether some configured channel could ever serve a request (the router's answer);
        # asked before a row is written, so an unservable request leaves nothing behind.
        self._can_route = can_route or (lambda _request, _image, _operation=None: True)

    async def create(
        self,
        owner_id: str,
        raw: RawVideoRequest,
        *,
        family: str,
        idempotency_key: str | None = None,
        default_size: str = "1280x720",
        model_not_found_status: int = 400,
    ) -> Task:
        """Validate, store the reference image, insert the task as queued.

        `default_size` is the family's default for models that declare none (the built-ins:
        OpenAI's 720x1280 on /v1/videos); a declared model's own default wins.

        Everything that can reject the request happens before the row is written, so a
        rejected request leaves nothing behind.
        """
        request = self.catalog.normalize(
            raw, default_size=default_size, model_not_found_status=model_not_found_status
        )
        # not the family: a retry may go to another family (docs/families.md, Idempotency)
        fingerprint = request_hash("create", request, raw.image)
        if idempotency_key:
            _check_idempotency_key(idempotency_key)
            earlier = await self.tasks.find_by_idempotency_key(owner_id, idempotency_key)
            if earlier is not None:
                return _same_request(earlier, fingerprint)
        self._check_route(request, image=raw.image is not None)
        reference = None
        if raw.image is not None:
            reference = await load_reference(raw.image, self.image_policy)
        found = await self.keys.for_create(owner_id)
        account, has_characters = found if found else (None, False)
        named = (await self._characters_named(owner_id, request, raw.image is not None)
                 if has_characters else [])
        return await self.insert(owner_id, request, family, idempotency_key,
                                 blobs={"reference": reference} if reference else None,
                                 params={"characters": named} if named else None,
                                 request_hash=fingerprint, account=account)

    async def _characters_named(self, owner_id: str, request: VideoRequest,
                                image: bool) -> list[dict]:
        """The key's characters the prompt names (whole words, any case), when some channel
        that could serve the request takes characters; the engine routes by it. Asked only
        for keys that have characters (`Keys.for_create`): most have none."""
        found = [
            {"id": c.id, "name": c.name, "clip_key": c.clip_key, "upstreams": c.upstreams}
            for c in await self.characters.of_owner(owner_id)
            if re.search(rf"(?<!\w){re.escape(c.name)}(?!\w)", request.prompt, re.IGNORECASE)
        ]
        if found and self._can_route(request, image, CHARACTERS):
            return found[:1]  # a create takes one character: the newest one named
        return []

    async def insert(
        self,
        owner_id: str,
        request: VideoRequest,
        family: str,
        idempotency_key: str | None,
        *,
        blobs: dict[str, bytes] | None = None,
        params: dict | None = None,
        remixed_from: str | None = None,
        request_hash: str | None = None,
        account: ApiKey | None = None,
    ) -> Task:
        """Insert a checked request as a queued task, with its hold; `blobs` (name -> bytes)
        are stored under the task's prefix first (`reference` is the reference image), and
        removed again when the insert does not happen. `account` is the owner's key when the
        caller has just read it; else it is read here (money is never taken from a cache)."""
        account = account or await self.keys.get(owner_id)
        if account is None or not account.usable:  # revoked or removed since auth
            raise ApiError(401, "unauthorized", "Incorrect API key provided.")
        if not self.catalog.allows(account.allowed_models, request.model):
            raise ApiError(403, "forbidden",
                           f"This API key is not allowed to use the model '{request.model}'.",
                           param="model")
        now = time.time()
        params = _params(request.metadata, params, requestids.current())
        task = Task(
            id=new_task_id(),
            owner_id=owner_id,
            family=family,
            model=request.model,
            prompt=request.prompt,
            width=request.width,
            height=request.height,
            seconds=request.seconds,
            seed=request.seed,
            status=QUEUED,
            progress=0,
            created_at=int(now),
            status_updated_at=int(now),
            deadline_at=now + self.deadline_seconds,
            params=params,
            idempotency_key=idempotency_key or None,
            request_hash=request_hash if idempotency_key else None,
            remixed_from=remixed_from,
            backend=None,  # the engine binds the task to a channel when one accepts it
            next_poll_at=now,
            # limited keys pay up front for the requested length; settled on delivery
            hold_micro=0 if account.unlimited else self.catalog.price(request, params),
        )
        for name, data in (blobs or {}).items():
            await self.blobs.put_bytes(f"tasks/{task.id}/{name}", data)
        if blobs and "reference" in blobs:
            task.reference_key = f"tasks/{task.id}/reference"
        try:
            stored, created = await self.tasks.insert(
                task, max_concurrent=account.max_concurrent
            )
        except (InsufficientBalance, ConcurrencyLimitReached) as exc:
            if blobs:
                await self.blobs.delete_prefix(f"tasks/{task.id}")
            raise _account_error(exc, task.hold_micro, account) from exc
        if not created and blobs:
            await self.blobs.delete_prefix(f"tasks/{task.id}")
        if created:
            metrics.tasks_created.labels(task.model, family).inc()
            if task.hold_micro:
                metrics.credits_held_total.inc(task.hold_micro)
            log.info("created task %s (%s, %s)", task.id, task.model, family)
            self._on_created()
        else:  # a concurrent request with the same key inserted first
            stored = _same_request(stored, request_hash)
        return stored

    async def get(self, owner_id: str, task_id: str) -> Task:
        task = await self.tasks.get(task_id, owner_id)
        if task is None:
            raise not_found()
        return task

    async def list(
        self, owner_id: str, *, after: str | None, limit: int, order: str
    ) -> tuple[list[Task], bool]:
        if order not in ("asc", "desc"):
            raise invalid("'order' must be 'asc' or 'desc'.", param="order")
        if not 1 <= limit <= 100:
            raise invalid("'limit' must be between 1 and 100.", param="limit")
        return await self.tasks.list(
            owner_id, after=after or None, limit=limit, descending=order == "desc"
        )

    async def delete(self, owner_id: str, task_id: str) -> None:
        """Delete a task; an unfinished one is cancelled by the engine right after."""
        task = await self.get(owner_id, task_id)
        if not await self.tasks.mark_deleted(task.id, owner_id):
            raise not_found()
        if task.finished:
            await self.blobs.delete_prefix(f"tasks/{task.id}")
        self._on_created()

    async def remix(
        self, owner_id: str, task_id: str, prompt: object, idempotency_key: str | None = None
    ) -> Task:
        source = await self.get(owner_id, task_id)
        request = self.catalog.normalize(
            RawVideoRequest(
                prompt=prompt, model=source.model, size=source.size, seconds=source.seconds,
                seed=source.seed,
            )
        )
        if source.status != COMPLETED or not source.assets_available(time.time()):
            raise ApiError(
                400, "video_not_ready",
                "Only a completed video whose assets are still available can be remixed.",
                param="video_id",
            )
        fingerprint = request_hash(f"remix:{source.id}", request, None)
        if idempotency_key:
            _check_idempotency_key(idempotency_key)
            earlier = await self.tasks.find_by_idempotency_key(owner_id, idempotency_key)
            if earlier is not None:
                return _same_request(earlier, fingerprint)
        reference = await self.blobs.get_bytes(source.thumbnail_key) if source.thumbnail_key \
            else None
        self._check_route(request, image=reference is not None, image_param="video_id")
        # The remix starts from the source's representative frame (backends that cannot
        # remix by id use it); `remix_of` lets the source's channel remix its own video.
        remix_of = ({"channel": source.backend, "upstream_id": source.upstream_id}
                    if source.backend and source.upstream_id else None)
        return await self.insert(
            owner_id, request, source.family, idempotency_key,
            blobs={"reference": reference} if reference else None,
            params={"remix_of": remix_of} if remix_of else None, remixed_from=source.id,
            request_hash=fingerprint,
        )

    def check_operation(self, request: VideoRequest, operation: str) -> None:
        """400 unless some channel serving the request can perform `operation` (edit,
        extend) on it; nothing is written before this."""
        self._check_route(request)
        if not self._can_route(request, False, operation):
            raise ApiError(
                400, "unsupported_operation",
                f"No channel configured for the model {request.model} can {operation} "
                f"videos.", param="model")

    def _check_route(self, request: VideoRequest, image: bool = False,
                     image_param: str = "input_reference") -> None:
        """400 unless some channel could serve the request; `image`: it carries a reference
        image (an upload, or a remix's starting frame), which not every kind can take."""
        if self._can_route(request, image):
            return
        if image and self._can_route(request, False):
            raise ApiError(
                400, "no_available_channel",
                f"No channel that takes a reference image is configured to serve "
                f"{request.model} at {request.size} for {request.seconds} seconds.",
                param=image_param,
            )
        raise ApiError(
            400, "no_available_channel",
            f"No channel is configured to serve {request.model} at {request.size} for "
            f"{request.seconds} seconds.",
            param="model",
        )

    async def content(self, owner_id: str, task_id: str, variant: str) -> str:
        """The blob key of one of an owner's assets (the content route streams it)."""
        if variant not in VARIANTS:
            raise invalid(f"'variant' must be one of {', '.join(VARIANTS)}.", param="variant")
        return self.asset_key(await self.get(owner_id, task_id), variant)

    def asset_key(self, task: Task, variant: str) -> str:
        if task.status != COMPLETED:
            raise ApiError(
                400, "video_not_ready",
                f"Video is not ready yet (status: {task.status}).", param="video_id",
            )
        key = task.asset_key(variant)
        if not task.assets_available(time.time()) or key is None:
            raise expired()
        return key


MAX_IDEMPOTENCY_KEY_CHARS = 255  # the column's size


def _check_idempotency_key(key: str) -> None:
    if len(key) > MAX_IDEMPOTENCY_KEY_CHARS or not key.isprintable():
        raise invalid(f"'Idempotency-Key' must be at most {MAX_IDEMPOTENCY_KEY_CHARS} printable "
                      "characters.", param="Idempotency-Key")


def request_hash(kind: str, request: VideoRequest, image: ImageInput | None) -> str:
    """sha256 of the canonical request: two bodies that normalise to the same request (8 or
    "8s") hash the same; an uploaded image counts by its bytes, a URL by its text."""
    picture = None
    if image is not None:
        picture = (image.url if image.data is None
                   else "sha256:" + hashlib.sha256(image.data).hexdigest())
    canonical = {"kind": kind, "model": request.model, "prompt": request.prompt,
                 "size": request.size, "seconds": request.seconds, "seed": request.seed,
                 "metadata": request.metadata, "image": picture}
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _same_request(earlier: Task, fingerprint: str | None) -> Task:
    """The task an idempotency key made, if this request is the one that made it.

    A task from before migration 0003 has no hash: it is returned, as it always was."""
    if earlier.request_hash is not None and earlier.request_hash != fingerprint:
        raise ApiError(409, "idempotency_key_reused",
                       "This Idempotency-Key was already used with a different request; use a "
                       "new key for a new request.", param="Idempotency-Key")
    return earlier


def _params(metadata: dict, extra: dict | None, request_id: str | None) -> dict:
    """The task's params column; `request_id` lets the engine log with the creating
    request's id (tasks are logged about long after the request ended)."""
    params: dict = {"metadata": metadata, **(extra or {})}
    if request_id:
        params["request_id"] = request_id
    return params


def _account_error(exc: Exception, price: int, account: ApiKey) -> ApiError:
    if isinstance(exc, InsufficientBalance):
        return ApiError(
            402, "insufficient_quota",
            f"This request costs {price / 1e6:.2f} USD but the key's balance is "
            f"{(account.balance_micro or 0) / 1e6:.2f} USD.",
            type="insufficient_quota",
        )
    return ApiError(
        429, "rate_limited",
        f"This API key already has {account.max_concurrent} unfinished tasks; wait for one "
        "to finish.",
        headers={"Retry-After": "5"},
    )
