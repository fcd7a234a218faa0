"""`vidgate generate` and `vidgate videos ...` as a user runs them: real subprocesses against a
live `vidgate serve`, output captured.

The server has two channels: the sandbox (real MP4s of the requested size and length) for
`sora-2`, and a fake OpenAI-style upstream for the declared model `relay-model`, whose jobs
fail or never finish on request (prompt tags `[fail]`, `[stuck]`; see tests/fakes/upstream.py).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from pathlib import Path

import httpx
import pytest
import yaml

from fakes.fixtures import sample_media_fixture  # noqa: F401
from fakes.upstream import FakeWorld
from support import fresh_database_url, server_env, start_server, vidgate_cmd, wait_for
from vidgate.media.probe import probe

PROGRESS_LINE = re.compile(r"^(video_[0-9a-f]+) (queued|in_progress|completed|failed) (\d+)%$",
                           re.M)


@pytest.fixture(scope="module")
def world(sample_media):
    world = FakeWorld(sample_media)
    yield world
    world.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, world):
    tmp = tmp_path_factory.mktemp("cli-live")
    # a job takes 4 s, its progress rising linearly: the CLI, polling every second as the
    # server asks, sees several values on the way
    upstream = world.add("openai", key="sk-relay", job_seconds=4.0)
    config = tmp / "vidgate.yaml"
    config.write_text(yaml.safe_dump({
        "models": [{"name": "relay-model", "sizes": ["1280x720"], "seconds": [4],
                    "prices": [{"usd_per_second": 0.1}]}],
        "channels": [
            {"name": "sandbox", "kind": "sandbox", "models": {"sora-2": "sora-2"}},
            {"name": "relay", "kind": "openai", "base_url": upstream.url,
             "api_key_env": "VG_RELAY_KEY", "models": {"relay-model": "wan"},
             "poll_min_seconds": 0.1, "poll_max_seconds": 0.3},
        ],
    }))
    url, cleanup = fresh_database_url(tmp)
    server = start_server(server_env(tmp / "data", url, VIDGATE_CONFIG=str(config),
                                     VG_RELAY_KEY="sk-relay"))
    yield server
    server.stop()
    cleanup()


def cli_env(server, **extra: str) -> dict:
    """The client's environment: plain progress lines (no terminal), this server and key."""
    env = dict(server.env, VIDGATE_BASE_URL=server.url, VIDGATE_API_KEY=server.key,
               TTY_COMPATIBLE="0", TTY_INTERACTIVE="0")
    env.update(extra)
    return env


