"""From a channel's configuration to the backend object that speaks its protocol."""

from __future__ import annotations

from typing import Any

from ..channels import ChannelConfig
from .ark import ArkBackend
from .base import Backend
from .dashscope import DashScopeBackend
from .fal import FalBackend
from .gemini import GeminiBackend
from .generations import GenerationsBackend
from .kling import KlingBackend
from .luma import LumaBackend
from .minimax import MiniMaxBackend
from .openai import OpenAIBackend
from .replicate import ReplicateBackend
from .runway import RunwayBackend
from .sandbox.backend import SandboxBackend
from .unified import UnifiedBackend
from .vertex import VertexBackend

_HTTP_KINDS = {
    "openai": OpenAIBackend,
    "generations": GenerationsBackend,
    "unified": UnifiedBackend,
    "gemini": GeminiBackend,
    "vertex": VertexBackend,
    "fal": FalBackend,
    "replicate": ReplicateBackend,
    "runway": RunwayBackend,
    "luma": LumaBackend,
    "kling": KlingBackend,
    "minimax": MiniMaxBackend,
    "ark": ArkBackend,
    "dashscope": DashScopeBackend,
}


def make_backend(config: ChannelConfig, settings: Any) -> Backend:
    """`settings` supplies the sandbox's machine-wide knobs (render workers, frame rate)."""
    if config.kind == "sandbox":
        backend = SandboxBackend(workers=config.render_workers or settings.render_workers,
                                 fps=settings.sandbox_fps)
        backend.name = config.name
        return backend
    return _HTTP_KINDS[config.kind](config)
