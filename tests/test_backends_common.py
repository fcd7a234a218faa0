"""The shared protocol helpers: status mapping, progress, result URLs, error classes."""

from __future__ import annotations

import random

import pytest
from multidict import CIMultiDict

from vidgate.backends.base import UNKNOWN, SubmitRefused, TransientError, UpstreamFailed
from vidgate.backends.http.answers import (
    check_poll,
    check_submit,
    find_url,
    map_status,
    parse_progress,
    read_status,
    retry_after,
)
from vidgate.backends.http.client import UpstreamResponse
from vidgate.catalog import VideoRequest
from vidgate.channels import ChannelConfig
from vidgate.engine import pacing
from vidgate.engine.router import Router


@pytest.mark.parametrize("value, state", [
    ("not_start", "queued"), ("NOT_START", "queued"), ("SUBMITTED", "queued"),
    ("queued", "queued"), ("pending", "queued"), ("in_progress", "in_progress"),
    ("IN_PROGRESS", "in_progress"), ("processing", "in_progress"), ("running", "in_progress"),
    ("completed", "completed"), ("succeeded", "completed"), ("SUCCESS", "completed"),
    ("failed", "failed"), ("FAILURE", "failed"), ("error", "failed"),
    ("cancelled", "failed"), ("expired", "failed"),
    ("UNKNOWN", UNKNOWN), ("warming_up", UNKNOWN), ("", UNKNOWN), (None, UNKNOWN),
    (3, UNKNOWN),
])
def test_status_mapping(value, state):
    assert map_status(value) == state


@pytest.mark.parametrize("value, progress", [
    (30, 30), (30.7, 30), ("30", 30), ("30%", 30), (" 45 % ", 45), (150, 100), (-5, 0),
    (None, None), ("", None), ("soon", None), (True, None), ({"p": 1}, None),
])
def test_progress_parsing(value, progress):
    assert parse_progress(value) == progress


@pytest.mark.parametrize("body", [
    {"url": "https://a/v.mp4"}, {"video_url": "https://a/v.mp4"},
    {"video": {"url": "https://a/v.mp4"}}, {"metadata": {"url": "https://a/v.mp4"}},
    {"result_url": "https://a/v.mp4"}, {"data": {"url": "https://a/v.mp4"}},
    {"data": {"metadata": {"url": "https://a/v.mp4"}}},
])
def test_result_url_locations(body):
    assert find_url(body) == "https://a/v.mp4"


def test_result_url_ignores_non_urls():
    assert find_url({"url": "", "video_url": "s3-key/v.mp4", "data": None}) is None


def test_read_status_flat_envelope_and_garbage():
    flat = read_status({"status": "in_progress", "progress": "40%"})
    assert (flat.state, flat.progress) == ("in_progress", 40)
    env = read_status({"code": "success", "message": "",
                       "data": {"status": "SUCCESS", "progress": "100%",
                                "data": {"metadata": {"url": "http://x/v.mp4"}}}})
    assert env.state == "completed" and env.result_url == "http://x/v.mp4"
    assert read_status(None).state == UNKNOWN
    assert read_status(["completed"]).state == UNKNOWN
    assert read_status({"code": "task_not_exist", "message": "?", "data": None}).state == UNKNOWN


def test_read_status_failure_codes():
    blocked = read_status({"status": "failed", "error": {
        "code": "moderation_blocked", "message": "blocked by our moderation system"}})
    assert (blocked.state, blocked.error_code) == ("failed", "moderation_blocked")
    policy = read_status({"data": {"status": "FAILURE",
                                   "fail_reason": "content policy violation"}})
    assert policy.error_code == "moderation_blocked"
    crash = read_status({"status": "failed", "fail_reason": "CUDA OOM at https://x/y"})
    assert crash.error_code == "upstream_error"
    assert "https://x" not in crash.error_message  # upstream URLs never reach clients


def _resp(status: int, body: bytes = b"{}", **headers) -> UpstreamResponse:
    return UpstreamResponse(status, CIMultiDict(headers), body)


