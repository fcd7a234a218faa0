"""A video that failed upstream shows one `error` object, read through every way a client has:
the three route families (spec sections 4-6) and the official `openai` SDK. Each family's
shape (spec/api.md) is `{"code", "message"}`, null links, status `failed`; the SDK parses it
into `video.error`. Real processes: a live `vidgate serve` with one channel to a fake
OpenAI-style upstream whose jobs fail as their prompt tags ask (tests/fakes/upstream.py)."""

from __future__ import annotations

import warnings

import httpx
import openai
import pytest
import yaml

from fakes.fixtures import sample_media_fixture  # noqa: F401
from fakes.upstream import FakeWorld
from support import fresh_database_url, server_env, start_server, wait_for

warnings.filterwarnings("ignore", category=DeprecationWarning)

# tag in the prompt -> (error.code, error.message) the client must see, whatever it reads with
FAILURES = {
    "moderation": ("moderation_blocked",
                   "Your request was blocked by our content policy (sensitive content)."),
    "upstream_error": ("upstream_error", "The model crashed while generating this video."),
}
TAGS = {"moderation": "[moderation]", "upstream_error": "[fail]"}


@pytest.fixture(scope="module")
def failed(tmp_path_factory, sample_media):
    """A live server and, per failure, the id of a task that failed upstream that way."""
    tmp = tmp_path_factory.mktemp("failed-errors")
    world = FakeWorld(sample_media)
    upstream = world.add("openai", key="sk-upstream-failing")
    config = tmp / "vidgate.yaml"
    config.write_text(yaml.safe_dump({"channels": [
        {"name": "failing", "kind": "openai", "base_url": upstream.url,
         "api_key_env": "VG_FAILING_KEY", "models": {"sora-2": "wan"},
         "poll_min_seconds": 0.1, "poll_max_seconds": 0.3},
    ]}))
    url, cleanup = fresh_database_url(tmp)
    server = start_server(server_env(tmp / "data", url, VIDGATE_CONFIG=str(config),
                                     VG_FAILING_KEY=upstream.key))
    try:
        ids = {}
        for name, tag in TAGS.items():
            r = httpx.post(server.api + "/videos", headers=server.headers(),
                           json={"prompt": f"a lighthouse {tag}", "model": "sora-2",
                                 "size": "1280x720", "seconds": "4"})
            assert r.status_code == 200, r.text
            ids[name] = r.json()["id"]

        def all_failed() -> bool:
            return all(httpx.get(f"{server.api}/videos/{i}", headers=server.headers())
                       .json()["status"] == "failed" for i in ids.values())

        wait_for(all_failed, timeout=90, interval=0.2, what="both tasks to fail upstream")
        assert len(upstream.jobs) == 2  # the failures were the upstream's, not ours
        yield server, ids
    finally:
        server.stop()
        cleanup()
        world.close()


def _get(server, path: str, **params) -> dict:
    r = httpx.get(server.url + path, params=params, headers=server.headers())
    assert r.status_code == 200, r.text  # a failed task is a successful read
    return r.json()


def read_videos(server, task_id: str) -> tuple[str, object, dict]:
    body = _get(server, f"/v1/videos/{task_id}")
    assert body["object"] == "video" and body["progress"] >= 0
    assert body["url"] is body["video_url"] is body["thumbnail_url"] is None
    return body["status"], body["error"], body


def read_generations(server, task_id: str) -> tuple[str, object, dict]:
    body = _get(server, f"/v1/video/generations/{task_id}")
    assert body["object"] == "video.generation" and body["task_id"] == task_id
    assert body["url"] is body["video_url"] is None
    return body["status"], body["error"], body


def read_unified(server, task_id: str) -> tuple[str, object, dict]:
    body = _get(server, "/v1/video/query", id=task_id)
    assert body["task_id"] == task_id
    assert body["video_url"] is body["url"] is None
    return body["status"], body["error"], body


def read_sdk(server, task_id: str) -> tuple[str, object, dict]:
    client = openai.OpenAI(base_url=server.api, api_key=server.key, max_retries=0)
    video = client.videos.retrieve(task_id)
    assert video.id == task_id and video.completed_at is not None
    # the SDK's typed object, turned back into the plain shape the spec names
    error = None if video.error is None else {"code": video.error.code,
                                              "message": video.error.message}
    return video.status, error, video.model_dump()


READERS = {"/v1/videos/{id}": read_videos,
           "/v1/video/generations/{task_id}": read_generations,
           "/v1/video/query?id=": read_unified,
           "openai.videos.retrieve": read_sdk}


@pytest.mark.parametrize("failure", list(FAILURES))
@pytest.mark.parametrize("reader", list(READERS))
def test_failed_video_error_reads_the_same_everywhere(failed, reader, failure):
    server, ids = failed
    status, error, body = READERS[reader](server, ids[failure])
    code, message = FAILURES[failure]
    assert status == "failed", body
    assert error == {"code": code, "message": message}, body
    assert body["completed_at"] is not None
