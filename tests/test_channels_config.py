"""vidgate.yaml: valid files load, invalid ones stop start-up naming file, channel, field."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from support import server_env, vidgate_cmd
from vidgate.channels import ConfigError, load_channels


def write(tmp_path, data) -> object:
    path = tmp_path / "vidgate.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_no_file_means_one_sandbox_channel_for_every_model():
    [channel] = load_channels(None)
    assert channel.kind == "sandbox" and channel.name == "sandbox"
    assert set(channel.models) == {"sora-2", "sora-2-pro"}
    assert channel.serves("sora-2-pro", "1792x1024", 20)


def test_full_file_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("SGLANG_KEY", "k1")
    path = write(tmp_path, {"channels": [
        {"name": "sglang", "kind": "openai", "base_url": "http://127.0.0.1:30000/v1/",
         "api_key_env": "SGLANG_KEY", "models": {"sora-2": "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"},
         "sizes": ["1280x720"], "seconds": [4, 5], "priority": 10, "weight": 3,
         "max_in_flight": 2, "max_requests_per_second": 5, "deadline_seconds": 1800,
         "extra_fields": {"num_inference_steps": 30, "negative_prompt": "blurry"},
         "poll_min_seconds": 1, "poll_max_seconds": 30},
        {"name": "relay", "kind": "generations", "base_url": "https://relay.example/v1",
         "models": {"sora-2": "sora-2", "sora-2-pro": "sora-2-pro"}},
        {"name": "local", "kind": "sandbox", "models": {"sora-2": "sora-2"}},
    ]})
    sglang, relay, local = load_channels(path)
    assert sglang.base_url == "http://127.0.0.1:30000/v1"
    assert sglang.origin == "http://127.0.0.1:30000"
    assert relay.origin == "https://relay.example:443"
    assert sglang.api_key() == "k1" and relay.api_key() is None
    assert sglang.upstream_model("sora-2") == "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
    assert sglang.serves("sora-2", "1280x720", 5)
    assert not sglang.serves("sora-2", "720x1280", 5)
    assert not sglang.serves("sora-2", "1280x720", 8)
    assert not sglang.serves("sora-2-pro", "1280x720", 5)
    assert sglang.extra_fields["num_inference_steps"] == 30
    assert local.kind == "sandbox"


@pytest.mark.parametrize("channel, field, words", [
    ({"kind": "openai", "base_url": "http://h/v1", "models": {"sora-2": "m"}, "wieght": 2},
     "wieght", "Extra inputs"),
    ({"kind": "openai", "base_url": "http://h/v1", "models": {"sora-2": "m"}, "weight": -1},
     "weight", "greater than or equal"),
    ({"kind": "no-such-kind", "base_url": "http://h/v1", "models": {"sora-2": "m"}}, "kind",
     "openai"),
    ({"kind": "openai", "models": {"sora-2": "m"}}, "base_url", "required"),
    ({"kind": "openai", "base_url": "ftp://h", "models": {"sora-2": "m"}}, "base_url", "http"),
    ({"kind": "openai", "base_url": "http://h/v1", "models": {"veo-3": "m"}}, "models",
     "not a public model"),
    ({"kind": "openai", "base_url": "http://h/v1", "models": {"sora-2": "m"},
      "api_key_env": "VG_SURELY_UNSET_KEY"}, "api_key_env", "VG_SURELY_UNSET_KEY"),
    ({"kind": "openai", "base_url": "http://h/v1", "models": {"sora-2": "m"},
      "sizes": ["big"]}, "sizes", "WIDTHxHEIGHT"),
    ({"kind": "openai", "base_url": "http://h/v1", "models": {"sora-2": "m"},
      "poll_min_seconds": 10, "poll_max_seconds": 2}, "poll_max_seconds", ">="),
])
def test_invalid_channel_names_file_channel_and_field(tmp_path, channel, field, words):
    path = write(tmp_path, {"channels": [
        {"name": "fine", "kind": "sandbox", "models": {"sora-2": "sora-2"}},
        {"name": "broken", **channel},
    ]})
    with pytest.raises(ConfigError) as err:
        load_channels(path)
    message = str(err.value)
    assert str(path) in message
    assert "channel 'broken'" in message and "channels[1]" in message
    assert f"field '{field}'" in message
    assert words in message


def test_duplicate_names_and_file_level_errors(tmp_path):
    path = write(tmp_path, {"channels": [
        {"name": "twin", "kind": "sandbox", "models": {"sora-2": "sora-2"}},
        {"name": "twin", "kind": "sandbox", "models": {"sora-2": "sora-2"}},
    ]})
    with pytest.raises(ConfigError, match="duplicate channel name"):
        load_channels(path)
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_channels(write(tmp_path, "channels: [unclosed"))
    with pytest.raises(ConfigError, match="field 'channels'"):
        load_channels(write(tmp_path, {"channels": []}))
    with pytest.raises(ConfigError, match="cannot read"):
        load_channels(tmp_path / "missing.yaml")


def test_server_refuses_to_start_with_a_bad_file(tmp_path):
    path = write(tmp_path, {"channels": [
        {"name": "oops", "kind": "openai", "models": {"sora-2": "m"}}]})
    env = server_env(tmp_path / "data", f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
                     VIDGATE_CONFIG=str(path))
    out = subprocess.run(vidgate_cmd("migrate"), env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0
    assert str(path) in out.stderr and "channel 'oops'" in out.stderr
    assert "field 'base_url'" in out.stderr
