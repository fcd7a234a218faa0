"""What the two Veo fakes (gemini.py, vertex.py) share: how Veo validates a request, the real
MP4 it renders for it, Google's error envelope, and a recorder of every request's origin
and credentials.

Sources: google-genai 2.34.0 `models.py` (`_GenerateVideosConfig_to_mldev` and
`_to_vertex`: which `parameters` each API takes; `_Image_to_mldev`/`_to_vertex`: the image
object), the Vertex AI REST reference VideoGenerationModelParams (aspectRatio 16:9|9:16,
resolution 720p|1080p, durationSeconds), and the Gemini API Veo guide (durations 4, 6, 8;
1080p only as an 8-second clip). Errors follow google.rpc.Status as both APIs return it:
{"error": {"code", "message", "status"}}.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from starlette.responses import Response

from vidgate.backends.sandbox.render import render_sandbox
from vidgate.backends.sandbox.spec import RenderSpec
from vidgate.media.files import VIDEO_NAME

# (aspectRatio, resolution) -> the frame Veo renders
FRAMES = {("16:9", "720p"): (1280, 720), ("9:16", "720p"): (720, 1280),
          ("16:9", "1080p"): (1920, 1080), ("9:16", "1080p"): (1080, 1920)}
DURATIONS = (4, 6, 8)
INSTANCE_FIELDS = {"prompt", "image", "video", "lastFrame", "referenceImages"}
# From _GenerateVideosConfig_to_mldev: what the Gemini API takes in `parameters`.
GEMINI_PARAMETERS = {"sampleCount", "durationSeconds", "aspectRatio", "resolution",
                     "personGeneration", "negativePrompt", "enhancePrompt"}
# From _GenerateVideosConfig_to_vertex.
VERTEX_PARAMETERS = GEMINI_PARAMETERS | {"storageUri", "fps", "seed", "pubsubTopic",
                                         "generateAudio", "compressionQuality", "resizeMode"}
REFUSAL = ("The prompt could not be submitted. This prompt contains sensitive words that "
           "violate Google's Responsible AI practices.")


def google_error(code: int, status: str, message: str) -> Response:
    return json_response({"error": {"code": code, "message": message, "status": status}},
                         code)


def json_response(data, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


@dataclass(frozen=True)
class Clip:
    width: int
    height: int
    seconds: int


def check_request(body, parameter_names: set[str]) -> tuple[Clip, str, dict] | str:
    """(clip, prompt, the instance) of a valid predictLongRunning body, or why Veo would
    answer 400 INVALID_ARGUMENT."""
    if not isinstance(body, dict) or not isinstance(body.get("instances"), list) \
            or len(body["instances"]) != 1 or not isinstance(body["instances"][0], dict):
        return "instances must hold exactly one instance"
    instance = body["instances"][0]
    if set(instance) - INSTANCE_FIELDS:
        return f"unknown instance fields {sorted(set(instance) - INSTANCE_FIELDS)}"
    prompt = instance.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        return "prompt is required"
    image = instance.get("image")
    if image is not None and (not isinstance(image, dict)
                              or not isinstance(image.get("bytesBase64Encoded"), str)
                              or not isinstance(image.get("mimeType"), str)):
        return "image needs bytesBase64Encoded and mimeType"
    parameters = body.get("parameters") or {}
    unknown = set(parameters) - parameter_names
    if unknown:
        return f"Invalid JSON payload received. Unknown name {sorted(unknown)[0]!r}"
    aspect = parameters.get("aspectRatio", "16:9")
    resolution = parameters.get("resolution", "720p")
    seconds = parameters.get("durationSeconds", 8)
    if (aspect, resolution) not in FRAMES:
        return f"unsupported aspectRatio/resolution {aspect}/{resolution}"
    if type(seconds) is not int or seconds not in DURATIONS:
        return f"durationSeconds must be one of {DURATIONS}"
    if resolution == "1080p" and seconds != 8:
        return "1080p videos must be 8 seconds long"
    return Clip(*FRAMES[(aspect, resolution)], seconds), prompt, instance


class Clips:
    """Real MP4s of the exact size and length asked, rendered once per session (at a low
    frame rate: only the frame size and the duration matter to the tests)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()

    def path(self, clip: Clip) -> Path:
        folder = self.folder / f"{clip.width}x{clip.height}-{clip.seconds}s"
        with self._lock:
            if not (folder / VIDEO_NAME).exists():
                spec = RenderSpec(prompt="veo fake", width=clip.width,
                                        height=clip.height, seconds=clip.seconds, fps=4)
                render_sandbox(spec, folder)
        return folder / VIDEO_NAME


@dataclass
class Seen:
    origin: str
    method: str
    path: str
    api_key: str | None        # x-goog-api-key
    authorization: str | None
    at: float = field(default_factory=time.monotonic)


class HeaderLog:
    """Every request a fake host received, with the credentials it carried."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self._lock = threading.Lock()

    def add(self, seen: Seen) -> None:
        with self._lock:
            self.requests.append(seen)

    def credentials(self, origin: str | None = None) -> set[tuple[str | None, str | None]]:
        with self._lock:
            return {(r.api_key, r.authorization) for r in self.requests
                    if origin is None or r.origin == origin}


class Recording:
    """ASGI middleware in front of everything (faults included) that logs each request."""

    def __init__(self, app, log: HeaderLog, owner) -> None:
        self.app = app
        self.log = log
        self.owner = owner  # has `.origin`, known once the server is up

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            key, auth = headers.get(b"x-goog-api-key"), headers.get(b"authorization")
            self.log.add(Seen(self.owner.origin, scope["method"], scope["path"],
                              key.decode() if key else None, auth.decode() if auth else None))
        await self.app(scope, receive, send)


def no_record(*_args) -> None:
    """FaultMiddleware wants a recorder; Recording does that job for these fakes."""


@pytest.fixture(scope="session", name="veo_clips")
def veo_clips_fixture(tmp_path_factory) -> Clips:
    """Import into a test module; clips render on first use and are kept for the session."""
    return Clips(tmp_path_factory.mktemp("veo-clips"))
