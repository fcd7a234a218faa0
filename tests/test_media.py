"""Tests for vidgate.media and the sandbox renderer: real renders, real files, no mocks."""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import multiprocessing
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from vidgate.backends.sandbox.progress import read_progress
from vidgate.backends.sandbox.render import render_sandbox
from vidgate.backends.sandbox.spec import RenderSpec
from vidgate.media.files import SPRITESHEET_NAME, THUMBNAIL_NAME, VIDEO_NAME
from vidgate.media.images import decode_image
from vidgate.media.previews import make_previews
from vidgate.media.probe import MediaInfo, probe

W, H, SECONDS, FPS = 320, 240, 2, 24
PROMPT = "A red fox trotting through fresh snow at dawn, soft light, long shadows"


@dataclass
class Rendered:
    spec: RenderSpec
    out: Path
    info: MediaInfo
    progress_path: Path
    progress_samples: list[int]
    files_seen_at_100: list[bool]  # for each poll that read 100: did all three files exist?


def _render_sampling_progress(spec: RenderSpec, out: Path, progress_path: Path) -> Rendered:
    """Render while a thread polls the progress file, like the API would."""
    samples: list[int] = []
    files_seen_at_100: list[bool] = []
    names = (VIDEO_NAME, THUMBNAIL_NAME, SPRITESHEET_NAME)
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            value = read_progress(progress_path)
            if value is not None:
                samples.append(value)
                if value == 100:
                    files_seen_at_100.append(all((out / n).is_file() for n in names))
            time.sleep(0.002)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        info = render_sandbox(spec, out, progress_path)
    finally:
        done.set()
        poller.join()
    final = read_progress(progress_path)
    assert final is not None
    samples.append(final)
    return Rendered(spec, out, info, progress_path, samples, files_seen_at_100)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    base = tmp_path_factory.mktemp("render")
    spec = RenderSpec(prompt=PROMPT, width=W, height=H, seconds=SECONDS, seed=3, fps=FPS)
    # out_dir does not exist yet: render_sandbox must create it.
    return _render_sampling_progress(spec, base / "job" / "out", base / "progress" / "pct")


