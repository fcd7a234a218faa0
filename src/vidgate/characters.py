"""Characters: a key stores a short clip under a name (`POST /v1/videos/characters`), reads
it back by id, and names it in a prompt to have it appear (TaskService.create).

The clip is probed like any source video first. It is also created on every channel that
takes characters (`openai` kinds: `POST /videos/characters` upstream), so a prompt naming
it works there; a channel that fails is logged and left out, the character still exists.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from .derived import probe_bytes
from .domain import CHARACTERS
from .engine.router import Router
from .errors import invalid, not_found
from .store.blobs import BlobStore
from .store.characters import Character, Characters

log = logging.getLogger("vidgate.characters")

MAX_NAME = 200


class CharacterService:
    def __init__(self, store: Characters, blobs: BlobStore, router: Router) -> None:
        self.store = store
        self.blobs = blobs
        self.router = router

    async def create(self, owner_id: str, name: Any, clip: bytes | None) -> Character:
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
            raise invalid(f"'name' is required: a string of 1..{MAX_NAME} characters.",
                          param="name")
        if clip is None:
            raise invalid("'video' is required: the character's clip as a file.",
                          param="video")
        await asyncio.to_thread(probe_bytes, clip)
        character = Character(id="char_" + secrets.token_hex(16), owner_id=owner_id,
                              name=name.strip(), created_at=int(time.time()), clip_key="")
        character.clip_key = f"characters/{character.id}/clip.mp4"
        await self.blobs.put_bytes(character.clip_key, clip)
        character.upstreams = await self._forward(character.name, clip)
        await self.store.insert(character)
        return character

    async def get(self, owner_id: str, character_id: str) -> Character:
        found = await self.store.get(character_id, owner_id)
        if found is None:
            raise not_found("character")
        return found

    async def _forward(self, name: str, clip: bytes) -> dict[str, str]:
        channels = [ch for ch in self.router.channels.values()
                    if CHARACTERS in getattr(ch.backend, "operations", ())
                    and hasattr(ch.backend, "create_character")]
        if not channels:
            return {}
        upstreams: dict[str, str] = {}
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "clip.mp4"
            path.write_bytes(clip)
            for channel in channels:
                try:
                    upstreams[channel.name] = await channel.backend.create_character(name, path)
                except Exception as exc:  # one channel's trouble is not the client's
                    log.warning("character not created on %s: %r", channel.name, exc)
        return upstreams


def character_object(character: Character) -> dict[str, Any]:
    """As the SDK reads it (types/video_create_character_response.py)."""
    return {"id": character.id, "name": character.name, "created_at": character.created_at}
