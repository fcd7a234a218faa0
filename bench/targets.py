"""The servers under test: vidgate and the LiteLLM proxy, each configured against the same
fake upstream and started pinned to the server core."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import procs

ROOT = Path(__file__).resolve().parent.parent
LITELLM_VENV = ROOT / "bench" / ".venv-litellm"
LITELLM_MASTER_KEY = "sk-bench-master"


@dataclass
class Target:
    """A running server: how to reach it and how long it took to become ready."""

    name: str
    proc: procs.Proc
    base: str
    auth: dict[str, str]
    ready_s: float
    env: dict[str, str] = field(default_factory=dict)  # vidgate's: for its workers

    def stop(self) -> None:
        self.proc.stop()


def vidgate_bin() -> Path:
    """The `vidgate` next to the running interpreter (the project venv)."""
    return Path(sys.executable).parent / "vidgate"


SEED_SIZE = "720x720"   # tasks of this size go to the channel whose upstream completes them


def vidgate_yaml(upstream: str, *, poll_min: float, poll_max: float) -> str:
    """Three `openai` channels on the fake upstream (nginx):

    - `fake` (sora-2 at every size but SEED_SIZE): jobs stay in progress, as real ones do
      for minutes; default poll pacing. The measured creates go here.
    - `fake-done` (sora-2 at SEED_SIZE): completed at the first poll, small video. The
      tasks that status reads cycle through are made here.
    - `fake-big` (sora-2-pro): completed, and /content is the big video (download phase).
    """
    others = [s for s in ("1280x720", "720x1280", "1920x1080", "1080x1920", "1080x1080")
              if s != SEED_SIZE]
    fast = {"poll_min_seconds": poll_min, "poll_max_seconds": poll_max}
    channels = [
        {"name": "fake", "kind": "openai", "base_url": f"{upstream}/v1",
         "models": {"sora-2": "sora-2"}, "sizes": others, "max_concurrent_requests": 32},
        {"name": "fake-done", "kind": "openai", "base_url": f"{upstream}/done/v1",
         "models": {"sora-2": "sora-2"}, "sizes": [SEED_SIZE], **fast},
        {"name": "fake-big", "kind": "openai", "base_url": f"{upstream}/big/v1",
         "models": {"sora-2-pro": "sora-2-pro"}, "download_timeout_seconds": 300, **fast},
    ]
    return json.dumps({"channels": channels}, indent=2)  # JSON is YAML


def vidgate_env(data_dir: Path, config: Path, extra: dict[str, str] | None = None
                ) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDGATE_")}
    env.update(VIDGATE_DATA_DIR=str(data_dir), VIDGATE_CONFIG=str(config),
               VIDGATE_SECRET="bench-secret-" + "0" * 32, VIDGATE_RENDER_WORKERS="1")
    env.update(extra or {})
    return env


def start_vidgate(run_dir: Path, upstream: str, *, core: int | None, poll_min: float = 0.5,
                  poll_max: float = 1.0, extra_env: dict[str, str] | None = None,
                  config_text: str | None = None, port: int | None = None,
                  serve_args: tuple[str, ...] = (),
                  binary: Path | None = None) -> Target:
    """Fresh data dir and database, one API key, then `vidgate serve` (with `serve_args`)
    on `core` (None: any core), on `port` when the caller must know it first, e.g. for
    VIDGATE_PUBLIC_URL. `binary` is another build's `vidgate` (default: this venv's)."""
    binary = binary or vidgate_bin()
    data_dir = run_dir / "vidgate-data"
    config = run_dir / "vidgate.yaml"
    shutil.rmtree(data_dir, ignore_errors=True)  # never resume an earlier run's tasks
    run_dir.mkdir(parents=True, exist_ok=True)
    config.write_text(config_text or vidgate_yaml(upstream, poll_min=poll_min,
                                                  poll_max=poll_max))
    env = vidgate_env(data_dir, config, extra_env)
    made = subprocess.run([str(binary), "keys", "create", "--name", "bench"], env=env,
                          capture_output=True, text=True, timeout=120)
    if made.returncode != 0:
        raise RuntimeError(f"vidgate keys create failed: {made.stderr[-2000:]}")
    key = made.stdout.strip().splitlines()[-1]
    port = port or procs.free_port()
    proc = procs.start("vidgate", [str(binary), "serve", "--host", "127.0.0.1",
                                   "--port", str(port), *serve_args],
                       core=core, log_dir=run_dir, env=env)
    base = f"http://127.0.0.1:{port}"
    ready = procs.wait_http(proc, f"{base}/healthz")
    return Target("vidgate", proc, base, {"Authorization": f"Bearer {key}"}, ready, env)


def litellm_bin() -> Path:
    return LITELLM_VENV / "bin" / "litellm"


def litellm_available() -> bool:
    return litellm_bin().is_file()


def litellm_yaml(upstream: str) -> str:
    """`openai/sora-2` on the fake upstream (and `sora-2-pro` on its big-file routes, as
    vidgate's channels); a master key and no database."""
    return json.dumps({
        "model_list": [
            {"model_name": "sora-2", "litellm_params": {
                "model": "openai/sora-2", "api_base": f"{upstream}/v1", "api_key": "sk-fake"}},
            {"model_name": "sora-2-pro", "litellm_params": {
                "model": "openai/sora-2-pro", "api_base": f"{upstream}/big/v1",
                "api_key": "sk-fake"}},
        ],
        "general_settings": {"master_key": LITELLM_MASTER_KEY},
        "litellm_settings": {"telemetry": False},
    }, indent=2)


def litellm_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_URL", "LITELLM_", "OPENAI_"))}
    # Use the cost map shipped in the package instead of fetching one at import: this
    # machine reaches no network, and a benchmark must not depend on one.
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR",
               DISABLE_ADMIN_UI="True", NO_DOCS="True")
    return env


def start_litellm(run_dir: Path, upstream: str, *, core: int) -> Target:
    run_dir.mkdir(parents=True, exist_ok=True)
    config = run_dir / "litellm.yaml"
    config.write_text(litellm_yaml(upstream))
    port = procs.free_port()
    proc = procs.start("litellm", [str(litellm_bin()), "--config", str(config),
                                   "--host", "127.0.0.1", "--port", str(port)],
                       core=core, log_dir=run_dir, env=litellm_env(), cwd=run_dir)
    base = f"http://127.0.0.1:{port}"
    ready = procs.wait_http(proc, f"{base}/health/liveliness", timeout=180)
    return Target("litellm", proc, base, {"Authorization": f"Bearer {LITELLM_MASTER_KEY}"},
                  ready)
