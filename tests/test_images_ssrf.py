"""The reference-image SSRF guard, through `vidgate.images` and through the HTTP API.

Safety net for the whole module: a Python audit hook refuses (and records) every socket
connect to an address outside loopback and every DNS lookup of a real name, so a guard that
let a request through would fail here loudly instead of sending traffic anywhere. The only
server used is a real one on 127.0.0.1; "internal" names are answered by a stand-in resolver.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import ipaddress
import re
import socket
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import av
import httpx
import pytest
from aiohttp import ThreadedResolver
from aiohttp.abc import AbstractResolver, ResolveResult
from PIL import Image

from support import await_for
from vidgate import images, netguard
from vidgate.app import create_app, image_policy
from vidgate.catalog import ImageInput
from vidgate.config import Settings, load_settings
from vidgate.errors import ApiError
from vidgate.images import ImagePolicy, load_reference

LOOPBACK_ONLY = ImagePolicy(allowed_networks=("127.0.0.1/32",))
FAKE_DNS = {
    "internal.example.test": ["10.1.2.3"],
    "metadata.example.test": ["169.254.169.254"],
    "v6loop.example.test": ["::1"],
    "mixed.example.test": ["93.184.216.34", "127.0.0.1"],  # one bad answer refuses the name
    "images.example.test": ["127.0.0.1"],
}


def png(color=(250, 30, 30), size=(64, 36)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


RED_PNG = png()
RED_DATA_URL = "data:image/png;base64," + base64.b64encode(RED_PNG).decode()


# ---- the network guard ---------------------------------------------------------------------

class NetworkForbidden(Exception):
    """Not an OSError on purpose: nothing in the code under test may swallow it."""


@dataclass
class Guard:
    active: bool = False
    connects: list = field(default_factory=list)
    refused: list = field(default_factory=list)


GUARD = Guard()
_LITERAL = re.compile(r"[0-9a-fA-FxX.:%]+")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _audit(event: str, args: tuple) -> None:
    if not GUARD.active:
        return
    if event == "socket.connect" and isinstance(args[1], tuple):
        host = str(args[1][0])
        GUARD.connects.append(host)
        if not _is_loopback(host):
            GUARD.refused.append(("connect", host))
            raise NetworkForbidden(f"test tried to connect to {host}")
    elif event == "socket.getaddrinfo":
        host = args[0].decode() if isinstance(args[0], bytes) else str(args[0] or "")
        if host != "localhost" and not _LITERAL.fullmatch(host):
            GUARD.refused.append(("dns", host))
            raise NetworkForbidden(f"test tried to resolve {host} through DNS")


if not getattr(sys, "_vidgate_ssrf_hook", False):
    sys.addaudithook(_audit)
    sys._vidgate_ssrf_hook = True


@pytest.fixture(autouse=True)
def network_guard() -> Iterator[Guard]:
    GUARD.connects.clear()
    GUARD.refused.clear()
    GUARD.active = True
    try:
        yield GUARD
    finally:
        GUARD.active = False
    assert GUARD.refused == [], "a non-loopback connect or DNS lookup was attempted"


class FakeResolver(AbstractResolver):
    """Answers the FAKE_DNS names; every other name goes to the real resolver underneath
    (which the audit hook lets resolve only `localhost` and numeric forms)."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.lookups: list[str] = []
        self.real = ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.lookups.append(host)
        if host not in self.table:
            return await self.real.resolve(host, port, family)
        return [answer(address, host, port) for address in self.table[host]]

    async def close(self) -> None:
        await self.real.close()


def answer(address: str, host: str, port: int) -> ResolveResult:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return {"hostname": host, "host": address, "port": port, "family": family,
            "proto": 0, "flags": socket.AI_NUMERICHOST}


@pytest.fixture(autouse=True)
def fake_dns(monkeypatch) -> None:
    monkeypatch.setattr(netguard, "system_resolver", lambda: FakeResolver(FAKE_DNS))


# ---- a real image server on 127.0.0.1 ------------------------------------------------------

