"""The files of a finished video on disk: their names, and writing one so that a reader
never sees it half-written."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

VIDEO_NAME = "video.mp4"
THUMBNAIL_NAME = "thumbnail.webp"
SPRITESHEET_NAME = "spritesheet.jpg"
SOURCE_NAME = "source.mp4"  # an edit's or an extension's source, beside its task

StrPath = str | os.PathLike[str]


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write via a temp file in the same directory + os.replace, so readers never see a
    partial file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
