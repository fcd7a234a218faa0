"""Channels: the backends an operator configures in `vidgate.yaml`, validated at start-up.

A channel is one upstream: a protocol kind, a base URL, a credential read from the
environment, the public models it serves (and their upstream names), what sizes and lengths
it accepts, and the limits the gateway must respect when talking to it. The file is checked
with pydantic models so a typo stops the server at start-up with a message that names the
file, the channel and the field, instead of failing a task at 3 a.m.

Without a file, one built-in sandbox channel serves every public model.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .catalog import DEFAULT_MODELS
from .kinds import KINDS

_SIZE = re.compile(r"^[1-9][0-9]{0,4}x[1-9][0-9]{0,4}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

# Extra fields open-model servers (SGLang Diffusion, vLLM-Omni, FastVideo) understand; a
# request's `metadata` may set these, and only these unless a channel lists others.
DEFAULT_METADATA_FIELDS = (
    "num_inference_steps", "guidance_scale", "negative_prompt", "seed", "fps", "num_frames",
)


class ConfigError(Exception):
    """The configuration file is unusable; the message says where and why."""


class ChannelConfig(BaseModel):
    """One channel as written in `vidgate.yaml` (every field is documented in docs/backends.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: str
    base_url: str | None = None
    api_key_env: str | None = None
    secret_key_env: str | None = None  # a second secret, for providers that sign requests
    models: dict[str, str] = Field(default_factory=dict)
    sizes: list[str] | None = None
    seconds: list[int] | None = None
    priority: int = 0
    weight: int = Field(default=1, ge=0)
    max_in_flight: int | None = Field(default=None, ge=1)
    max_concurrent_requests: int = Field(default=16, ge=1)
    max_requests_per_second: float | None = Field(default=None, gt=0)
    deadline_seconds: int | None = Field(default=None, ge=1)
    extra_fields: dict[str, Any] = Field(default_factory=dict)
    metadata_fields: list[str] = Field(default_factory=lambda: list(DEFAULT_METADATA_FIELDS))
    image_field: str | None = None
    poll_min_seconds: float = Field(default=2.0, gt=0)
    poll_max_seconds: float = Field(default=20.0, gt=0)
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    timeout_seconds: float = Field(default=30.0, gt=0)
    download_timeout_seconds: float = Field(default=60.0, gt=0)
    max_download_bytes: int = Field(default=4 * 1024**3, ge=1)
    allow_private_result_urls: bool = False
    failure_threshold: int = Field(default=3, ge=1)
    cooldown_seconds: float = Field(default=30.0, gt=0)
    render_workers: int | None = Field(default=None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _kind_defaults(cls, data: Any) -> Any:
        """Fill `base_url`, `sizes` and `seconds` the channel leaves out from its kind."""
        if isinstance(data, dict) and isinstance(data.get("kind"), str):
            defaults = KINDS.get(data["kind"])
            if defaults is not None:
                data = dict(data)
                sizes = defaults.default_sizes(data.get("extra_fields"))
                for field, value in (("base_url", defaults.base_url),
                                     ("sizes", sizes), ("seconds", defaults.seconds)):
                    if data.get(field) is None and value is not None:
                        data[field] = list(value) if isinstance(value, tuple) else value
        return data

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value not in KINDS:
            raise ValueError(f"unknown kind '{value}' (known: {', '.join(KINDS)})")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be 1-64 letters, digits, '_', '.' or '-'")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL with a host, e.g. http://127.0.0.1:30000/v1")
        return value.rstrip("/")

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        for size in value:
            if not _SIZE.match(size):
                raise ValueError(f"'{size}' is not WIDTHxHEIGHT")
        return value

    @field_validator("seconds")
    @classmethod
    def _seconds(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(s <= 0 for s in value):
            raise ValueError("every length must be a positive number of seconds")
        return value

    @property
    def origin(self) -> str | None:
        """scheme://host:port of the base URL: the only place this channel's key may go."""
        return origin_of(self.base_url) if self.base_url else None

    def upstream_model(self, public: str) -> str:
        return self.models.get(public, public)

    def serves(self, model: str, size: str, seconds: int) -> bool:
        return (
            model in self.models
            and (self.sizes is None or size in self.sizes)
            and (self.seconds is None or seconds in self.seconds)
        )

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def secret_key(self) -> str | None:
        return os.environ.get(self.secret_key_env) if self.secret_key_env else None


class ConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channels: list[ChannelConfig] = Field(min_length=1)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


def default_channels() -> list[ChannelConfig]:
    """What runs without a config file: the built-in renderer serves every public model."""
    return [ChannelConfig(name="sandbox", kind="sandbox",
                          models={m: m for m in DEFAULT_MODELS})]


def load_channels(path: Path | None, known_models: set[str] | None = None) -> list[ChannelConfig]:
    """Read and check the channels of `path`; no path means the default sandbox channel.

    Raises ConfigError naming the file, the channel and the field of the first problems.
    """
    if path is None:
        return default_channels()
    known = known_models if known_models is not None else set(DEFAULT_MODELS)
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'channels' list at the top")
    try:
        config = ConfigFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(path, raw, exc)) from None
    problems = [p for i, ch in enumerate(config.channels) for p in _check(path, i, ch, known)]
    seen: set[str] = set()
    for i, ch in enumerate(config.channels):
        if ch.name in seen:
            problems.append(f"{_where(path, i, ch.name)}: field 'name': duplicate channel name")
        seen.add(ch.name)
    if problems:
        raise ConfigError("\n".join(problems))
    return config.channels


def _where(path: Path, index: int, name: Any) -> str:
    label = f"channel '{name}'" if isinstance(name, str) else f"channel #{index + 1}"
    return f"{path}: {label} (channels[{index}])"


def _describe(path: Path, raw: dict, exc: ValidationError) -> str:
    lines = []
    channels = raw.get("channels") if isinstance(raw.get("channels"), list) else []
    for err in exc.errors():
        loc = err["loc"]
        if len(loc) >= 2 and loc[0] == "channels" and isinstance(loc[1], int):
            entry = channels[loc[1]] if loc[1] < len(channels) else None
            name = entry.get("name") if isinstance(entry, dict) else None
            field = ".".join(str(p) for p in loc[2:]) or "(the entry itself)"
            lines.append(f"{_where(path, loc[1], name)}: field '{field}': {err['msg']}")
        else:
            field = ".".join(str(p) for p in loc) or "(top level)"
            lines.append(f"{path}: field '{field}': {err['msg']}")
    return "\n".join(lines)


def _check(path: Path, index: int, ch: ChannelConfig, known: set[str]) -> list[str]:
    """Rules that span fields or need the environment, beyond what the types say."""
    where = _where(path, index, ch.name)
    problems = []
    if ch.kind != "sandbox" and ch.base_url is None:
        problems.append(f"{where}: field 'base_url': required for kind '{ch.kind}'")
    if not ch.models:
        problems.append(f"{where}: field 'models': map at least one public model, "
                        f"e.g. {{sora-2: <upstream model>}}")
    for model in ch.models:
        if model not in known:
            problems.append(f"{where}: field 'models': '{model}' is not a public model "
                            f"(known: {', '.join(sorted(known))})")
    for field in ("api_key_env", "secret_key_env"):
        variable = getattr(ch, field)
        if variable is not None and not os.environ.get(variable):
            problems.append(f"{where}: field '{field}': environment variable "
                            f"{variable} is not set")
    problems += [f"{where}: {p}" for p in KINDS[ch.kind].problems(ch)]
    if ch.poll_max_seconds < ch.poll_min_seconds:
        problems.append(f"{where}: field 'poll_max_seconds': must be >= poll_min_seconds")
    return problems