class ImageServer:
    def __init__(self) -> None:
        self.hits: list[tuple[str, str]] = []
        self.accept_encodings: list[str | None] = []
        self.release = threading.Event()  # lets a stalled response finish at teardown
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                # unquoted: aiohttp percent-encodes '[' and ']' in a query, as RFC 3986 asks
                server.hits.append((unquote(self.path), self.headers.get("Host", "")))
                server.accept_encodings.append(self.headers.get("Accept-Encoding"))
                server.route(self)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def route(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        query = parse_qs(parts.query)
        if parts.path == "/red.png":
            self._send(h, 200, RED_PNG)
        elif parts.path == "/redirect":
            h.send_response(302)
            h.send_header("Location", query["to"][0])
            h.send_header("Content-Length", "0")
            h.end_headers()
        elif parts.path == "/big":
            size = int(query["n"][0])
            h.send_response(200)
            if "nolength" not in query:
                h.send_header("Content-Length", str(size))
            h.end_headers()
            with contextlib.suppress(OSError):
                h.wfile.write(b"\0" * size)
        elif parts.path == "/gzip-bomb":  # sent compressed even though identity was asked
            body = gzip.compress(b"\0" * 5_000_000)
            h.send_response(200)
            h.send_header("Content-Encoding", "gzip")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
        elif parts.path == "/stall":
            h.send_response(200)
            h.send_header("Content-Length", "100")
            h.end_headers()
            h.wfile.flush()
            self.release.wait(30)
        else:
            self._send(h, 404, b"no")

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        h.send_response(status)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def image_server() -> Iterator[ImageServer]:
    server = ImageServer()
    yield server
    server.close()


DEFAULT_POLICY = ImagePolicy()


async def refused(url: str, policy: ImagePolicy = DEFAULT_POLICY, param: str = "image_url"):
    with pytest.raises(ApiError) as caught:
        await load_reference(ImageInput(url=url, param=param), policy)
    error = caught.value
    assert (error.status, error.code, error.param) == (400, "invalid_image", param)
    return error


# ---- images.py directly: refusals ----------------------------------------------------------

@pytest.mark.parametrize("url", [
    "http://127.0.0.1:{port}/red.png",
    "http://localhost:{port}/red.png",
    "http://127.1:{port}/red.png",
    "http://2130706433:{port}/red.png",          # decimal form of 127.0.0.1
    "http://0x7f000001:{port}/red.png",          # hexadecimal form
    "http://0177.0.0.1:{port}/red.png",          # octal form
    "http://0.0.0.0:{port}/red.png",
    "http://[::1]:{port}/red.png",
    "http://[::ffff:127.0.0.1]:{port}/red.png",  # IPv4-mapped IPv6
    "http://[::ffff:7f00:1]:{port}/red.png",
    "http://[2002:7f00:1::]:{port}/red.png",     # 6to4 wrapping 127.0.0.1
    "http://[64:ff9b::a00:1]/x.png",             # NAT64 wrapping 10.0.0.1
    "http://10.0.0.1/x.png",
    "http://10.255.0.7:8080/x.png",
    "http://192.168.1.1/x.png",
    "http://172.16.0.1/x.png",
    "http://100.64.0.1/x.png",                   # carrier-grade NAT
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:a9fe:a9fe]/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[fe80::1]/x.png",
    "http://[fc00::1]/x.png",
    "http://internal.example.test/x.png",        # DNS names resolving to private addresses
    "http://metadata.example.test/latest/meta-data/",
    "http://v6loop.example.test/x.png",
    "http://mixed.example.test/x.png",
    "https://10.0.0.1/x.png",
])
async def test_private_and_special_addresses_are_refused_before_connecting(
    url, image_server, network_guard
):
    await refused(url.format(port=image_server.port))
    assert network_guard.connects == []
    assert image_server.hits == []


@pytest.mark.parametrize("url", [
    "ftp://127.0.0.1/x.png", "file:///etc/passwd", "gopher://127.0.0.1:70/", "http:///x.png",
    "http://[::1/x.png", "javascript:alert(1)", "//10.0.0.1/x.png",
])
async def test_malformed_and_non_http_urls_are_refused(url, network_guard):
    await refused(url, LOOPBACK_ONLY)
    assert network_guard.connects == []


async def test_allowed_networks_do_not_widen_to_other_private_ranges(image_server):
    await refused("http://10.0.0.1/x.png", LOOPBACK_ONLY)
    await refused("http://169.254.169.254/", ImagePolicy(allow_private=True))  # metadata stays
    await refused("http://0.0.0.0:1/", ImagePolicy(allow_private=True))


@pytest.mark.parametrize("target", [
    "http://10.0.0.1/x.png",
    "http://169.254.169.254/latest/meta-data/iam/",
    "http://internal.example.test/x.png",
    "http://metadata.example.test/",
    "http://[::1]:{port}/red.png",
    "http://[fe80::1]/",
    "file:///etc/passwd",
])
async def test_redirect_to_a_forbidden_target_is_refused_without_connecting(
    target, image_server, network_guard
):
    """The first hop is allowed by policy (127.0.0.1/32); the hop it redirects to is not."""
    hop = target.format(port=image_server.port)
    await refused(f"{image_server.url}/redirect?to={hop}", LOOPBACK_ONLY)
    assert [path for path, _ in image_server.hits] == [f"/redirect?to={hop}"]
    assert network_guard.connects == ["127.0.0.1"]  # the first hop only


