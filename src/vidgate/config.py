"""Settings, read once from the environment (and later an optional vidgate.yaml)."""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from .catalog import Catalog
from .channels import ChannelConfig, load_or_exit


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from exc


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from exc


def _env_bool(name: str, default: bool) -> bool:
    raw = (os.environ.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SystemExit(f"{name} must be 1/true or 0/false, got {raw!r}")


def _env_networks(name: str) -> tuple[str, ...]:
    """Comma-separated CIDRs, checked at start-up so a typo fails loudly, not per request."""
    nets = tuple(n.strip() for n in (os.environ.get(name) or "").split(",") if n.strip())
    for net in nets:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError as exc:
            raise SystemExit(f"{name}: {net!r} is not an IP network ({exc})") from exc
    return nets


def _overage_policy(value: str) -> bool:
    """'cap' (default): a longer video costs at most its hold; 'charge': bill all of it."""
    if value not in ("cap", "charge"):
        raise SystemExit(f"VIDGATE_OVERAGE_POLICY must be 'cap' or 'charge', got {value!r}")
    return value == "charge"


@dataclass
class Settings:
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
    admin_token: str | None = None         # guards /admin; unset disables the admin API
    webhook_timeout: float = 10.0
    webhook_max_attempts: int = 12
    webhook_backoff_seconds: float = 5.0   # first retry delay; doubles up to an hour
    charge_overage: bool = False           # bill delivered seconds beyond the hold
    key_cache_seconds: float = 2.0         # how long a looked-up API key is trusted
    access_log: bool = False
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


def load_settings() -> Settings:
    data_dir = Path(os.environ.get("VIDGATE_DATA_DIR") or "./vidgate-data").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    database_url = os.environ.get("VIDGATE_DATABASE_URL") or (
        f"sqlite+aiosqlite:///{data_dir / 'vidgate.db'}"
    )
    secret_env = os.environ.get("VIDGATE_SECRET")
    secret = secret_env.encode() if secret_env else _load_or_create_secret(data_dir)
    config = os.environ.get("VIDGATE_CONFIG")
    role = os.environ.get("VIDGATE_ROLE", "all")
    gateway = load_or_exit(Path(config) if config else None)  # a bad file stops start-up
    if role not in ("all", "api"):
        raise SystemExit(f"VIDGATE_ROLE must be 'all' or 'api', got {role!r}")
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        secret=secret,
        config_path=Path(config) if config else None,
        blob_url=os.environ.get("VIDGATE_BLOB_URL") or None,
        public_url=(os.environ.get("VIDGATE_PUBLIC_URL") or None),
        url_ttl_seconds=_env_int("VIDGATE_URL_TTL_SECONDS", 3600),
        retention_seconds=_env_int("VIDGATE_RETENTION_SECONDS", 7 * 24 * 3600),
        lease_seconds=_env_float("VIDGATE_LEASE_SECONDS", 30.0),
        render_workers=_env_int("VIDGATE_RENDER_WORKERS", max(1, (os.cpu_count() or 2) - 1)),
        sandbox_fps=_env_int("VIDGATE_SANDBOX_FPS", 24),
        task_deadline_seconds=_env_int("VIDGATE_TASK_DEADLINE_SECONDS", 2 * 3600),
        max_upload_bytes=_env_int("VIDGATE_MAX_UPLOAD_BYTES", 20 * 1024 * 1024),
        image_allow_private=_env_bool("VIDGATE_IMAGE_ALLOW_PRIVATE", False),
        image_allowed_networks=_env_networks("VIDGATE_IMAGE_ALLOWED_NETWORKS"),
        image_fetch_timeout=_env_float("VIDGATE_IMAGE_FETCH_TIMEOUT", 10.0),
        run_engine=role == "all",
        channels=gateway.channels,
        catalog=gateway.catalog,
        redis_url=os.environ.get("VIDGATE_REDIS_URL") or None,
        admin_token=os.environ.get("VIDGATE_ADMIN_TOKEN") or None,
        webhook_timeout=_env_float("VIDGATE_WEBHOOK_TIMEOUT", 10.0),
        webhook_max_attempts=_env_int("VIDGATE_WEBHOOK_MAX_ATTEMPTS", 12),
        webhook_backoff_seconds=_env_float("VIDGATE_WEBHOOK_BACKOFF_SECONDS", 5.0),
        charge_overage=_overage_policy(os.environ.get("VIDGATE_OVERAGE_POLICY") or "cap"),
        key_cache_seconds=_env_float("VIDGATE_KEY_CACHE_SECONDS", 2.0),
        access_log=_env_bool("VIDGATE_ACCESS_LOG", False),
    )

