"""One sandbox render: a RenderSpec encoded to an H.264/AAC MP4, then its previews.

The sandbox backend is a procedural renderer, not a generative model: it exists so the
whole gateway (jobs, storage, downloads, previews) works end to end without a GPU or the
network. The output is byte-identical for the same spec on the same host.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import av

from ...media.files import SPRITESHEET_NAME, THUMBNAIL_NAME, VIDEO_NAME, StrPath
from ...media.previews import make_previews
from ...media.probe import MediaInfo, probe
from .audio import SAMPLE_RATE, Tone
from .caption import make_caption
from .picture import Picture, make_picture
from .planes import Overlay, Planes, tag_bt709
from .progress import Progress
from .spec import RenderSpec, spec_rng

T = TypeVar("T")

AUDIO_BITRATE = 128_000
X264_PRESET = "veryfast"
X264_CRF = 23
X264_THREADS = 2  # sliced threads; fixed so the bitstream does not depend on the host
MAX_DIMENSION = 8192
MAX_SECONDS = 3600
MAX_FPS = 120
_ENCODE_PERCENT = 95  # progress share of the encode; previews take the rest up to 99


def render_sandbox(
    spec: RenderSpec,
    out_dir: StrPath,
    progress_path: StrPath | None = None,
) -> MediaInfo:
    """Render ``spec`` procedurally into ``out_dir`` (video, thumbnail, spritesheet).

    Top-level and argument-only, so it can run in a ProcessPoolExecutor worker. The video
    is written under a temporary name and renamed, so ``video.mp4`` is never partial.
    Progress (0..99 while working, 100 once all three files exist) goes to
    ``progress_path`` if given.
    """
    _validate(spec)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    progress = Progress(progress_path)
    progress.update(0, force=True)

    video_path = out / VIDEO_NAME
    tmp = out / f".{VIDEO_NAME}.{os.getpid()}.partial"
    try:
        _encode(spec, tmp, progress)
        os.replace(tmp, video_path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    progress.update(_ENCODE_PERCENT + 1, force=True)
    make_previews(video_path, out / THUMBNAIL_NAME, out / SPRITESHEET_NAME)
    info = probe(video_path)
    progress.update(100, force=True)
    return info


def _validate(spec: RenderSpec) -> None:
    for name in ("width", "height"):
        value = getattr(spec, name)
        if not isinstance(value, int) or not 2 <= value <= MAX_DIMENSION or value % 2:
            raise ValueError(f"{name} must be an even integer in 2..{MAX_DIMENSION}, got {value!r}")
    if not isinstance(spec.seconds, int) or not 1 <= spec.seconds <= MAX_SECONDS:
        raise ValueError(f"seconds must be an integer in 1..{MAX_SECONDS}, got {spec.seconds!r}")
    if not isinstance(spec.fps, int) or not 1 <= spec.fps <= MAX_FPS:
        raise ValueError(f"fps must be an integer in 1..{MAX_FPS}, got {spec.fps!r}")


def _prefetch(items: Iterator[T], depth: int = 3) -> Iterator[T]:
    """Run a generator in a helper thread, bounded by ``depth`` items.

    Frame synthesis (numpy/Pillow) and x264 both release the GIL, so on two cores this
    roughly overlaps them. Order is preserved, so output stays deterministic.
    """
    q: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(kind: str, value: object) -> bool:
        while not stop.is_set():
            try:
                q.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put("item", item):
                    return
        except BaseException as exc:  # handed to the consumer thread
            put("error", exc)
            return
        put("done", None)

    thread = threading.Thread(target=work, name="vidgate-frames", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "done":
                return
            if kind == "error":
                assert isinstance(value, BaseException)
                raise value
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


def _frames(spec: RenderSpec) -> Iterator[av.VideoFrame]:
    """All video frames of the spec, in order, each a fresh VideoFrame with pts set.

    Set-up (including decoding ``first_frame``) runs eagerly, so bad input fails before
    any output file is opened; only the per-frame work is lazy.
    """
    picture = make_picture(spec, spec_rng(spec))
    caption = make_caption(spec.prompt, spec.width, spec.height)
    return _frame_loop(spec, picture, caption)


def _frame_loop(
    spec: RenderSpec,
    picture: Picture,
    caption: tuple[Overlay, int, int] | None,
) -> Iterator[av.VideoFrame]:
    # The caption fades in over half a second so frame 0 is the clean picture
    # (for image-to-video, exactly the supplied image).
    fade = max(1, spec.fps // 2)
    planes = Planes(spec.width, spec.height)
    for i in range(spec.seconds * spec.fps):
        picture.render(planes, i / spec.fps)
        if caption is not None and i > 0:
            overlay, x, y = caption
            overlay.apply(planes, x, y, strength=min(256, 256 * i // fade))
        frame = planes.to_frame()
        frame.pts = i
        frame.time_base = Fraction(1, spec.fps)
        yield frame


def _encode(spec: RenderSpec, path: Path, progress: Progress) -> None:
    total_frames = spec.seconds * spec.fps
    total_samples = spec.seconds * SAMPLE_RATE
    tone = Tone(spec_rng(spec), total_samples)
    frames = _frames(spec)
    options = {"movflags": "+faststart"}
    with av.open(str(path), mode="w", format="mp4", options=options) as container:
        video = container.add_stream("libx264", rate=spec.fps)
        video.width, video.height, video.pix_fmt = spec.width, spec.height, "yuv420p"
        ctx = video.codec_context
        ctx.time_base = Fraction(1, spec.fps)
        ctx.gop_size = spec.fps * 2  # a keyframe every 2 s keeps seeking cheap
        # x264 output is reproducible for a *fixed* thread count, so never use "auto"
        # (which would depend on the host's cores); two slices use both cores of a small box.
        ctx.thread_type = "SLICE"
        ctx.thread_count = X264_THREADS
        tag_bt709(ctx)
        video.options = {
            "preset": X264_PRESET,
            "crf": str(X264_CRF),
            # x264's AVX-512 MB-tree code gave run-to-run different bitstreams for identical
            # input (seen on Zen 4 with this wheel's x264). Without MB-tree the output is
            # byte-identical per host, for ~1.3-2x larger files at the same CRF.
            "x264-params": "mbtree=0",
        }

        audio = container.add_stream("aac", rate=SAMPLE_RATE, layout="stereo")
        audio.bit_rate = AUDIO_BITRATE
        samples_done = 0

        for i, frame in enumerate(_prefetch(frames)):
            container.mux(video.encode(frame))
            target = min(total_samples, (i + 1) * SAMPLE_RATE // spec.fps)
            if target > samples_done:
                block = tone.block(samples_done, target - samples_done)
                aframe = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
                aframe.sample_rate = SAMPLE_RATE
                aframe.pts = samples_done
                aframe.time_base = Fraction(1, SAMPLE_RATE)
                container.mux(audio.encode(aframe))
                samples_done = target
            progress.update(_ENCODE_PERCENT * (i + 1) // total_frames)
        if samples_done < total_samples:  # only reachable if fps does not divide evenly
            block = tone.block(samples_done, total_samples - samples_done)
            aframe = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
            aframe.sample_rate, aframe.pts = SAMPLE_RATE, samples_done
            aframe.time_base = Fraction(1, SAMPLE_RATE)
            container.mux(audio.encode(aframe))
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
