"""Result videos of a given size and length for the provider fakes, rendered once."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from vidgate.backends.sandbox.render import render_sandbox
from vidgate.backends.sandbox.spec import RenderSpec

_RENDERS: dict[tuple[Path, int, int, int], Future] = {}
_RENDERS_LOCK = threading.Lock()
_RENDERER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fake-ark-render")


def render(work: Path, width: int, height: int, seconds: int) -> Future:
    """The result video of one size and length, rendered once per process in a thread (so
    fakes of several tests share it and none blocks its event loop)."""
    key = (work, width, height, seconds)
    with _RENDERS_LOCK:
        if key not in _RENDERS:
            folder = work / f"{width}x{height}x{seconds}"
            spec = RenderSpec(prompt=f"seedance {width}x{height}", width=width,
                              height=height, seconds=seconds, fps=4)

            def run() -> Path:
                render_sandbox(spec, folder)
                return folder / "video.mp4"

            _RENDERS[key] = _RENDERER.submit(run)
        return _RENDERS[key]