def _decoded_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def _frame_digests(path: Path) -> list[str]:
    return [hashlib.sha256(a.tobytes()).hexdigest() for a in _decoded_frames(path)]


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference between two uint8 images."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _top_level_boxes(data: bytes) -> list[bytes]:
    boxes, pos = [], 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
        boxes.append(kind)
        if size < 8:
            break
        pos += size
    return boxes


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _test_image(size: tuple[int, int]) -> Image.Image:
    """A smooth but strongly structured picture: gradients plus big shapes."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack(
        [xx * 255 // max(1, w - 1), yy * 255 // max(1, h - 1), np.full_like(xx, 60)], axis=-1
    ).astype(np.uint8)
    img = Image.fromarray(arr)
    draw = ImageDraw.Draw(img)
    draw.ellipse((w * 0.35, h * 0.2, w * 0.65, h * 0.8), fill=(250, 250, 250))
    draw.rectangle((w * 0.05, h * 0.05, w * 0.2, h * 0.3), fill=(0, 0, 0))
    return img


# --------------------------------------------------------------------------- render output


def test_out_dir_contains_exactly_the_three_files(rendered: Rendered) -> None:
    names = sorted(p.name for p in rendered.out.iterdir())
    assert names == sorted([VIDEO_NAME, THUMBNAIL_NAME, SPRITESHEET_NAME])


def test_video_geometry_frames_and_duration(rendered: Rendered) -> None:
    video = rendered.out / VIDEO_NAME
    info = probe(video)
    assert info == rendered.info
    assert (info.width, info.height) == (W, H)
    assert info.fps == pytest.approx(FPS)
    assert info.duration == pytest.approx(SECONDS, abs=0.1)
    assert info.has_audio is True
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        frames = list(container.decode(stream))
    assert len(frames) == SECONDS * FPS
    assert all((f.width, f.height) == (W, H) for f in frames)
    assert frames[-1].time == pytest.approx(SECONDS - 1 / FPS, abs=1e-6)


def test_audio_track_matches_length_and_is_a_soft_tone(rendered: Rendered) -> None:
    with av.open(str(rendered.out / VIDEO_NAME)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.name == "aac"
        assert stream.codec_context.sample_rate == 48_000
        assert float(stream.duration * stream.time_base) == pytest.approx(SECONDS, abs=0.1)
        chunks = [f.to_ndarray() for f in container.decode(stream)]
    samples = np.concatenate(chunks, axis=1)
    assert samples.shape[1] == pytest.approx(SECONDS * 48_000, abs=1024)
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    assert 0.01 < rms < 0.3
    assert float(np.abs(samples).max()) < 0.5


def test_mp4_is_faststart(rendered: Rendered) -> None:
    boxes = _top_level_boxes((rendered.out / VIDEO_NAME).read_bytes())
    assert b"moov" in boxes and b"mdat" in boxes
    assert boxes.index(b"moov") < boxes.index(b"mdat")


def test_picture_moves(rendered: Rendered) -> None:
    frames = _decoded_frames(rendered.out / VIDEO_NAME)
    # Compare frames after the caption fade-in, so only the picture itself can differ.
    assert _mad(frames[FPS], frames[-1]) > 3.0
    # Not a flat colour either.
    assert float(frames[len(frames) // 2].std()) > 5.0


def test_same_spec_renders_identical_bytes(rendered: Rendered, tmp_path: Path) -> None:
    again = render_sandbox(rendered.spec, tmp_path)
    assert again == rendered.info
    first = (rendered.out / VIDEO_NAME).read_bytes()
    assert (tmp_path / VIDEO_NAME).read_bytes() == first


def test_prompt_and_seed_change_the_frames(rendered: Rendered, tmp_path: Path) -> None:
    reference = _frame_digests(rendered.out / VIDEO_NAME)
    short = dict(width=W, height=H, seconds=1, fps=FPS)
    other_prompt = RenderSpec(prompt="A lighthouse in a storm", seed=3, **short)
    other_seed = RenderSpec(prompt=PROMPT, seed=4, **short)
    for i, spec in enumerate((other_prompt, other_seed)):
        render_sandbox(spec, tmp_path / str(i))
        digests = _frame_digests(tmp_path / str(i) / VIDEO_NAME)
        assert len(digests) == FPS
        assert not set(digests) & set(reference)
        # And visibly different, not just a few bits.
        a = _decoded_frames(tmp_path / str(i) / VIDEO_NAME)[0]
        b = _decoded_frames(rendered.out / VIDEO_NAME)[0]
        assert _mad(a, b) > 5.0


# --------------------------------------------------------------------------- previews


def test_thumbnail_is_webp_with_video_aspect(rendered: Rendered) -> None:
    with Image.open(rendered.out / THUMBNAIL_NAME) as img:
        assert img.format == "WEBP"
        img.load()
        # 320x240 is under the 640 px limit, so the thumbnail is not upscaled.
        assert img.size == (W, H)
        assert float(np.asarray(img.convert("L")).std()) > 5.0


def test_spritesheet_is_jpeg_grid_of_distinct_frames(rendered: Rendered) -> None:
    with Image.open(rendered.out / SPRITESHEET_NAME) as img:
        assert img.format == "JPEG"
        sheet = np.asarray(img.convert("RGB"))
    # 2 s video -> 10 tiles of 160x120 in 5 columns.
    assert sheet.shape == (2 * 120, 5 * 160, 3)
    tiles = [
        sheet[r * 120 : (r + 1) * 120, c * 160 : (c + 1) * 160] for r in (0, 1) for c in range(5)
    ]
    assert _mad(tiles[0], tiles[-1]) > 2.0


def test_thumbnail_keeps_aspect_and_caps_size(tmp_path: Path) -> None:
    spec = RenderSpec(prompt="portrait", width=720, height=1280, seconds=1, fps=4)
    render_sandbox(spec, tmp_path)
    with Image.open(tmp_path / THUMBNAIL_NAME) as img:
        assert img.size == (360, 640)
    with Image.open(tmp_path / SPRITESHEET_NAME) as img:
        assert img.size == (4 * 90, 160)  # only 4 frames exist -> 4 tiles, one row


def _write_counter_video(
    path: Path, frames: int, fps: int, gop: int, rotation: int | None = None
) -> None:
    """Grey frames whose brightness encodes the frame index, so previews can be checked."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.options = {"preset": "ultrafast"}
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i in range(frames):
            arr = np.full((64, 96, 3), 20 + (200 * i) // frames, dtype=np.uint8)
            arr[:, :16] = (255, 0, 0)  # red band on the left, to check rotation
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _expected_level(t: float, frames: int, fps: int) -> float:
    index = min(frames - 1, round(t * fps))
    return 20 + (200 * index) // frames


@pytest.mark.parametrize(("frames", "fps", "gop"), [(120, 2, 12), (90, 10, 90)])
def test_make_previews_on_foreign_video_picks_evenly_spaced_frames(
    tmp_path: Path, frames: int, fps: int, gop: int
) -> None:
    # (120, 2, 12): 60 s at 2 fps, keyframe every 6 s -> the seeking path.
    # (90, 10, 90): 9 s, a single keyframe -> the decode-forward path.
    video = tmp_path / "upstream.mp4"
    _write_counter_video(video, frames, fps, gop)
    thumb, sprite = tmp_path / "t.webp", tmp_path / "s.jpg"
    make_previews(video, thumb, sprite)

    duration = frames / fps
    with Image.open(sprite) as img:
        assert img.format == "JPEG"
        sheet = np.asarray(img.convert("L"), dtype=np.float64)
    tw, th = 96, 64  # smaller than the tile limit -> kept at native size
    columns = sheet.shape[1] // tw
    rows = sheet.shape[0] // th
    assert columns == 5 and sheet.shape == (rows * th, columns * tw)
    count = rows * columns
    assert 10 <= count <= 25
    levels = [
        sheet[
            (k // columns) * th : (k // columns + 1) * th,
            (k % columns) * tw + 24 : (k % columns + 1) * tw,
        ].mean()
        for k in range(count)
    ]
    expected = [_expected_level((k + 0.5) * duration / count, frames, fps) for k in range(count)]
    assert np.all(np.diff(levels) > 0)
    assert np.abs(np.array(levels) - np.array(expected)).max() < 6

    with Image.open(thumb) as img:
        assert img.format == "WEBP"
        assert img.size == (96, 64)
        level = np.asarray(img.convert("L"), dtype=np.float64)[:, 24:].mean()
    assert level == pytest.approx(_expected_level(duration / 3, frames, fps), abs=6)


def test_make_previews_applies_display_rotation(tmp_path: Path) -> None:
    video = tmp_path / "phone.mp4"
    _write_counter_video(video, 20, 10, 10, rotation=90)
    make_previews(video, tmp_path / "t.webp", tmp_path / "s.jpg")
    with Image.open(tmp_path / "t.webp") as img:
        thumb = np.asarray(img.convert("RGB"), dtype=np.float64)
    # Rotated 90 degrees counter-clockwise: portrait, and the left red band is at the bottom.
    assert thumb.shape[:2] == (96, 64)
    assert thumb[-8:, :, 0].mean() > 200 and thumb[-8:, :, 1].mean() < 60
    assert thumb[:8, :, 0].mean() < 150


def test_make_previews_rejects_non_video(tmp_path: Path) -> None:
    bogus = tmp_path / "x.mp4"
    bogus.write_bytes(b"this is not a video" * 100)
    with pytest.raises(ValueError):
        make_previews(bogus, tmp_path / "t.webp", tmp_path / "s.jpg")
    with pytest.raises(ValueError):
        probe(bogus)


# --------------------------------------------------------------------------- image to video


def test_first_frame_is_the_given_image_and_later_frames_derive_from_it(tmp_path: Path) -> None:
    source = _test_image((640, 300))  # wider than 4:3 -> cover-cropped
    spec = RenderSpec(
        prompt=PROMPT, width=W, height=H, seconds=2, fps=FPS, first_frame=_png(source)
    )
    render_sandbox(spec, tmp_path)
    frames = _decoded_frames(tmp_path / VIDEO_NAME)
    expected = np.asarray(ImageOps.fit(source, (W, H), Image.Resampling.LANCZOS))

    assert _mad(frames[0], expected) < 3.0
    # The caption fades in later: the bottom of frame 0 is the image too.
    assert _mad(frames[0][H * 2 // 3 :], expected[H * 2 // 3 :]) < 3.0
    # Later frames move (zoom/pan/colour) but are still clearly the same picture...
    last = frames[-1]
    assert _mad(last, frames[0]) > 3.0
    corr = np.corrcoef(last.reshape(-1).astype(float), expected.reshape(-1).astype(float))[0, 1]
    assert corr > 0.6
    # ...while an unrelated picture is far from the image, so the checks above can fail.
    unrelated = RenderSpec(prompt=PROMPT, width=W, height=H, seconds=1, fps=FPS)
    render_sandbox(unrelated, tmp_path / "plain")
    assert _mad(_decoded_frames(tmp_path / "plain" / VIDEO_NAME)[0], expected) > 20.0


def test_bad_first_frame_fails_without_leaving_a_video(tmp_path: Path) -> None:
    spec = RenderSpec(prompt="x", width=W, height=H, seconds=1, first_frame=b"\x89PNG garbage")
    with pytest.raises(ValueError, match="decode"):
        render_sandbox(spec, tmp_path)
    assert not (tmp_path / VIDEO_NAME).exists()
    assert [p.name for p in tmp_path.iterdir()] == []


# --------------------------------------------------------------------------- progress


def _check_progress(result: Rendered) -> None:
    samples = result.progress_samples
    assert samples[-1] == 100
    assert all(result.files_seen_at_100)  # 100 is only written once everything is done
    assert samples == sorted(samples)
    assert all(0 <= s <= 100 for s in samples)
    assert samples.count(100) == len(samples) - samples.index(100)  # 100 only at the very end


def test_progress_of_fixture_render(rendered: Rendered) -> None:
    _check_progress(rendered)
    # No temp files left next to the progress file.
    assert [p.name for p in rendered.progress_path.parent.iterdir()] == ["pct"]


def test_progress_is_monotonic_with_intermediate_values(tmp_path: Path) -> None:
    # Long enough (~1 s here) for several throttled (<= 4/s) updates to be observed.
    spec = RenderSpec(prompt="progress", width=640, height=360, seconds=12, fps=FPS)
    started = time.monotonic()
    result = _render_sampling_progress(spec, tmp_path / "out", tmp_path / "pct")
    elapsed = time.monotonic() - started
    samples = result.progress_samples
    _check_progress(result)
    assert samples[0] == 0
    if elapsed > 0.6:  # a much faster machine may legitimately finish between updates
        assert any(0 < s < 96 for s in samples), samples  # encoding progress was reported
    assert max(s for s in samples if s < 100) <= 99


def test_read_progress_is_tolerant(tmp_path: Path) -> None:
    path = tmp_path / "p"
    assert read_progress(path) is None
    path.write_text("42\n")
    assert read_progress(path) == 42
    for junk in ("", "abc", "4 2", "150", "-1", "\xff"):
        path.write_text(junk, encoding="latin-1")
        assert read_progress(path) is None
    assert read_progress(tmp_path) is None  # a directory


# --------------------------------------------------------------------------- decode_image


def test_decode_image_accepts_common_formats_and_normalises_to_rgb() -> None:
    img = _test_image((50, 40)).convert("RGBA")
    for fmt in ("PNG", "WEBP", "GIF"):
        buf = io.BytesIO()
        img.save(buf, format=fmt)
        out = decode_image(buf.getvalue())
        assert out.mode == "RGB" and out.size == (50, 40)
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG")
    assert decode_image(buf.getvalue()).size == (50, 40)


def test_decode_image_applies_exif_orientation() -> None:
    img = _test_image((60, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW for display
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    assert decode_image(buf.getvalue()).size == (20, 60)


@pytest.mark.parametrize(
    "data", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, b"\xff\xd8\xff"]
)
def test_decode_image_rejects_garbage(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_image(data)


def test_decode_image_rejects_truncated_file() -> None:
    data = _png(_test_image((200, 200)))
    with pytest.raises(ValueError):
        decode_image(data[: len(data) // 2])


def test_decode_image_rejects_oversized_before_decoding() -> None:
    data = _png(Image.new("RGB", (2000, 1000)))
    with pytest.raises(ValueError, match="too large"):
        decode_image(data, max_pixels=1_000_000)
    assert decode_image(data, max_pixels=2_000_000).size == (2000, 1000)


# --------------------------------------------------------------------------- misc


@pytest.mark.parametrize("change", [dict(width=321), dict(height=0), dict(seconds=0), dict(fps=0)])
def test_invalid_spec_is_rejected(tmp_path: Path, change: dict) -> None:
    base = dict(prompt="x", width=W, height=H, seconds=1, fps=FPS)
    with pytest.raises(ValueError):
        render_sandbox(RenderSpec(**{**base, **change}), tmp_path)


def test_tiny_frame_and_huge_prompt(tmp_path: Path) -> None:
    spec = RenderSpec(prompt="word " * 2000 + "x" * 500, width=64, height=48, seconds=1, fps=8)
    info = render_sandbox(spec, tmp_path)
    assert (info.width, info.height) == (64, 48)
    assert len(_decoded_frames(tmp_path / VIDEO_NAME)) == 8


def test_render_runs_in_a_process_pool(tmp_path: Path) -> None:
    spec = RenderSpec(prompt="pool", width=64, height=48, seconds=1, fps=8, seed=9)
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        info = pool.submit(render_sandbox, spec, str(tmp_path), str(tmp_path / "p")).result(60)
    assert info == probe(tmp_path / VIDEO_NAME)
    assert read_progress(tmp_path / "p") == 100
    # A worker process produces the same bytes as this process.
    render_sandbox(spec, tmp_path / "here")
    assert (tmp_path / "here" / VIDEO_NAME).read_bytes() == (tmp_path / VIDEO_NAME).read_bytes()


def test_media_package_does_not_import_backends() -> None:
    # media/ serves every backend and the engine; the sandbox renderer depends on it, never
    # the other way round (that would be a cycle through backends/sandbox/).
    import ast

    import vidgate.media

    root = Path(vidgate.media.__file__).parent
    offenders = []
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                module = "." * node.level + (node.module or "")
                names = [module] + [f"{module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            if any("backends" in n.split(".") for n in names):
                offenders.append(f"{path.name}: {names[0]}")
    assert len(list(root.glob("*.py"))) >= 4
    assert offenders == []
