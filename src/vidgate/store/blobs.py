"""Blob storage for finished videos, previews and reference images.

Two stores with one interface: a local folder (the default), and any S3-compatible service
(AWS S3, MinIO, Cloudflare R2, Ceph...) for deployments with many API and worker processes.
Objects are written whole from finished files, so a reader never sees half of one, and read
in ranges, so a download is streamed and never held in memory.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class BlobInfo:
    size: int
    etag: str  # quoted, ready for an ETag header


class BlobStore(Protocol):
    async def put_file(self, key: str, source: Path, *, move: bool = False) -> int: ...

    async def put_bytes(self, key: str, data: bytes) -> int: ...

    async def get_bytes(self, key: str) -> bytes: ...

    async def stat(self, key: str) -> BlobInfo | None: ...

    def read_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes start..end inclusive, in chunks."""
        ...

    def local_path(self, key: str) -> Path | None:
        """A file on this machine holding the blob, served directly; None if remote."""
        ...

    async def delete_prefix(self, prefix: str) -> None: ...


def open_store(url: str | None, data_dir: Path) -> BlobStore:
    """`None` or a path: a local folder; `s3://bucket/prefix`: an S3-compatible service
    (credentials and endpoint from the usual AWS_* variables and VIDGATE_S3_ENDPOINT_URL)."""
    if url and url.startswith("s3://"):
        parts = urlsplit(url)
        return S3BlobStore(parts.netloc, parts.path.strip("/"),
                           endpoint_url=os.environ.get("VIDGATE_S3_ENDPOINT_URL") or None)
    if url and "://" in url:
        raise SystemExit(f"VIDGATE_BLOB_URL must be a folder or s3://bucket/prefix, got {url!r}")
    return LocalBlobStore(Path(url) if url else data_dir / "blobs")


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()

    def path(self, key: str) -> Path:
        """The file of `key`, which must name a file inside the store.

        Checked on the key's text, not by resolving the path (a system call per folder on
        every put and read): only vidgate writes in the store, so no link inside leads out.
        """
        normal = os.path.normpath(key)
        if not key or os.path.isabs(normal) or normal == "." or normal.split(os.sep)[0] == "..":
            raise ValueError(f"blob key escapes the store: {key!r}")
        return self.root / normal

    def local_path(self, key: str) -> Path | None:
        return self.path(key)

    async def put_file(self, key: str, source: Path, *, move: bool = False) -> int:
        """Store `source` under `key` atomically; returns its size in bytes."""
        return await asyncio.to_thread(self._put_file, key, source, move)

    def _put_file(self, key: str, source: Path, move: bool) -> int:
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        try:
            if move:
                try:
                    os.replace(source, tmp)
                except OSError as exc:
                    if exc.errno != errno.EXDEV:
                        raise
                    # the blob folder is another filesystem than the work dir: copy it over
                    shutil.copyfile(source, tmp)
                    source.unlink()
            else:
                shutil.copyfile(source, tmp)
            os.replace(tmp, dest)
        except BaseException:
            # e.g. the disk is full: leave no half-written .part taking the space (only a
            # complete file is ever renamed to its key, and only a key is ever served)
            tmp.unlink(missing_ok=True)
            raise
        return dest.stat().st_size

    async def put_bytes(self, key: str, data: bytes) -> int:
        return await asyncio.to_thread(self._put_bytes, key, data)

    def _put_bytes(self, key: str, data: bytes) -> int:
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return len(data)

    async def get_bytes(self, key: str) -> bytes:
        return await asyncio.to_thread(self.path(key).read_bytes)

    async def stat(self, key: str) -> BlobInfo | None:
        try:
            st = os.stat(self.path(key))
        except FileNotFoundError:
            return None
        # Stored blobs never change in place (a new attempt writes a new key), so the key
        # and size identify the bytes.
        return BlobInfo(st.st_size, _etag(f"{key}:{st.st_size}"))

    async def read_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        with open(self.path(key), "rb") as f:
            f.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = await asyncio.to_thread(f.read, min(CHUNK, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk

    async def delete_prefix(self, prefix: str) -> None:
        """Remove every blob under a folder-like prefix (e.g. one task's assets)."""
        await asyncio.to_thread(shutil.rmtree, self.path(prefix), True)


class S3BlobStore:
    """S3 through boto3 (in threads: boto3's clients are thread-safe and well proven)."""

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 client=None) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError as exc:
            raise SystemExit("an s3:// VIDGATE_BLOB_URL needs boto3: "
                             "pip install 'vidgate[s3]'") from exc

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client or boto3.client(
            "s3", endpoint_url=endpoint_url,
            config=Config(retries={"max_attempts": 5, "mode": "standard"},
                          max_pool_connections=32),
        )

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def local_path(self, key: str) -> Path | None:
        return None

    async def put_file(self, key: str, source: Path, *, move: bool = False) -> int:
        size = source.stat().st_size
        # upload_file streams from disk in parts (multipart for large videos)
        await asyncio.to_thread(self.client.upload_file, str(source), self.bucket,
                                self._key(key))
        if move:
            source.unlink(missing_ok=True)
        return size

    async def put_bytes(self, key: str, data: bytes) -> int:
        await asyncio.to_thread(self.client.put_object, Bucket=self.bucket,
                                Key=self._key(key), Body=data)
        return len(data)

    async def get_bytes(self, key: str) -> bytes:
        def read() -> bytes:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

        return await asyncio.to_thread(read)

    async def stat(self, key: str) -> BlobInfo | None:
        from botocore.exceptions import ClientError

        try:
            head = await asyncio.to_thread(self.client.head_object, Bucket=self.bucket,
                                           Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return BlobInfo(head["ContentLength"], head.get("ETag") or _etag(key))

    async def read_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        response = await asyncio.to_thread(
            self.client.get_object, Bucket=self.bucket, Key=self._key(key),
            Range=f"bytes={start}-{end}")
        body = response["Body"]
        try:
            while True:
                chunk = await asyncio.to_thread(body.read, CHUNK)
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    async def delete_prefix(self, prefix: str) -> None:
        def delete() -> None:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix) + "/"):
                objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if objects:
                    self.client.delete_objects(Bucket=self.bucket,
                                               Delete={"Objects": objects, "Quiet": True})

        await asyncio.to_thread(delete)


def _etag(text: str) -> str:
    return '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'