async def test_redirect_chain_is_rechecked_on_every_hop(image_server, network_guard):
    inner = "/redirect?to=http://10.0.0.1/x.png"
    await refused(f"{image_server.url}/redirect?to={inner}", LOOPBACK_ONLY)
    assert len(image_server.hits) == 2
    assert set(network_guard.connects) == {"127.0.0.1"}


async def test_redirect_loop_stops(image_server):
    error = await refused(f"{image_server.url}/redirect?to=/redirect?to=/redirect?to=/redirect"
                          "?to=/redirect?to=/red.png", LOOPBACK_ONLY)
    assert "too many" in error.message
    assert len(image_server.hits) == images.MAX_REDIRECTS + 1


async def test_oversized_and_failing_responses_are_refused(image_server):
    policy = ImagePolicy(max_bytes=1000, allowed_networks=("127.0.0.1/32",))
    for path in ("/big?n=5000", "/big?n=5000&nolength=1"):
        error = await refused(image_server.url + path, policy)
        assert "larger than 1000 bytes" in error.message
    error = await refused(image_server.url + "/missing.png", policy)
    assert "HTTP 404" in error.message


async def test_compressed_body_is_never_inflated(image_server):
    policy = ImagePolicy(max_bytes=1_000_000, allowed_networks=("127.0.0.1/32",))
    error = await refused(image_server.url + "/gzip-bomb", policy)
    assert "could not be decoded" in error.message  # the raw 5 kB, not 5 MB of zeros
    assert image_server.accept_encodings == ["identity"]


async def test_slow_server_hits_the_deadline(image_server):
    policy = ImagePolicy(timeout_seconds=0.5, allowed_networks=("127.0.0.1/32",))
    error = await refused(image_server.url + "/stall", policy)
    assert "could not be fetched" in error.message or "longer than" in error.message


async def test_unreachable_host_is_refused(image_server):
    image_server.close()  # nothing listens on the port any more
    await refused(image_server.url + "/red.png", LOOPBACK_ONLY)


# ---- images.py directly: what works --------------------------------------------------------

async def test_data_url_works_without_any_network(network_guard):
    assert await load_reference(ImageInput(url=RED_DATA_URL), ImagePolicy()) == RED_PNG
    urlsafe = "data:image/png;base64," + base64.urlsafe_b64encode(RED_PNG).decode().rstrip("=")
    assert await load_reference(ImageInput(url=urlsafe), ImagePolicy()) == RED_PNG
    assert network_guard.connects == []


@pytest.mark.parametrize("policy", [
    ImagePolicy(allow_private=True),
    LOOPBACK_ONLY,
    ImagePolicy(allowed_networks=("127.0.0.0/8", "::1/128")),
])
async def test_loopback_works_when_the_operator_allows_it(policy, image_server):
    data = await load_reference(ImageInput(url=image_server.url + "/red.png"), policy)
    assert data == RED_PNG
    redirected = f"{image_server.url}/redirect?to=/red.png"  # an allowed hop to an allowed hop
    assert await load_reference(ImageInput(url=redirected), policy) == RED_PNG


async def test_connection_goes_to_the_checked_address(image_server, network_guard):
    """A name is resolved once, checked, and that very address is dialled (no rebinding):
    `images.example.test` only exists in the stand-in resolver, and the server still sees
    the name in Host."""
    url = f"http://images.example.test:{image_server.port}/red.png"
    assert await load_reference(ImageInput(url=url), LOOPBACK_ONLY) == RED_PNG
    assert image_server.hits == [("/red.png", f"images.example.test:{image_server.port}")]
    assert network_guard.connects == ["127.0.0.1"]


