"""What Google's Veo models take and answer, shared by the `gemini` and `vertex` kinds.

Both APIs run Veo behind the same long-running `predictLongRunning` call: one instance
(prompt, optional first-frame image) plus `parameters`. They differ in where the finished
video sits in the operation (`generateVideoResponse.generatedSamples[].video` on the Gemini
API, `videos[]` on Vertex AI) and in which parameters they accept; the tables below are read
from google-genai 2.34.0 (`models.py`: `_GenerateVideosConfig_to_mldev`/`_to_vertex`,
`_GenerateVideosOperation_from_mldev`/`_from_vertex`) and the Vertex AI REST reference
(VideoGenerationModelParams).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..catalog import VideoRequest
from ..domain import COMPLETED, FAILED, IN_PROGRESS, MODERATION_BLOCKED, UPSTREAM_ERROR
from ..images import sniff_image
from .base import UNKNOWN, PollResult, ResultUnavailable, UpstreamFailed
from .http.answers import clean_message, dig, failure_code

# Canonical size -> (aspectRatio, resolution). Veo 3.x renders exactly these frames.
SIZES = {
    "1280x720": ("16:9", "720p"),
    "720x1280": ("9:16", "720p"),
    "1920x1080": ("16:9", "1080p"),
    "1080x1920": ("9:16", "1080p"),
}
SECONDS = (4, 6, 8)
# Veo 3.x renders 1080p only as an 8-second clip.
SECONDS_BY_RESOLUTION = {"720p": SECONDS, "1080p": (8,)}

# Set from the request's size and length; never from extra fields or metadata.
MAPPED = ("aspectRatio", "resolution", "durationSeconds")
# Never sent: vidgate takes one video, and reads it back inline or from the API.
FORBIDDEN = ("sampleCount", "storageUri", "pubsubTopic")

# Extra parameters each API accepts, by the name a channel or request may use for them
# (vidgate's snake_case spelling, or Veo's own) -> Veo's name.
_COMMON = {"negative_prompt": "negativePrompt", "person_generation": "personGeneration",
           "enhance_prompt": "enhancePrompt"}
# The Gemini API takes no seed, fps or generateAudio (google-genai raises for them).
GEMINI_PARAMETERS = _COMMON
VERTEX_PARAMETERS = {**_COMMON, "seed": "seed", "fps": "fps",
                     "generate_audio": "generateAudio"}
PARAMETERS = {"gemini": GEMINI_PARAMETERS, "vertex": VERTEX_PARAMETERS}

# How Veo words a refusal on its safety grounds, beyond what common.failure_code knows.
_RAI = re.compile(r"responsible ai|usage guidelines|\brai\b", re.IGNORECASE)


@dataclass(frozen=True)
class Clip:
    """The three parameters a canonical size and length become."""

    aspect_ratio: str
    resolution: str
    seconds: int

    def parameters(self) -> dict[str, Any]:
        return {"aspectRatio": self.aspect_ratio, "resolution": self.resolution,
                "durationSeconds": self.seconds}


def clip_for(size: str, seconds: int) -> Clip | None:
    """The Veo parameters for a size and length, or None when Veo cannot make that clip."""
    mapped = SIZES.get(size)
    if mapped is None or seconds not in SECONDS_BY_RESOLUTION[mapped[1]]:
        return None
    return Clip(mapped[0], mapped[1], seconds)


def channel_problems(kind: str, sizes: Iterable[str] | None, seconds: Iterable[int] | None,
                     extra_fields: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, message) problems of a Veo channel's configuration, so a channel can never
    let the router send a size, a length or a parameter that Veo would reject."""
    problems = []
    sizes = list(sizes or ())
    lengths = list(seconds or ())
    for size in sizes:
        if size not in SIZES:
            problems.append(("sizes", f"'{size}' is not a Veo size "
                                      f"(Veo makes {', '.join(SIZES)})"))
    for length in lengths:
        if length not in SECONDS:
            problems.append(("seconds", f"{length} is not a Veo length (Veo makes "
                                        f"{', '.join(map(str, SECONDS))} seconds)"))
    for size in sizes:
        for length in lengths:
            if size in SIZES and length in SECONDS and clip_for(size, length) is None:
                problems.append(("seconds", f"Veo makes {size} only as an 8-second clip; "
                                            f"put 1080p sizes in a channel with seconds [8]"))
                break
    for name in extra_fields:
        problem = parameter_problem(name, PARAMETERS[kind])
        if problem:
            problems.append(("extra_fields", problem))
    return problems


def parameter_problem(name: str, allowed: dict[str, str]) -> str | None:
    if name in MAPPED:
        return f"'{name}' is set from the request's size and seconds"
    if name in FORBIDDEN:
        return f"'{name}' is not supported by vidgate's Veo channels"
    if name not in allowed and name not in allowed.values():
        return (f"'{name}' is not a parameter this API accepts "
                f"(accepted: {', '.join(sorted(allowed))})")
    return None


