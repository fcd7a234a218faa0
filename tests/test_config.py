"""Settings from the environment: names, defaults, and start-up refusals that name the
variable."""

from __future__ import annotations

import pytest

from vidgate.config import load_settings


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("VIDGATE_DATA_DIR", str(tmp_path))
    return monkeypatch


@pytest.mark.parametrize(("name", "value"), [
    ("VIDGATE_URL_TTL_SECONDS", "an hour"),
    ("VIDGATE_LEASE_SECONDS", "30s"),
    ("VIDGATE_ACCESS_LOG", "sometimes"),
    ("VIDGATE_ROLE", "worker"),
    ("VIDGATE_OVERAGE_POLICY", "maybe"),
])
def test_a_bad_value_stops_startup_naming_the_variable(env, name, value):
    env.setenv(name, value)
    with pytest.raises(SystemExit, match=f"{name}: .*{value!r}"):
        load_settings()


def test_values_and_empty_means_default(env, tmp_path):
    env.setenv("VIDGATE_URL_TTL_SECONDS", "60")
    env.setenv("VIDGATE_ACCESS_LOG", " yes ")
    env.setenv("VIDGATE_ROLE", "api")
    env.setenv("VIDGATE_REDIS_URL", "")
    env.setenv("VIDGATE_WEBHOOK_TIMEOUT", "")
    env.setenv("VIDGATE_SECRET", "s3cret")
    settings = load_settings()
    assert (settings.url_ttl_seconds, settings.access_log, settings.run_engine) == (60, True,
                                                                                   False)
    assert (settings.redis_url, settings.webhook_timeout) == (None, 10.0)
    assert settings.secret == b"s3cret" and settings.data_dir == tmp_path.resolve()
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path.resolve() / 'vidgate.db'}"


def test_the_generated_secret_survives_a_restart(env):
    env.delenv("VIDGATE_SECRET", raising=False)
    assert load_settings().secret == load_settings().secret