async def test_a_name_that_rebinds_to_a_forbidden_address_is_refused(
    image_server, network_guard, monkeypatch
):
    """Each fetch resolves once and dials what it checked: the first answer (127.0.0.1,
    allowed) is fetched from, the next lookup's answer (127.0.0.2, not allowed) is refused
    before any socket opens."""
    answers = iter(["127.0.0.1", "127.0.0.2"])
    table = {}
    resolver = FakeResolver(table)

    async def rebinding(host, port=0, family=socket.AF_INET):
        table["rebind.example.test"] = [next(answers)]
        return await FakeResolver.resolve(resolver, host, port, family)

    resolver.resolve = rebinding
    monkeypatch.setattr(netguard, "system_resolver", lambda: resolver)
    url = f"http://rebind.example.test:{image_server.port}/red.png"
    assert await load_reference(ImageInput(url=url), LOOPBACK_ONLY) == RED_PNG
    error = await refused(url, LOOPBACK_ONLY)
    assert "not an allowed address" in error.message
    assert resolver.lookups == ["rebind.example.test"] * 2
    assert network_guard.connects == ["127.0.0.1"] and len(image_server.hits) == 1


def test_bad_allowed_network_fails_at_startup():
    with pytest.raises(ValueError):
        ImagePolicy(allowed_networks=("10.0.0.0/33",))


# ---- configuration: env -> Settings -> ImagePolicy -----------------------------------------

def test_env_configures_the_image_policy(monkeypatch, tmp_path):
    monkeypatch.setenv("VIDGATE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VIDGATE_IMAGE_ALLOW_PRIVATE", "true")
    monkeypatch.setenv("VIDGATE_IMAGE_ALLOWED_NETWORKS", "127.0.0.1/32, 10.0.0.0/8,,")
    monkeypatch.setenv("VIDGATE_IMAGE_FETCH_TIMEOUT", "2.5")
    monkeypatch.setenv("VIDGATE_MAX_UPLOAD_BYTES", "12345")
    settings = load_settings()
    assert settings.image_allow_private is True
    assert settings.image_allowed_networks == ("127.0.0.1/32", "10.0.0.0/8")
    assert settings.image_fetch_timeout == 2.5
    policy = image_policy(settings)
    assert (policy.allow_private, policy.allowed_networks, policy.timeout_seconds,
            policy.max_bytes) == (True, ("127.0.0.1/32", "10.0.0.0/8"), 2.5, 12345)


def test_env_defaults_refuse_private(monkeypatch, tmp_path):
    monkeypatch.setenv("VIDGATE_DATA_DIR", str(tmp_path))
    for name in ("ALLOW_PRIVATE", "ALLOWED_NETWORKS", "FETCH_TIMEOUT"):
        monkeypatch.delenv(f"VIDGATE_IMAGE_{name}", raising=False)
    policy = image_policy(load_settings())
    assert (policy.allow_private, policy.allowed_networks, policy.timeout_seconds) == (
        False, (), 10.0)


@pytest.mark.parametrize(("name", "value"), [
    ("VIDGATE_IMAGE_ALLOW_PRIVATE", "maybe"),
    ("VIDGATE_IMAGE_ALLOWED_NETWORKS", "10.0.0.0/8,not-a-net"),
    ("VIDGATE_IMAGE_FETCH_TIMEOUT", "soon"),
])
def test_bad_env_stops_startup(monkeypatch, tmp_path, name, value):
    monkeypatch.setenv("VIDGATE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit, match=name):
        load_settings()


# ---- through the HTTP API ------------------------------------------------------------------

@dataclass
class Api:
    client: httpx.AsyncClient
    headers: dict
    services: object


@contextlib.asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[Api]:
    app = create_app(settings)
    async with app.lifespan():
        _, key = await app.services.db.create_key("ssrf")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield Api(c, {"Authorization": f"Bearer {key}"}, app.services)


# family route, image field, how to read the task back
FAMILIES = [
    ("/v1/videos", "image_url", "/v1/videos/{id}"),
    ("/v1/video/generations", "image", "/v1/video/generations/{id}"),
    ("/v1/video/create", "images", "/v1/video/query?task_id={id}"),
]


def image_body(field_name: str, url: str) -> dict:
    value = [url] if field_name == "images" else url
    return {"model": "sora-2", "prompt": "animate this", "size": "720x720", field_name: value}


async def count_tasks(services) -> int:
    import sqlalchemy as sa

    from vidgate.store.schema import tasks

    async with services.db.engine.connect() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(tasks))).scalar()


