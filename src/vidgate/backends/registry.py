"""From a channel's configuration to the backend object that speaks its protocol."""

from __future__ import annotations

import importlib
from typing import Any

from ..channels import ChannelConfig
from .base import Backend
from .sandbox.backend import SandboxBackend

# kind -> its class, in this package's module named as the kind. Imported when a channel
# of the kind is built:
# provider clients' libraries (google-auth and requests for vertex, PyJWT for kling,
# cryptography for fal and replicate webhooks) cost start-up time and memory that a
# deployment without such a channel should not pay (bench/RESULTS.md, Footprint).
_HTTP_KINDS = {
    "openai": "OpenAIBackend",
    "generations": "GenerationsBackend",
    "unified": "UnifiedBackend",
    "gemini": "GeminiBackend",
    "vertex": "VertexBackend",
    "fal": "FalBackend",
    "replicate": "ReplicateBackend",
    "runway": "RunwayBackend",
    "luma": "LumaBackend",
    "kling": "KlingBackend",
    "minimax": "MiniMaxBackend",
    "ark": "ArkBackend",
    "dashscope": "DashScopeBackend",
}


def backend_class(kind: str) -> type[Backend]:
    return getattr(importlib.import_module(f".{kind}", __package__), _HTTP_KINDS[kind])


def make_backend(config: ChannelConfig, settings: Any) -> Backend:
    """`settings` supplies the sandbox's machine-wide knobs (render workers, frame rate)."""
    if config.kind == "sandbox":
        backend = SandboxBackend(workers=config.render_workers or settings.render_workers,
                                 fps=settings.sandbox_fps)
        backend.name = config.name
        return backend
    return backend_class(config.kind)(config)