def request_body(req: VideoRequest, fields: dict[str, Any], reference: bytes | None,
                 allowed: dict[str, str]) -> dict[str, Any]:
    """The predictLongRunning body; a field Veo does not take fails the job here rather
    than being dropped, since the client asked for it."""
    clip = clip_for(req.size, req.seconds)
    if clip is None:  # the channel check keeps the router from ever sending this
        raise UpstreamFailed(f"Veo cannot make a {req.size} clip of {req.seconds} s.")
    parameters = {}
    for name, value in fields.items():
        problem = parameter_problem(name, allowed)
        if problem:
            raise UpstreamFailed(f"Veo cannot honour this request: {problem}.",
                                 code=UPSTREAM_ERROR)
        parameters[allowed.get(name, name)] = value
    parameters.update(clip.parameters())
    instance: dict[str, Any] = {"prompt": req.prompt}
    if reference is not None:
        media_type, _ = sniff_image(reference)
        instance["image"] = {"bytesBase64Encoded": base64.b64encode(reference).decode(),
                             "mimeType": media_type}
    return {"instances": [instance], "parameters": parameters}


@dataclass(frozen=True)
class Layout:
    """Where an API puts the finished videos in an operation's `response`: the list, and
    the video object inside each item. The safety-filter counts sit beside the list."""

    samples: tuple[str, ...]
    video: tuple[str, ...] = ()

    def first(self, response: Any) -> dict | None:
        videos = dig(response, self.samples)
        video = dig(videos[0], self.video) if isinstance(videos, list) and videos else None
        return video if isinstance(video, dict) else None

    def beside(self, response: Any, name: str) -> Any:
        return dig(response, (*self.samples[:-1], name))


def read_operation(body: Any, layout: Layout) -> PollResult:
    """A PollResult from a google.longrunning Operation (a poll answer, and later the
    body of a push notification). Anything unreadable keeps the task polling."""
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        return PollResult(UNKNOWN)
    error = body.get("error")
    if isinstance(error, dict):
        message = str(error.get("message") or "")
        code = failure_code(str(error.get("code") or ""), message)
        if _RAI.search(message):
            code = MODERATION_BLOCKED
        return PollResult(FAILED, error_code=code,
                          error_message=clean_message(message, "Veo failed the job."))
    if body.get("done") is not True:
        return PollResult(IN_PROGRESS)
    response = body.get("response")
    video = layout.first(response)
    if video is not None:
        uri = video.get("uri") or video.get("gcsUri")
        if isinstance(uri, str) and uri.startswith(("http://", "https://")):
            return PollResult(COMPLETED, 100, result_url=uri)
        if isinstance(uri, str) and uri.startswith("gs://"):
            return PollResult(FAILED, error_code=UPSTREAM_ERROR, error_message=(
                "Veo wrote the video to Cloud Storage, which vidgate does not read; "
                "remove storageUri from the channel."))
        if video.get("encodedVideo") or video.get("bytesBase64Encoded"):
            return PollResult(COMPLETED, 100)  # inline: fetch reads it from the operation
    filtered = layout.beside(response, "raiMediaFilteredCount")
    if isinstance(filtered, int) and filtered > 0:
        reasons = layout.beside(response, "raiMediaFilteredReasons")
        text = "; ".join(str(r) for r in reasons) if isinstance(reasons, list) else ""
        return PollResult(FAILED, error_code=MODERATION_BLOCKED, error_message=clean_message(
            text, "Veo's safety filters blocked the video."))
    return PollResult(FAILED, error_code=UPSTREAM_ERROR,
                      error_message="Veo finished the job without a video.")


async def save_inline(body: Any, layout: Layout, dest: Path) -> None:
    """Write the first video an operation carries inline (base64) to `dest`; decoding and
    writing tens of megabytes goes to a thread to keep the loop free."""
    data = await asyncio.to_thread(inline_video, body, layout)
    if data is None:
        raise ResultUnavailable("the finished operation carries no video")
    await asyncio.to_thread(_write, dest, data)


def _write(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)


def inline_video(body: Any, layout: Layout) -> bytes | None:
    """The first video's bytes when the operation carries them inline (base64)."""
    video = layout.first(body.get("response") if isinstance(body, dict) else None)
    if video is None:
        return None
    encoded = video.get("encodedVideo") or video.get("bytesBase64Encoded")
    if not isinstance(encoded, str):
        return None
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None


def operation_name(body: Any, pattern: re.Pattern[str]) -> str | None:
    """The operation's name when it has the shape of `pattern` (it becomes a URL path, so
    nothing else may pass)."""
    name = body.get("name") if isinstance(body, dict) else None
    if isinstance(name, str) and len(name) <= 255 and pattern.fullmatch(name) \
            and ".." not in name:
        return name
    return None

