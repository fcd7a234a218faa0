"""The `models` section of vidgate.yaml and `vidgate check-config`: declared models load,
replace or drop the built-ins, and every mistake names the file, the model and the field."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from support import server_env, vidgate_cmd
from vidgate.catalog import Catalog, RawVideoRequest
from vidgate.channels import ConfigError, load_config
from vidgate.domain import Task

VEO = {
    "name": "veo-3.1",
    "sizes": ["1280x720", "720x1280", "1920x1080", "1080x1920"],
    "seconds": [4, 6, 8],
    "default_size": "1280x720",
    "default_seconds": 8,
    "prices": [{"max_size": "1280x720", "usd_per_second": 0.15}, {"usd_per_second": 0.40}],
    "aliases": ["veo-3.1-generate-preview"],
}
SANDBOX = {"name": "local", "kind": "sandbox", "models": {"veo-3.1": "veo-3.1"}}


def write(tmp_path, data) -> object:
    path = tmp_path / "vidgate.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_declared_model_joins_the_built_ins(tmp_path):
    config = load_config(write(tmp_path, {"models": [VEO], "channels": [SANDBOX]}))
    catalog = config.catalog
    assert list(catalog.models) == ["sora-2", "sora-2-pro", "veo-3.1"]
    veo = catalog.models["veo-3.1"]
    assert veo.sizes == tuple(VEO["sizes"]) and veo.seconds == (4, 6, 8)
    assert (veo.default_size, veo.default_seconds) == ("1280x720", 8)
    assert catalog.canonical("veo-3.1-generate-preview") == "veo-3.1"
    assert catalog.default_model == "sora-2"
    assert veo.price_per_second(1280, 720) == veo.price_per_second(720, 1280) == 150_000
    assert veo.price_per_second(1920, 1080) == 400_000
    [channel] = config.channels
    assert channel.serves("veo-3.1", "1920x1080", 6)
    assert [ch.name for ch in config.channels_for("veo-3.1")] == ["local"]
    assert config.channels_for("sora-2") == []


def test_replacing_and_dropping_built_ins(tmp_path):
    own_sora = {"name": "sora-2", "sizes": ["1920x1080"], "seconds": [10],
                "prices": [{"usd_per_second": 1}]}
    catalog = load_config(write(tmp_path, {"models": [VEO, own_sora]})).catalog
    assert list(catalog.models) == ["sora-2", "sora-2-pro", "veo-3.1"]  # in its place
    sora = catalog.models["sora-2"]
    assert (sora.sizes, sora.default_size, sora.default_seconds) == (("1920x1080",), "1920x1080",
                                                                     10)
    request = catalog.normalize(RawVideoRequest(prompt="p"))
    assert (request.model, request.size, request.seconds) == ("sora-2", "1920x1080", 10)
    assert catalog.price(request) == 10_000_000

    config = load_config(write(tmp_path, {"models": [VEO], "default_models": False}))
    assert list(config.catalog.models) == ["veo-3.1"]
    assert config.catalog.default_model == "veo-3.1"  # a request without a model gets it
    # without channels in the file the sandbox serves every public model
    [sandbox] = config.channels
    assert sandbox.kind == "sandbox" and set(sandbox.models) == {"veo-3.1"}
    request = config.catalog.normalize(RawVideoRequest(prompt="p"), default_size="720x1280")
    assert (request.model, request.size, request.seconds) == ("veo-3.1", "1280x720", 8)


def test_settlement_prices_a_model_that_left_the_catalog_at_its_hold(tmp_path):
    catalog = load_config(write(tmp_path, {"models": [VEO]})).catalog
    task = Task(id="video_1", owner_id="k", family="videos", model="veo-3.1", prompt="p",
                width=1920, height=1080, seconds=8, seed=0, status="in_progress", progress=0,
                created_at=0, status_updated_at=0, deadline_at=0.0, hold_micro=3_200_000)
    assert catalog.settlement_price(task, 7.4) == 7 * 400_000
    assert catalog.settlement_price(task, 0.2) == 400_000  # at least one second
    assert Catalog().settlement_price(task, 8) == 3_200_000


def _model(**changes):
    entry = {k: v for k, v in {**VEO, **changes}.items() if v is not None}
    return entry


@pytest.mark.parametrize("models, index, name, field, words", [
    ([_model(sizes=["1280x720", "wide"])], 0, "veo-3.1", "sizes", "WIDTHxHEIGHT"),
    ([_model(sizes=[])], 0, "veo-3.1", "sizes", "at least 1"),
    ([_model(seconds=[4, 0])], 0, "veo-3.1", "seconds.1", "greater than 0"),
    ([_model(seconds=[4, "6"])], 0, "veo-3.1", "seconds.1", "valid integer"),
    ([_model(seconds=[4, 4])], 0, "veo-3.1", "seconds", "listed twice: 4"),
    ([_model(default_size="720x720")], 0, "veo-3.1", "default_size", "not one of sizes"),
    ([_model(default_seconds=5)], 0, "veo-3.1", "default_seconds", "not one of seconds"),
    ([_model(prices=[{"max_size": "1280x720", "usd_per_second": 0.1}])], 0, "veo-3.1",
     "prices", "last tier must have no max_size"),
    ([_model(prices=[{"usd_per_second": 0.1}, {"usd_per_second": 0.2}])], 0, "veo-3.1",
     "prices.0.max_size", "required on every tier but the last"),
    ([_model(prices=[{"max_size": "1920x1080", "usd_per_second": 0.1},
                     {"max_size": "1280x720", "usd_per_second": 0.2},
                     {"usd_per_second": 0.3}])], 0, "veo-3.1", "prices.1.max_size",
     "tiers must grow"),
    ([_model(prices=[{"usd_per_second": -1}])], 0, "veo-3.1", "prices.0.usd_per_second",
     "greater than or equal to 0"),
    ([_model(prices=[])], 0, "veo-3.1", "prices", "at least 1"),
    ([_model(prices=None)], 0, "veo-3.1", "prices", "Field required"),
    ([_model(name="veo/3")], 0, "veo/3", "name", "letters, digits"),
    ([_model(sizez=["1280x720"])], 0, "veo-3.1", "sizez", "Extra inputs"),
    ([VEO, _model(aliases=[])], 1, "veo-3.1", "name", "already used by model 'veo-3.1'"),
    ([VEO, _model(name="veo-fast")], 1, "veo-fast", "aliases",
     "'veo-3.1-generate-preview' is already used"),
    ([_model(aliases=["sora-2-pro"])], 0, "veo-3.1", "aliases",
     "already used by the built-in model 'sora-2-pro'"),
])
def test_invalid_model_names_file_model_and_field(tmp_path, models, index, name, field, words):
    path = write(tmp_path, {"models": models, "channels": [SANDBOX]})
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message
    assert f"model '{name}' (models[{index}])" in message
    assert f"field '{field}'" in message
    assert words in message


@pytest.mark.parametrize("data, words", [
    ({"models": [VEO], "channels": [{**SANDBOX, "models": {"veo-3": "veo-3"}}]},
     "channel 'local' (channels[0]): field 'models': 'veo-3' is not a public model (known: "
     "sora-2, sora-2-pro, veo-3.1)"),
    ({"models": [VEO], "channels": [{**SANDBOX, "models": {"veo-3.1-generate-preview": "v"}}]},
     "field 'models': 'veo-3.1-generate-preview' is an alias of 'veo-3.1'"),
    ({"models": [VEO], "default_models": False,
      "channels": [{**SANDBOX, "models": {"sora-2": "sora-2"}}]},
     "'sora-2' is not a public model (known: veo-3.1)"),
    ({"default_models": False}, "field 'default_models': false, but no models are declared"),
    ({"default_models": "no"}, "field 'default_models': Input should be a valid boolean"),
    ({"models": {"veo-3.1": {}}}, "field 'models': Input should be a valid list"),
])
def test_file_level_and_channel_catalog_errors(tmp_path, data, words):
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and words in str(err.value)


def _check_config(env, *args):
    return subprocess.run(vidgate_cmd("check-config", *args), env=env, capture_output=True,
                          text=True, timeout=60)


def test_check_config_prints_each_model_with_its_channels(tmp_path, monkeypatch):
    path = write(tmp_path, {"models": [VEO], "channels": [
        {"name": "gpu", "kind": "openai", "base_url": "http://127.0.0.1:30000/v1",
         "models": {"veo-3.1": "Wan-AI/Wan2.2-T2V-A14B-Diffusers"}, "sizes": ["1280x720"],
         "priority": 10},
        {"name": "local", "kind": "sandbox", "models": {"veo-3.1": "veo-3.1",
                                                        "sora-2": "sora-2"}},
    ]})
    env = server_env(tmp_path / "data", "sqlite+aiosqlite:///unused.db")
    env.pop("VIDGATE_CONFIG", None)
    out = _check_config(env, str(path))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith(f"{path}: ok\n")
    blocks = {b.splitlines()[0].split()[0]: b for b in text.strip().split("\n\n")[1:]}
    assert list(blocks) == ["sora-2", "sora-2-pro", "veo-3.1"]
    veo = blocks["veo-3.1"]
    assert "veo-3.1 (aliases: veo-3.1-generate-preview)" in veo
    assert "seconds: 4, 6, 8 (default: 8)" in veo
    assert "prices: up to 1280x720: 0.15 USD/s; larger: 0.4 USD/s" in veo
    assert ("channel gpu: kind openai; priority 10; upstream model "
            "Wan-AI/Wan2.2-T2V-A14B-Diffusers; sizes 1280x720") in veo
    assert "channel local: kind sandbox; priority 0" in veo
    assert veo.index("channel gpu") < veo.index("channel local")  # best priority first
    assert "channel local" in blocks["sora-2"]
    assert "channels: none (creates fail with no_available_channel)" in blocks["sora-2-pro"]
    assert not (tmp_path / "data").exists()  # checking touches no database or data dir

    # the path defaults to VIDGATE_CONFIG
    env["VIDGATE_CONFIG"] = str(path)
    assert _check_config(env).stdout == text


def test_check_config_fails_with_start_up_messages(tmp_path):
    path = write(tmp_path, {"models": [_model(default_seconds=5)], "channels": [
        {"name": "oops", "kind": "openai", "models": {"veo-3.1": "m"}}]})
    env = server_env(tmp_path / "data", f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    checked = _check_config(env, str(path))
    assert checked.returncode == 1 and checked.stdout == ""
    lines = checked.stderr.strip().splitlines()
    assert lines[0].startswith(f"invalid configuration: {path}: model 'veo-3.1' (models[0]): "
                               "field 'default_seconds'")
    assert f"{path}: channel 'oops' (channels[0]): field 'base_url': required" in lines[1]
    started = subprocess.run(vidgate_cmd("migrate"), env={**env, "VIDGATE_CONFIG": str(path)},
                             capture_output=True, text=True, timeout=60)
    assert started.returncode == 1
    assert started.stderr.strip().splitlines()[-len(lines):] == lines
    missing = _check_config(env, str(tmp_path / "nope.yaml"))
    assert missing.returncode == 1 and "cannot read the configuration file" in missing.stderr


def _yaml_examples() -> list[tuple[str, str]]:
    """Every ```yaml block of the README and docs/backends.md that is a whole vidgate.yaml."""
    root = Path(__file__).resolve().parent.parent
    found = []
    for doc in ("README.md", "docs/backends.md"):
        text = (root / doc).read_text()
        for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", text, re.S)):
            data = yaml.safe_load(block)
            if isinstance(data, dict) and ("models" in data or "channels" in data):
                found.append((f"{doc}#{i}", block))
    return found


@pytest.mark.parametrize("where, block", _yaml_examples())
def test_documented_files_load(tmp_path, monkeypatch, where, block):
    data = yaml.safe_load(block)
    for channel in data.get("channels") or []:
        for variable in ("api_key_env", "secret_key_env", "webhook_secret_env"):
            if channel.get(variable):
                monkeypatch.setenv(channel[variable], "set")
        if channel.get("credentials_file"):  # the operator's key file: a stand-in here
            stand_in = tmp_path / "service-account.json"
            stand_in.write_text("{}")
            block = block.replace(channel["credentials_file"], str(stand_in))
    config = load_config(write(tmp_path, block))
    for entry in data.get("models") or []:
        assert entry["name"] in config.catalog.models, where


def test_the_docs_cover_models(tmp_path):
    examples = dict(_yaml_examples())
    assert any("models" in yaml.safe_load(b) for w, b in examples.items()
               if w.startswith("README")) and len(examples) >= 5