def blob_files(services) -> list[Path]:
    root = services.blobs.root
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.mark.parametrize(("path", "field_name", "_"), FAMILIES)
@pytest.mark.parametrize("target", [
    "{server}/red.png",
    "http://[::1]:{port}/red.png",
    "http://10.0.0.1/red.png",
    "http://169.254.169.254/latest/meta-data/",
    "http://internal.example.test/red.png",
])
async def test_api_refuses_private_image_urls_by_default(
    settings, image_server, network_guard, path, field_name, _, target
):
    url = target.format(server=image_server.url, port=image_server.port)
    async with running_app(settings) as api:
        r = await api.client.post(path, json=image_body(field_name, url), headers=api.headers)
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert (error["code"], error["param"]) == ("invalid_image", field_name)
        assert await count_tasks(api.services) == 0 and blob_files(api.services) == []
    assert image_server.hits == []
    assert set(network_guard.connects) <= {"127.0.0.1", "::1"}  # the test database, at most


@pytest.mark.parametrize(("path", "field_name", "_"), FAMILIES)
async def test_api_refuses_a_redirect_out_of_the_allowed_network(
    settings, image_server, path, field_name, _
):
    settings.image_allowed_networks = ("127.0.0.1/32",)
    url = f"{image_server.url}/redirect?to=http://169.254.169.254/latest/meta-data/"
    async with running_app(settings) as api:
        r = await api.client.post(path, json=image_body(field_name, url), headers=api.headers)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == field_name
        assert await count_tasks(api.services) == 0 and blob_files(api.services) == []
    assert len(image_server.hits) == 1


@pytest.mark.parametrize(("path", "field_name", "_"), FAMILIES)
@pytest.mark.parametrize(("target", "message"), [
    ("/big?n=5000", "larger than 1000 bytes"),
    ("/missing.png", "HTTP 404"),
    ("closed", "could not be fetched"),
])
async def test_api_refuses_huge_missing_or_unreachable_images(
    settings, image_server, path, field_name, _, target, message
):
    settings.image_allowed_networks = ("127.0.0.1/32",)
    settings.max_upload_bytes = 1000
    url = image_server.url + target
    if target == "closed":
        image_server.close()
        url = image_server.url + "/red.png"
    async with running_app(settings) as api:
        r = await api.client.post(path, json=image_body(field_name, url), headers=api.headers)
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert (error["code"], error["param"]) == ("invalid_image", field_name)
        assert message in error["message"]
        assert await count_tasks(api.services) == 0 and blob_files(api.services) == []


def first_frame_rgb(video: bytes, tmp_path: Path, name: str) -> tuple[int, int, int]:
    path = tmp_path / name
    path.write_bytes(video)
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0)).to_image()
    return frame.resize((32, 32)).getpixel((16, 16))


async def wait_completed(api: Api, read_path: str) -> dict:
    async def done():
        task = (await api.client.get(read_path, headers=api.headers)).json()
        return task if task["status"] in ("completed", "failed") else None

    task = await await_for(done, timeout=120, interval=0.1, what=f"{read_path} to finish")
    assert task["status"] == "completed", task
    return task


@pytest.mark.parametrize("source", ["loopback", "data"])
async def test_image_to_video_on_every_family(settings, image_server, tmp_path, source):
    """The operator allows loopback (Settings -> ImagePolicy): a URL on 127.0.0.1 and a data:
    URL both become the first frame of the video, on all three families."""
    settings.image_allowed_networks = ("127.0.0.1/32",)
    url = image_server.url + "/red.png" if source == "loopback" else RED_DATA_URL
    async with running_app(settings) as api:
        created = []
        for path, field_name, read in FAMILIES:
            r = await api.client.post(path, json=image_body(field_name, url),
                                      headers=api.headers)
            assert r.status_code == 200, r.text
            created.append(read.format(id=r.json()["id"]))
        assert await count_tasks(api.services) == 3
        for i, read in enumerate(created):
            task = await wait_completed(api, read)
            video = (await api.client.get(task["video_url"])).content
            r_, g, b = first_frame_rgb(video, tmp_path, f"{i}.mp4")
            assert r_ > 180 and g < 90 and b < 90, (read, (r_, g, b))
    expected_hits = 3 if source == "loopback" else 0
    assert len(image_server.hits) == expected_hits


async def test_allow_private_setting_lets_loopback_through(settings, image_server):
    settings.image_allow_private = True
    async with running_app(settings) as api:
        body = image_body("image", image_server.url + "/red.png")
        r = await api.client.post("/v1/video/generations", json=body, headers=api.headers)
        assert r.status_code == 200, r.text
        task = await api.services.db.get_task(r.json()["id"])
        assert task.reference_key is not None
        assert await api.services.blobs.get_bytes(task.reference_key) == RED_PNG
        r = await api.client.post("/v1/video/generations",
                                  json=image_body("image", "http://169.254.169.254/"),
                                  headers=api.headers)
        assert r.status_code == 400  # metadata addresses stay refused
