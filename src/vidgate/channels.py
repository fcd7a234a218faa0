"""`vidgate.yaml`: the public models and the channels that serve them, validated at start-up.

The file's `models` list and `default_models` switch make the catalog (catalog/declared.py
checks the entries). A channel is one upstream: a protocol kind, a base URL, a credential
read from the environment, the public models it serves (and their upstream names), what
sizes and lengths it accepts, and the limits the gateway must respect when talking to it.
The file is checked with pydantic models so a typo stops the server at start-up with a
message that names the file, the model or channel and the field, instead of failing a task
at 3 a.m.

Without a file, or without `channels` in it, one built-in sandbox channel serves every public
model.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .catalog import Catalog
from .catalog.declared import ModelEntry, build_catalog, check_size
from .catalog.declared import where as declared_where
from .kinds import KINDS, vertex_base_url

_LOCATION = r"^[a-z0-9-]{1,40}$"  # a Google Cloud location; it becomes part of a host name
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

# Extra fields open-model servers (SGLang Diffusion, vLLM-Omni, FastVideo) understand; a
# request's `metadata` may set these, and only these unless a channel lists others.
DEFAULT_METADATA_FIELDS = (
    "num_inference_steps", "guidance_scale", "negative_prompt", "seed", "fps", "num_frames",
)

# The kinds whose adapters read `image_to_video_models`.
IMAGE_MODEL_KINDS = ("fal", "replicate")


CREDENTIALS_ENV = "GOOGLE_APPLICATION_CREDENTIALS"


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
    # public model -> the upstream model used when a request carries a reference image, for
    # providers whose image-to-video model is a different id (fal apps, Replicate models)
    image_to_video_models: dict[str, str] = Field(default_factory=dict)
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
    project: str | None = None           # vertex: the Google Cloud project id
    location: str | None = Field(default=None, pattern=_LOCATION)  # vertex: e.g. us-central1
    credentials_file: str | None = None  # vertex: service-account JSON (else the env's)
    # Provider callbacks (engine/callbacks.py), used when VIDGATE_PUBLIC_URL is set and the
    # kind supports them; polling then slows to `callback_poll_seconds` as the fallback.
    callbacks: bool = True
    callback_poll_seconds: float = Field(default=60.0, gt=0)
    webhook_secret_env: str | None = None  # replicate: the signing secret (else fetched)
    jwks_url: str | None = None          # fal: where its webhook keys are published

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
            if data["kind"] == "vertex" and data.get("base_url") is None \
                    and isinstance(data.get("location"), str) \
                    and re.fullmatch(_LOCATION, data["location"]):
                data["base_url"] = vertex_base_url(data["location"])
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

    @field_validator("base_url", "jwks_url")
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
        return None if value is None else [check_size(size) for size in value]

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

    def serves(self, model: str, size: str, seconds: int, image: bool = False) -> bool:
        """`image`: the request carries a reference image, which some kinds cannot take."""
        return (
            model in self.models
            and (self.sizes is None or size in self.sizes)
            and (self.seconds is None or seconds in self.seconds)
            and (not image or KINDS[self.kind].image_input)
        )

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def secret_key(self) -> str | None:
        return os.environ.get(self.secret_key_env) if self.secret_key_env else None

    def webhook_secret(self) -> str | None:
        return os.environ.get(self.webhook_secret_env) if self.webhook_secret_env else None

    def service_account_file(self) -> str | None:
        """vertex: `credentials_file`, else the file Google's tools read from the
        environment (GOOGLE_APPLICATION_CREDENTIALS)."""
        return self.credentials_file or os.environ.get(CREDENTIALS_ENV) or None


class ConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[ModelEntry] = Field(default_factory=list)
    default_models: bool = Field(default=True, strict=True)
    channels: list[ChannelConfig] | None = Field(default=None, min_length=1)


@dataclass(frozen=True)
class GatewayConfig:
    """What `vidgate.yaml` describes: the public models and the channels serving them."""

    catalog: Catalog
    channels: list[ChannelConfig]

    def channels_for(self, model: str) -> list[ChannelConfig]:
        """The channels that map `model`, best priority first."""
        return sorted((ch for ch in self.channels if model in ch.models),
                      key=lambda ch: -ch.priority)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


def default_channels(catalog: Catalog | None = None) -> list[ChannelConfig]:
    """What runs without channels in a file: the built-in renderer serves every public model."""
    names = (catalog or Catalog()).models
    return [ChannelConfig(name="sandbox", kind="sandbox", models={m: m for m in names})]


def load_channels(path: Path | None) -> list[ChannelConfig]:
    """The channels of `path` (no path: the default sandbox channel); see `load_config`."""
    return load_config(path).channels


def load_config(path: Path | None) -> GatewayConfig:
    """Read and check `path`; no path means the built-in models on the sandbox channel.

    Raises ConfigError naming the file, the model or channel, and the field of every problem
    found.
    """
    if path is None:
        return GatewayConfig(Catalog(), default_channels())
    try:
        raw = yaml.safe_load(Path(path).read_text())
        created = int(Path(path).stat().st_mtime)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with 'models' and/or 'channels' lists "
                          "at the top")
    try:
        config = ConfigFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(path, raw, exc)) from None
    catalog, problems = build_catalog(path, config.models, config.default_models, created)
    channels = config.channels or default_channels(catalog)
    problems += [p for i, ch in enumerate(channels) for p in _check(path, i, ch, catalog)]
    seen: set[str] = set()
    for i, ch in enumerate(channels):
        if ch.name in seen:
            problems.append(f"{_where(path, i, ch.name)}: field 'name': duplicate channel name")
        seen.add(ch.name)
    if problems:
        raise ConfigError("\n".join(problems))
    return GatewayConfig(catalog, channels)


def load_or_exit(path: Path | None) -> GatewayConfig:
    """`load_config`, ending the process with the problems when the file is wrong: how both
    start-up and `vidgate check-config` report it."""
    try:
        return load_config(path)
    except ConfigError as exc:
        raise SystemExit(f"invalid configuration: {exc}") from exc


def _where(path: Path, index: int, name: Any) -> str:
    label = f"channel '{name}'" if isinstance(name, str) else f"channel #{index + 1}"
    return f"{path}: {label} (channels[{index}])"


_SECTIONS = {"channels": _where, "models": declared_where}


def _describe(path: Path, raw: dict, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = err["loc"]
        entries = raw.get(loc[0]) if loc and loc[0] in _SECTIONS else None
        if isinstance(entries, list) and len(loc) >= 2 and isinstance(loc[1], int):
            entry = entries[loc[1]] if loc[1] < len(entries) else None
            name = entry.get("name") if isinstance(entry, dict) else None
            field = ".".join(str(p) for p in loc[2:]) or "(the entry itself)"
            at = _SECTIONS[loc[0]](path, loc[1], name)
            lines.append(f"{at}: field '{field}': {err['msg']}")
        else:
            field = ".".join(str(p) for p in loc) or "(top level)"
            lines.append(f"{path}: field '{field}': {err['msg']}")
    return "\n".join(lines)


def _check(path: Path, index: int, ch: ChannelConfig, catalog: Catalog) -> list[str]:
    """Rules that span fields or need the environment or the catalog, beyond the types."""
    where = _where(path, index, ch.name)
    problems = []
    if ch.kind != "sandbox" and ch.base_url is None:
        problems.append(f"{where}: field 'base_url': required for kind '{ch.kind}'")
    if not ch.models:
        problems.append(f"{where}: field 'models': map at least one public model, "
                        f"e.g. {{sora-2: <upstream model>}}")
    for model in ch.models:
        canonical = catalog.canonical(model)
        if canonical is None:
            problems.append(f"{where}: field 'models': '{model}' is not a public model "
                            f"(known: {', '.join(catalog.models)})")
        elif canonical != model:
            problems.append(f"{where}: field 'models': '{model}' is an alias of "
                            f"'{canonical}'; map '{canonical}' itself")
    for field in ("api_key_env", "secret_key_env", "webhook_secret_env"):
        variable = getattr(ch, field)
        if variable is not None and not os.environ.get(variable):
            problems.append(f"{where}: field '{field}': environment variable "
                            f"{variable} is not set")
    if ch.kind == "vertex":
        problems += [f"{where}: {problem}" for problem in _vertex_problems(ch)]
    if ch.kind in ("gemini", "vertex"):
        from .backends.veo import channel_problems  # here: backends import this module

        problems += [f"{where}: field '{field}': {message}" for field, message
                     in channel_problems(ch.kind, ch.sizes, ch.seconds, ch.extra_fields)]
    if ch.image_to_video_models and ch.kind not in IMAGE_MODEL_KINDS:
        problems.append(f"{where}: field 'image_to_video_models': not read by kind "
                        f"'{ch.kind}' (only {', '.join(IMAGE_MODEL_KINDS)})")
    for model in ch.image_to_video_models:
        if model not in ch.models:
            problems.append(f"{where}: field 'image_to_video_models': '{model}' is not in "
                            f"this channel's 'models'")
    kind = KINDS[ch.kind]
    if kind.fixed:
        for field, allowed in (("sizes", kind.sizes), ("seconds", kind.seconds)):
            extra = [v for v in getattr(ch, field) or () if v not in (allowed or ())]
            if extra:
                problems.append(f"{where}: field '{field}': kind '{ch.kind}' cannot produce "
                                f"{', '.join(map(str, extra))} (it can: "
                                f"{', '.join(map(str, allowed or ()))})")
    problems += [f"{where}: {p}" for p in KINDS[ch.kind].problems(ch)]
    if ch.poll_max_seconds < ch.poll_min_seconds:
        problems.append(f"{where}: field 'poll_max_seconds': must be >= poll_min_seconds")
    return problems


def _vertex_problems(ch: ChannelConfig) -> list[str]:
    """Vertex needs a project, a location and a service-account key file it can read."""
    problems = [f"field '{field}': required for kind 'vertex'"
                for field in ("project", "location") if getattr(ch, field) is None]
    path = ch.service_account_file()
    if path is None:
        problems.append(f"field 'credentials_file': required for kind 'vertex' (or set "
                        f"{CREDENTIALS_ENV} to a service-account JSON file)")
    elif not os.path.isfile(path):
        problems.append(f"field 'credentials_file': no such file: {path}")
    return problems
