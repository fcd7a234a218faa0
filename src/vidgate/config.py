"""Settings: `Settings` is what the program reads; `load_settings` fills it from the
VIDGATE_* environment variables (and the channels from vidgate.yaml)."""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .catalog import Catalog
from .channels import ChannelConfig, load_or_exit


@dataclass
class Settings:
    """What the program reads. Built by `load_settings`, or directly (tests, embedding);
    for a deployment the defaults that count are `Environment`'s."""

    data_dir: Path
    database_url: str
    secret: bytes
    config_path: Path | None = None
    blob_url: str | None = None            # a folder, or s3://bucket/prefix; None: data_dir/blobs
    public_url: str | None = None
    url_ttl_seconds: int = 3600
    retention_seconds: int = 7 * 24 * 3600
    lease_seconds: float = 30.0
    engine_tick_seconds: float = 0.25
    render_workers: int = 1
    sandbox_fps: int = 24
    task_deadline_seconds: int = 2 * 3600
    max_upload_bytes: int = 20 * 1024 * 1024
    image_allow_private: bool = False
    image_allowed_networks: tuple[str, ...] = ()
    image_fetch_timeout: float = 10.0
    run_engine: bool = True
    redis_url: str | None = None           # rate-limit counters shared by many API processes
    ratelimit_fail_closed: bool = False    # Redis down: refuse limited keys (503), not serve
    admin_token: str | None = None         # guards /admin; unset disables the admin API
    webhook_timeout: float = 10.0
    webhook_max_attempts: int = 12
    webhook_backoff_seconds: float = 5.0   # first retry delay; doubles up to an hour
    charge_overage: bool = False           # bill delivered seconds beyond the hold
    key_cache_seconds: float = 2.0         # how long a looked-up API key is trusted
    access_log: bool = False
    log_format: Literal["text", "json"] = "text"
    metrics_public: bool = False           # /metrics without the admin token
    graceful_shutdown_seconds: float = 5.0  # how long a stopping server waits for requests
    # Channels from vidgate.yaml; None means "read config_path" (or the sandbox default).
    channels: list[ChannelConfig] | None = None
    # Public models from vidgate.yaml; None means "read config_path" (or the built-ins).
    catalog: Catalog | None = None

    @property
    def work_dir(self) -> Path:
        """Scratch space for renders and downloads before they enter blob storage."""
        return self.data_dir / "work"


def _load_or_create_secret(data_dir: Path) -> bytes:
    """Keep a generated signing secret in the data dir so signed URLs survive restarts."""
    path = data_dir / "secret"
    if path.exists():
        return path.read_text().strip().encode()
    value = secrets.token_hex(32)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(value)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return value.encode()


class Environment(BaseSettings):
    """Every VIDGATE_* variable with its type and default; an empty value means unset."""

    model_config = SettingsConfigDict(env_prefix="VIDGATE_", env_ignore_empty=True)

    data_dir: Path = Path("./vidgate-data")
    database_url: str | None = None        # None: vidgate.db in the data dir
    secret: str | None = None              # None: generated once, kept in the data dir
    config: Path | None = None
    role: Literal["all", "api"] = "all"    # api: serve HTTP only, no engine
    blob_url: str | None = None
    public_url: str | None = None
    url_ttl_seconds: int = 3600
    retention_seconds: int = 7 * 24 * 3600
    lease_seconds: float = 30.0
    render_workers: int = Field(default_factory=lambda: max(1, (os.cpu_count() or 2) - 1))
    sandbox_fps: int = 24
    task_deadline_seconds: int = 2 * 3600
    max_upload_bytes: int = 20 * 1024 * 1024
    image_allow_private: bool = False
    image_allowed_networks: Annotated[tuple[str, ...], NoDecode] = ()
    image_fetch_timeout: float = 10.0
    redis_url: str | None = None
    ratelimit_fail_closed: bool = False
    admin_token: str | None = None
    webhook_timeout: float = 10.0
    webhook_max_attempts: int = 12
    webhook_backoff_seconds: float = 5.0
    # cap: a longer video costs at most its hold; charge: bill all of it
    overage_policy: Literal["cap", "charge"] = "cap"
    key_cache_seconds: float = 2.0
    access_log: bool = False
    log_format: Literal["text", "json"] = "text"  # json: one JSON object per log line
    metrics_public: bool = False
    graceful_shutdown_seconds: float = 5.0

    @field_validator("image_allow_private", "access_log", "ratelimit_fail_closed",
                     "metrics_public", mode="before")
    @classmethod
    def _bool(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value  # " true" is true

    @field_validator("image_allowed_networks", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> tuple[str, ...]:
        """Comma-separated CIDRs, checked now so a typo fails loudly, not per request."""
        if not isinstance(value, str):
            return value
        nets = tuple(n.strip() for n in value.split(",") if n.strip())
        for net in nets:
            ipaddress.ip_network(net, strict=False)
        return nets


def read_environment() -> Environment:
    """The VIDGATE_* variables, checked; a bad one ends the process naming it."""
    try:
        return Environment()
    except ValidationError as exc:  # name the variable, as the operator wrote it
        raise SystemExit("\n".join(
            f"VIDGATE_{str(e['loc'][0]).upper()}: {e['msg']}, got {e['input']!r}"
            for e in exc.errors()
        )) from exc


def sqlite_url(data_dir: Path) -> str:
    """The database a data folder holds when VIDGATE_DATABASE_URL is unset."""
    return f"sqlite+aiosqlite:///{data_dir / 'vidgate.db'}"


def load_settings() -> Settings:
    env = read_environment()
    data_dir = env.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    gateway = load_or_exit(env.config)  # a bad vidgate.yaml stops start-up, not a task later
    return Settings(
        data_dir=data_dir,
        database_url=env.database_url or sqlite_url(data_dir),
        secret=env.secret.encode() if env.secret else _load_or_create_secret(data_dir),
        config_path=env.config,
        channels=gateway.channels,
        catalog=gateway.catalog,
        run_engine=env.role == "all",
        charge_overage=env.overage_policy == "charge",
        **env.model_dump(exclude=_DERIVED),  # the rest are named as in Settings
    )


_DERIVED = {"data_dir", "database_url", "secret", "config", "role", "overage_policy"}
