"""Public models (built-in and declared in vidgate.yaml), request normalisation and prices."""

from .catalog import Catalog
from .models import (
    ASPECT_RATIOS,
    BUILTIN_MODELS,
    DEFAULT_MODELS,
    DEFAULT_SECONDS,
    PRO_EXTRA_SIZES,
    SECONDS,
    STANDARD_SIZES,
    Model,
)
from .prices import PriceTier
from .requests import MAX_PROMPT_CHARS, ImageInput, RawVideoRequest, VideoRequest

__all__ = [
    "ASPECT_RATIOS", "BUILTIN_MODELS", "DEFAULT_MODELS", "DEFAULT_SECONDS", "MAX_PROMPT_CHARS",
    "PRO_EXTRA_SIZES", "SECONDS", "STANDARD_SIZES", "Catalog", "ImageInput", "Model",
    "PriceTier", "RawVideoRequest", "VideoRequest",
]