def run(env, *args, cwd: Path, timeout: float = 120):
    return subprocess.run(vidgate_cmd(*args), env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def progress_of(text: str) -> list[tuple[str, int]]:
    return [(m.group(2), int(m.group(3))) for m in PROGRESS_LINE.finditer(text)]


def get_video(server, video_id: str) -> httpx.Response:
    return httpx.get(f"{server.api}/videos/{video_id}", headers=server.headers())


def test_generate_writes_the_requested_video_and_its_progress_rises(server, tmp_path):
    out = tmp_path / "garden.mp4"
    done = run(cli_env(server), "generate", "a garden in spring", "--model", "sora-2",
               "--size", "1280x720", "--seconds", "8", "-o", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out.resolve())  # the path alone, for scripts
    info = probe(out)
    assert (info.width, info.height) == (1280, 720)
    assert info.duration == pytest.approx(8.0, abs=0.2)

    steps = progress_of(done.stderr)
    values = [p for _, p in steps]
    assert values == sorted(values), done.stderr          # never goes down
    assert values[0] < 100 and steps[-1] == ("completed", 100), done.stderr
    assert not list(tmp_path.glob("*.part"))


def test_generate_shows_the_upstream_progress_as_it_rises(server, tmp_path):
    done = run(cli_env(server), "generate", "a slow job", "--model", "relay-model",
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    steps = progress_of(done.stderr)
    values = [p for _, p in steps]
    assert values == sorted(values), done.stderr
    assert steps[-1] == ("completed", 100), done.stderr
    # the real progress on the way, not just 0 and 100
    assert len([p for p in values if 0 < p < 100]) >= 2, done.stderr
    assert all(status == "in_progress" for status, p in steps if 0 < p < 100)
    assert probe(Path(done.stdout.strip())).duration > 0


def test_generate_with_a_local_image_and_a_rich_bar(server, tmp_path, sample_media):
    from PIL import Image

    image = tmp_path / "first.png"
    Image.new("RGB", (1280, 720), (200, 40, 40)).save(image)
    env = cli_env(server, TTY_COMPATIBLE="1", TTY_INTERACTIVE="1", COLUMNS="120")
    done = run(env, "generate", "a red room", "--seconds", "4", "--size", "1280x720",
               "--image", str(image), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    video_id = re.search(r"created (video_[0-9a-f]+)", done.stderr).group(1)
    saved = Path(done.stdout.strip())
    assert saved == tmp_path / f"{video_id}.mp4"  # the default name, in the current folder
    assert probe(saved).width == 1280
    percents = [int(p) for p in re.findall(r"(\d+)%", done.stderr)]
    assert percents and percents[-1] == 100 and percents == sorted(percents), done.stderr
    assert "\x1b[" in done.stderr  # the rich bar, not the plain lines
    assert not PROGRESS_LINE.search(done.stderr)


def test_a_missing_image_file_or_output_folder_is_refused_before_any_request(server, tmp_path):
    before = httpx.get(server.api + "/videos", headers=server.headers()).json()["data"]
    done = run(cli_env(server), "generate", "x", "--image", str(tmp_path / "nope.png"),
               cwd=tmp_path)
    assert done.returncode == 2 and "no such file" in done.stderr
    nowhere = run(cli_env(server), "generate", "x", "-o", str(tmp_path / "no" / "x.mp4"),
                  cwd=tmp_path)
    assert nowhere.returncode == 2 and "--output: no such folder" in nowhere.stderr
    after = httpx.get(server.api + "/videos", headers=server.headers()).json()["data"]
    assert [v["id"] for v in after] == [v["id"] for v in before]


def test_a_failed_task_exits_1_with_its_code_and_message(server, tmp_path):
    done = run(cli_env(server), "generate", "a crash [fail]", "--model", "relay-model",
               cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    video_id = re.search(r"created (video_[0-9a-f]+)", done.stderr).group(1)
    failed = get_video(server, video_id).json()
    assert failed["status"] == "failed"
    code, message = failed["error"]["code"], failed["error"]["message"]
    assert f"{video_id} failed: {code}: {message}" in done.stderr
    assert progress_of(done.stderr)[-1][0] == "failed"
    assert not list(tmp_path.glob("*.mp4"))


def test_an_unknown_model_exits_1_with_the_api_error_and_creates_nothing(server, tmp_path):
    done = run(cli_env(server), "generate", "x", "--model", "no-such-model", cwd=tmp_path)
    assert done.returncode == 1
    assert "error 404 model_not_found" in done.stderr, done.stderr
    assert "created" not in done.stderr


def test_an_unreachable_server_is_named(server, tmp_path):
    from support import free_port

    base = f"http://127.0.0.1:{free_port()}"
    done = run(cli_env(server, VIDGATE_BASE_URL=base), "videos", "list", cwd=tmp_path)
    assert done.returncode == 1
    assert f"cannot reach vidgate at {base}" in done.stderr


class Watched:
    """A `vidgate generate` run whose stderr is read as it comes."""

    def __init__(self, env, *args: str, cwd: Path) -> None:
        self.proc = subprocess.Popen(vidgate_cmd(*args), env=env, cwd=cwd,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.err: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:  # in chunks: the question ends without a newline
        fd = self.proc.stderr.fileno()
        while chunk := os.read(fd, 4096):
            self.err.append(chunk)

    def text(self) -> str:
        return b"".join(self.err).decode()

    def finish(self, answer: str) -> int:
        self.proc.stdin.write(answer.encode())
        self.proc.stdin.close()
        code = self.proc.wait(60)
        self._reader.join(10)
        return code


@pytest.mark.parametrize("answer", ["y\n", "n\n"])
def test_ctrl_c_asks_whether_to_cancel(server, tmp_path, answer):
    run_ = Watched(cli_env(server), "generate", "forever [stuck]", "--model", "relay-model",
                   cwd=tmp_path)
    try:
        wait_for(lambda: "in_progress" in run_.text(), timeout=60, what="the task to start")
        video_id = re.search(r"created (video_[0-9a-f]+)", run_.text()).group(1)
        run_.proc.send_signal(signal.SIGINT)
        wait_for(lambda: f"Cancel {video_id}?" in run_.text(), timeout=30,
                 what="the question")
        assert run_.finish(answer) == 130
    finally:
        if run_.proc.poll() is None:
            run_.proc.kill()
    if answer == "y\n":
        assert f"cancelled and deleted {video_id}" in run_.text()
        assert get_video(server, video_id).status_code == 404
    else:
        assert f"{video_id} keeps running" in run_.text()
        assert f"vidgate videos download {video_id}" in run_.text()
        assert get_video(server, video_id).json()["status"] == "in_progress"
        httpx.delete(f"{server.api}/videos/{video_id}", headers=server.headers())


def test_videos_list_show_download_delete(server, tmp_path):
    env = cli_env(server)
    made = run(env, "generate", "a small boat", "--seconds", "4", "--size", "720x720",
               "-o", str(tmp_path / "boat.mp4"), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    video_id = re.search(r"created (video_[0-9a-f]+)", made.stderr).group(1)

    import json

    listed = [json.loads(line) for line in
              run(env, "videos", "list", "--limit", "200", cwd=tmp_path).stdout.splitlines()]
    assert listed[0]["id"] == video_id  # newest first
    api = httpx.get(server.api + "/videos", headers=server.headers(),
                    params={"limit": 100}).json()["data"]
    assert [v["id"] for v in listed] == [v["id"] for v in api]
    one = run(env, "videos", "list", "--limit", "1", cwd=tmp_path).stdout.splitlines()
    assert len(one) == 1

    shown = run(env, "videos", "show", video_id, cwd=tmp_path)
    video = json.loads(shown.stdout)
    assert video["status"] == "completed" and video["size"] == "720x720"

    got = run(env, "videos", "download", video_id, cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    path = Path(got.stdout.strip())
    assert path == tmp_path / f"{video_id}.mp4"
    assert path.read_bytes() == (tmp_path / "boat.mp4").read_bytes()
    thumb = run(env, "videos", "download", video_id, "--variant", "thumbnail", "-o",
                str(tmp_path / "t.webp"), cwd=tmp_path)
    assert thumb.returncode == 0 and (tmp_path / "t.webp").read_bytes()[8:12] == b"WEBP"

    gone = run(env, "videos", "delete", video_id, cwd=tmp_path)
    assert json.loads(gone.stdout) == {"id": video_id, "object": "video.deleted",
                                       "deleted": True}
    again = run(env, "videos", "show", video_id, cwd=tmp_path)
    assert again.returncode == 1 and "error 404" in again.stderr
    missing = run(env, "videos", "download", video_id, cwd=tmp_path)
    assert missing.returncode == 1 and "error 404" in missing.stderr
    assert not list(tmp_path.glob("*.part"))


def test_without_a_key_a_local_server_gets_a_saved_cli_key(server, tmp_path):
    env = cli_env(server)
    del env["VIDGATE_API_KEY"]
    data_dir = Path(env["VIDGATE_DATA_DIR"])
    key_file = data_dir / "cli-key"
    key_file.unlink(missing_ok=True)

    first = run(env, "videos", "list", "--limit", "1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"saved it in {key_file} (mode 0600)" in first.stderr
    assert os.stat(key_file).st_mode & 0o777 == 0o600
    secret = key_file.read_text().strip()
    assert httpx.get(server.api + "/account",
                     headers=server.headers(secret)).status_code == 200
    listed = run(env, "keys", "list", cwd=tmp_path).stdout
    assert re.search(rf"{re.escape(secret[:12])}\.\.\.\tactive\tcli$", listed, re.M)

    second = run(env, "videos", "list", "--limit", "1", cwd=tmp_path)
    assert second.returncode == 0 and f"using the API key saved in {key_file}" in second.stderr
    assert key_file.read_text().strip() == secret

    # revoked: the message names the file and what to do
    assert run(env, "keys", "revoke", secret, cwd=tmp_path).returncode == 0
    refused = wait_for(lambda: (r := run(env, "videos", "list", cwd=tmp_path)).returncode
                       and r, timeout=30, what="the revocation to apply")
    assert "error 401" in refused.stderr and f"the key saved in {key_file}" in refused.stderr
    key_file.unlink()


def test_without_a_key_nothing_is_made_for_a_remote_server_or_a_missing_folder(tmp_path):
    env = dict(os.environ, VIDGATE_DATA_DIR=str(tmp_path / "absent"))
    env.pop("VIDGATE_API_KEY", None)
    env.pop("VIDGATE_DATABASE_URL", None)
    remote = run(env, "generate", "x", "--base-url", "https://vidgate.example.com",
                 cwd=tmp_path)
    assert remote.returncode == 1
    assert "no API key for https://vidgate.example.com: pass --api-key" in remote.stderr
    local = run(env, "videos", "list", "--base-url", "http://127.0.0.1:9", cwd=tmp_path)
    assert local.returncode == 1 and "no API key" in local.stderr
    assert f"no vidgate database in {tmp_path / 'absent'}" in local.stderr
    assert not (tmp_path / "absent").exists()