def test_submit_classification():
    assert check_submit(_resp(200, b'{"id": "v1"}')) == {"id": "v1"}
    for status in (500, 502, 503, 429, 408, 401, 404):
        with pytest.raises(SubmitRefused):
            check_submit(_resp(status))
    with pytest.raises(SubmitRefused) as err:
        check_submit(_resp(429, **{"Retry-After": "7"}))
    assert err.value.retry_after == 7
    with pytest.raises(SubmitRefused):
        check_submit(_resp(200, b"<html>"))
    with pytest.raises(UpstreamFailed) as failed:
        check_submit(_resp(400, b'{"error": {"message": "bad size"}}'))
    assert failed.value.code == "upstream_error"
    with pytest.raises(UpstreamFailed) as blocked:
        check_submit(_resp(400, b'{"error": {"code": "content_policy_violation"}}'))
    assert blocked.value.code == "moderation_blocked"


def test_poll_errors_are_transient():
    for status in (500, 503, 429, 404, 400, 401):
        with pytest.raises(TransientError):
            check_poll(_resp(status))
    assert check_poll(_resp(200, b"not json")) is None
    assert retry_after(_resp(503, **{"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0


def test_backoff_grows_to_the_bound_and_honours_retry_after():
    delays = [pacing.backoff(n, 2, 20) for n in range(1, 12)]
    assert delays[0] == 2 and delays == sorted(delays) and delays[-1] == 20
    assert pacing.next_delay(1, 2, 20, retry_after=45) == 45
    spread = {round(pacing.next_delay(3, 2, 20), 3) for _ in range(50)}
    assert len(spread) > 10 and all(3.6 <= d <= 4.5 for d in spread)
    # the channel's maximum bounds every delay, jitter included
    assert max(pacing.next_delay(40, 2, 20) for _ in range(500)) <= 20


class _Upstream:
    """Stands in for an HTTP backend: no local limit of its own."""

    def __init__(self, slots: int | None = None) -> None:
        self.slots = slots

    def free_slots(self) -> int | None:
        return self.slots


def _router(*configs, slots: int | None = None) -> Router:
    return Router.build(list(configs), {c.name: _Upstream(slots) for c in configs})


def _cfg(name, **kw) -> ChannelConfig:
    return ChannelConfig(name=name, kind="sandbox", models={"sora-2": "m"}, **kw)


REQ = VideoRequest(model="sora-2", prompt="p", width=1280, height=720, seconds=4)


def test_router_priority_weight_cap_and_breaker():
    router = _router(_cfg("low", priority=0), _cfg("heavy", priority=5, weight=3),
                     _cfg("light", priority=5, weight=1),
                     _cfg("other-size", priority=9, sizes=["720x720"]))
    router.rng = random.Random(1)
    firsts = [router.order(REQ)[0].name for _ in range(2000)]
    assert set(firsts) == {"heavy", "light"}
    assert 0.70 < firsts.count("heavy") / 2000 < 0.80  # weight 3 : 1
    assert [c.name for c in router.order(REQ)][-1] == "low"
    assert router.can_route(REQ)
    assert not router.can_route(VideoRequest("sora-2-pro", "p", 1280, 720, 4))

    heavy = router.get("heavy")
    for _ in range(heavy.config.failure_threshold):
        assert router.reserve(heavy)
        router.refused(heavy)
    assert "heavy" not in [c.name for c in router.order(REQ)]  # circuit open
    heavy.breaker.open_until = 0  # cooldown over: half-open, one trial goes through
    assert "heavy" in [c.name for c in router.order(REQ)]
    assert router.reserve(heavy)
    assert "heavy" not in [c.name for c in router.order(REQ)]  # others wait for the trial
    router.answered(heavy, accepted=True)
    assert "heavy" in [c.name for c in router.order(REQ)]

    capped = _router(_cfg("one", max_in_flight=1))
    one = capped.get("one")
    assert capped.submit_room() == 1 and capped.reserve(one)
    assert capped.order(REQ) == [] and capped.submit_room() == 0
    capped.answered(one, accepted=True)
    assert one.in_flight == 1 and not one.has_room()
    capped.finished("one")
    assert one.has_room()


def test_router_counts_free_local_slots_of_in_process_backends():
    """A sandbox channel takes only what this process can start now, so a worker does not
    hoard queued tasks that another worker could render."""
    router = _router(_cfg("local"), slots=2)
    local = router.get("local")
    assert router.submit_room() == 2
    assert router.reserve(local) and router.submit_room() == 1
    assert router.reserve(local) and router.submit_room() == 0
    assert router.order(REQ) == []
    router.answered(local, accepted=True)
    local.backend.slots = 1  # the backend now runs one job
    assert router.submit_room() == 0  # one reservation still under way
    router.answered(local, accepted=True)
    assert router.submit_room() == 1 and router.order(REQ) == [local]
