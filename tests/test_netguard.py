"""The one address policy (`netguard`) as the result downloader uses it, and channel pacing.

Every server here listens on 127.0.0.1; the names are answered by a stand-in resolver put
underneath the guard, and the "private" answers are loopback addresses nothing listens on,
so a guard that let one through would fail with a refused connection, never reach a
network.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from vidgate import netguard
from vidgate.backends.base import ResultUnavailable
from vidgate.backends.http.client import ChannelClient, pacer
from vidgate.channels import ChannelConfig
from vidgate.netguard import AddressPolicy, AddressRefused, GuardedResolver

VIDEO = b"\x00\x00\x00\x18ftypmp42" + b"v" * 4000
LOOPBACK_ONLY = AddressPolicy(allowed_networks=("127.0.0.1/32",))


class ScriptedResolver(AbstractResolver):
    """Answers each lookup of a name with the next address of its script (a rebinding DNS
    server does exactly this), and records every lookup."""

    def __init__(self, scripts: dict[str, list[str]]) -> None:
        self.scripts = {name: list(answers) for name, answers in scripts.items()}
        self.lookups: list[str] = []

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.lookups.append(host)
        if not self.scripts.get(host):
            raise OSError(f"no stand-in answer for {host}")
        address = self.scripts[host].pop(0)
        return [{"hostname": host, "host": address, "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST}]

    async def close(self) -> None:
        pass


class FileServer:
    """Serves VIDEO on 127.0.0.1, closing each connection so every download dials anew."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, str]] = []
        self.arrivals: list[float] = []
        self.port = 0

    async def video(self, request: web.Request) -> web.Response:
        self.hits.append((request.path, request.host))
        response = web.Response(body=VIDEO, content_type="video/mp4")
        response.force_close()
        return response

    async def poll(self, request: web.Request) -> web.Response:
        self.arrivals.append(asyncio.get_running_loop().time())
        return web.json_response({"status": "queued"})


@pytest.fixture
async def file_server() -> AsyncIterator[FileServer]:
    server = FileServer()
    app = web.Application()
    app.router.add_get("/video.mp4", server.video)
    app.router.add_get("/v1/poll", server.poll)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.port = site._server.sockets[0].getsockname()[1]
    yield server
    await runner.cleanup()


@pytest.fixture
def dns(monkeypatch) -> ScriptedResolver:
    resolver = ScriptedResolver({})
    monkeypatch.setattr(netguard, "system_resolver", lambda: resolver)
    return resolver


def channel(base_url: str = "http://127.0.0.1:9/v1", **overrides) -> ChannelConfig:
    """A channel whose own origin is never contacted by these downloads."""
    return ChannelConfig(name="ch", kind="unified", base_url=base_url, **overrides)


async def test_resolver_refuses_the_second_answer_of_a_rebinding_name():
    """First lookup public, second private: the guard returns the first (checked) answer and
    refuses the second; nothing connects in this test at all."""
    lower = ScriptedResolver({"cdn.rebind.test": ["93.184.216.34", "10.0.0.7"]})
    guard = GuardedResolver(AddressPolicy(), lower)
    first = await guard.resolve("cdn.rebind.test", 443)
    assert [a["host"] for a in first] == ["93.184.216.34"]
    with pytest.raises(AddressRefused):
        await guard.resolve("cdn.rebind.test", 443)
    assert lower.lookups == ["cdn.rebind.test", "cdn.rebind.test"]


async def test_one_bad_answer_refuses_the_name():
    lower = ScriptedResolver({})

    async def two_answers(host, port=0, family=socket.AF_INET):
        return [{"hostname": host, "host": a, "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": 0} for a in ("93.184.216.34", "169.254.169.254")]

    lower.resolve = two_answers
    with pytest.raises(AddressRefused):
        await GuardedResolver(AddressPolicy(), lower).resolve("mixed.test", 80)


async def test_download_dials_the_checked_address_and_refuses_a_rebound_name(
        tmp_path, file_server, dns):
    """The first answer (127.0.0.1, allowed for this test) is checked and dialled: one
    lookup per connection, the server sees the name in Host. The next connection's lookup
    answers 127.0.0.2 (loopback, not allowed): refused as private before any connect."""
    dns.scripts["media.rebind.test"] = ["127.0.0.1", "127.0.0.2"]
    client = ChannelClient(channel(), policy=LOOPBACK_ONLY)
    url = f"http://media.rebind.test:{file_server.port}/video.mp4"
    try:
        assert await client.download(url, tmp_path / "a.mp4") == len(VIDEO)
        assert (tmp_path / "a.mp4").read_bytes() == VIDEO
        assert dns.lookups == ["media.rebind.test"]  # the check and the connect: one lookup
        assert file_server.hits == [("/video.mp4", f"media.rebind.test:{file_server.port}")]

        with pytest.raises(ResultUnavailable, match="private address"):
            await client.download(url, tmp_path / "b.mp4")
        assert dns.lookups == ["media.rebind.test"] * 2
        assert len(file_server.hits) == 1
        assert not (tmp_path / "b.mp4").exists()
    finally:
        await client.close()


@pytest.mark.parametrize("host", [
    "10.0.0.1", "127.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "[2002:7f00:1::]",
    "[64:ff9b::a00:1]", "169.254.169.254", "2130706433", "127.1",
])
async def test_literal_private_result_hosts_are_refused_without_a_lookup(
        tmp_path, file_server, dns, host):
    client = ChannelClient(channel())
    try:
        with pytest.raises(ResultUnavailable, match="private address"):
            await client.download(f"http://{host}:{file_server.port}/video.mp4",
                                  tmp_path / "v.mp4")
    finally:
        await client.close()
    assert dns.lookups == [] and file_server.hits == []


async def test_own_origin_and_allowed_private_results_skip_the_guard(
        tmp_path, file_server, dns):
    own = ChannelClient(channel(f"http://127.0.0.1:{file_server.port}/v1"))
    trusting = ChannelClient(channel(allow_private_result_urls=True))
    url = f"http://127.0.0.1:{file_server.port}/video.mp4"
    try:
        assert await own.download(url, tmp_path / "own.mp4") == len(VIDEO)
        assert await trusting.download(url, tmp_path / "trusting.mp4") == len(VIDEO)
    finally:
        await own.close()
        await trusting.close()
    assert len(file_server.hits) == 2 and dns.lookups == []


def test_pacer_bursts_one_second_and_paces_slow_channels():
    fast, slow = pacer(20), pacer(0.5)
    assert (fast.max_rate, fast.time_period) == (20, 1)
    assert (slow.max_rate, slow.time_period) == (1, 2)  # one request, then one per 2 s


async def test_channel_requests_are_paced_to_the_channel_rate(file_server):
    """30 polls at 20 per second: the first second's worth goes at once, the other 10 wait
    for the bucket, so the last arrives at least half a second after the first."""
    client = ChannelClient(channel(f"http://127.0.0.1:{file_server.port}/v1",
                                   max_requests_per_second=20))
    try:
        start = asyncio.get_running_loop().time()
        await asyncio.gather(*(client.request("GET", "/poll") for _ in range(30)))
    finally:
        await client.close()
    arrivals = sorted(file_server.arrivals)
    assert len(arrivals) == 30
    assert arrivals[-1] - start >= 0.45
    assert arrivals[20] - start >= 0.04  # the 21st waited for the bucket (1/20 s)
