"""Blob storage for finished videos, previews and reference images.

The default store is a local folder. Files enter it by rename (or copy) of a finished file, so a
reader never sees half of one; they are served with zero-copy file responses.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"blob key escapes the store: {key!r}")
        return path

    async def put_file(self, key: str, source: Path, *, move: bool = False) -> int:
        """Store `source` under `key` atomically; returns its size in bytes."""
        return await asyncio.to_thread(self._put_file, key, source, move)

    def _put_file(self, key: str, source: Path, move: bool) -> int:
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        if move:
            os.replace(source, tmp)
        else:
            shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
        return dest.stat().st_size

    async def put_bytes(self, key: str, data: bytes) -> int:
        return await asyncio.to_thread(self._put_bytes, key, data)

    def _put_bytes(self, key: str, data: bytes) -> int:
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        tmp.write_bytes(data)
        os.replace(tmp, dest)
        return len(data)

    async def get_bytes(self, key: str) -> bytes:
        return await asyncio.to_thread(self.path(key).read_bytes)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    async def delete_prefix(self, prefix: str) -> None:
        """Remove every blob under a folder-like prefix (e.g. one task's assets)."""
        await asyncio.to_thread(shutil.rmtree, self.path(prefix), True)
