"""Mirroring: a 200 MB upstream result is streamed into storage while the gateway's memory
stays flat.

The gateway runs as its own process (`vidgate serve` with a vidgate.yaml pointing at a fake
OpenAI-style upstream that lives in this test process), so its resident set can be sampled
from /proc while it downloads, probes and makes previews of the file. The 200 MB "mp4" is
the small real sample followed by a 200 MB top-level `free` box: demuxers skip such boxes,
so PyAV probes it and decodes its frames as usual, and every byte still has to travel.
"""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import yaml

from fakes.fixtures import fake_world_fixture, sample_media_fixture  # noqa: F401
from support import fresh_database_url, server_env, start_server, wait_for
from vidgate.backends.sandbox.sample import padded_mp4
from vidgate.media.probe import probe

BIG = 200 * 1024 * 1024
MAX_GROWTH = 50 * 1024 * 1024


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class Sampler(threading.Thread):
    """Peak RSS of a process, sampled every 10 ms until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.samples = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.01):
            self.peak = max(self.peak, rss(self.pid))
            self.samples += 1

    def stop(self) -> int:
        self._halt.set()
        self.join(5)
        return self.peak


def test_200_mb_result_is_mirrored_with_flat_memory(tmp_path, fake_world, sample_media):
    big = padded_mp4(sample_media.video, tmp_path / "big.mp4", BIG)
    upstream = fake_world.add("openai", key="sk-mirror", video=big, job_seconds=0.2)
    config = tmp_path / "vidgate.yaml"
    config.write_text(yaml.safe_dump({"channels": [{
        "name": "big-upstream", "kind": "openai", "base_url": upstream.url,
        "api_key_env": "VG_MIRROR_KEY", "models": {"sora-2": "wan"},
        "poll_min_seconds": 0.1, "poll_max_seconds": 0.5,
    }]}))
    url, cleanup = fresh_database_url(tmp_path)
    env = server_env(tmp_path / "data", url, VIDGATE_CONFIG=str(config),
                     VG_MIRROR_KEY="sk-mirror")
    server = start_server(env)
    try:
        def create(prompt: str) -> str:
            r = httpx.post(server.api + "/videos", headers=server.headers(),
                           json={"prompt": prompt, "size": "1280x720"})
            assert r.status_code == 200, r.text
            return r.json()["id"]

        def finished(video_id: str) -> dict | None:
            v = httpx.get(f"{server.api}/videos/{video_id}", headers=server.headers()).json()
            return v if v["status"] in ("completed", "failed") else None

        # Warm up every code path (HTTP client, PyAV, previews) on a small result first.
        warm_id = create("warm up [small]")
        warm = wait_for(lambda: finished(warm_id), timeout=60, what="the warm-up task")
        assert warm["status"] == "completed", warm
        baseline = rss(server.proc.pid)

        sampler = Sampler(server.proc.pid)
        sampler.start()
        video_id = create("a very long film")
        done = wait_for(lambda: finished(video_id), timeout=180, interval=0.2,
                        what="the 200 MB task")
        peak = sampler.stop()
        assert done["status"] == "completed", done
        growth = peak - baseline
        print(f"\nmirroring 200 MB: baseline RSS {baseline / 2**20:.1f} MiB, peak "
              f"{peak / 2**20:.1f} MiB, growth {growth / 2**20:.1f} MiB "
              f"({sampler.samples} samples)")
        assert sampler.samples > 10
        assert growth < MAX_GROWTH

        # The stored file is the whole thing, and it is a video.
        out = tmp_path / "downloaded.mp4"
        with httpx.stream("GET", done["url"]) as r, open(out, "wb") as f:
            assert r.status_code == 200
            for chunk in r.iter_bytes(1 << 20):
                f.write(chunk)
        assert out.stat().st_size == big.stat().st_size
        info = probe(out)
        assert (info.width, info.height) == (320, 240)
        assert done["seconds"] == "1"
        assert httpx.get(done["thumbnail_url"]).status_code == 200
    finally:
        server.stop()
        cleanup()
