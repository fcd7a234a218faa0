"""The web UI in a real browser (Playwright driving Debian's chromium) against a live server:
generate from the playground with progress over SSE, play, delete; the dashboard's usage.
Screenshots go to docs/screenshots/ (desktop and phone width) with
VIDGATE_UPDATE_SCREENSHOTS=1."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import httpx
import pytest

from support import fresh_database_url, server_env, start_server, wait_for

CHROMIUM = os.environ.get("VIDGATE_CHROMIUM", "/usr/bin/chromium")
# The docs' screenshots are refreshed only when asked (VIDGATE_UPDATE_SCREENSHOTS=1), so a
# test run leaves the checkout as it found it; otherwise they go to a scratch folder.
SHOTS = (Path(__file__).resolve().parent.parent / "docs" / "screenshots"
         if os.environ.get("VIDGATE_UPDATE_SCREENSHOTS") == "1"
         else Path(tempfile.mkdtemp(prefix="vidgate-shots-")))
ADMIN_TOKEN = "admin-secret"
PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 900}


def _browser_or_skip():
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        message = f"chromium not found at {CHROMIUM} (scripts/test installs it as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright
    return sync_playwright


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ui")
    url, cleanup = fresh_database_url(tmp)
    live = start_server(server_env(tmp / "data", url, VIDGATE_ADMIN_TOKEN=ADMIN_TOKEN))
    yield live
    live.stop()
    cleanup()


@pytest.fixture(scope="module")
def browser():
    sync_playwright = _browser_or_skip()
    with sync_playwright() as p:
        # --no-sandbox: tests run as root (CI), where chromium's sandbox refuses to start
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def every_control_labelled(page) -> bool:
    return page.evaluate("[...document.querySelectorAll('input, select, textarea')]"
                         ".every((e) => e.labels && e.labels.length > 0)")


def test_playground_generates_watches_plays_and_deletes(server, browser, tmp_path):
    SHOTS.mkdir(parents=True, exist_ok=True)
    from PIL import Image
    first_frame = tmp_path / "first-frame.png"
    Image.new("RGB", (1280, 720), (200, 40, 40)).save(first_frame)
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    requests: list[str] = []
    posts = []
    page.on("request", lambda r: requests.append(f"{r.method} {r.url}"))
    page.on("request", lambda r: posts.append(r) if r.method == "POST" else None)
    page.goto(server.url + "/")
    assert every_control_labelled(page)
    page.fill("#api-key", server.key)
    page.keyboard.press("Enter")  # the key form submits from the keyboard
    page.wait_for_selector("#model option[value='sora-2']", state="attached")
    page.select_option("#model", "sora-2")
    page.select_option("#size", "1280x720")
    page.select_option("#seconds", "8")
    page.fill("#prompt", "a lighthouse at dusk, waves rolling in")
    page.set_input_files("#image", str(first_frame))  # sent as multipart input_reference
    # every progress value the page shows, as it shows it
    page.evaluate("""() => {
        window.seen = [];
        new MutationObserver(() => window.seen.push(document.getElementById('progress').value))
            .observe(document.getElementById('progress-text'), {childList: true});
    }""")
    page.click("#create")
    page.wait_for_selector("#result-box:not([hidden])", timeout=120_000)
    # polled with evaluate(): wait_for_function's string predicates are eval(), which the
    # page's Content-Security-Policy forbids
    wait_for(lambda: page.evaluate("document.getElementById('result').readyState >= 2"),
             timeout=60, what="the video to be playable")
    seen = page.evaluate("window.seen")
    assert seen == sorted(seen) and seen[-1] == 100, seen
    assert any(0 < v < 100 for v in seen), seen  # progress rose step by step
    assert "Completed" in page.text_content("#progress-text")
    video_id = server_video_ids(server)[0]
    create_request = next(r for r in posts if r.url == f"{server.api}/videos")
    assert "multipart/form-data" in create_request.headers["content-type"]
    # the uploaded image reached the task as its reference (the sandbox starts from it)
    reference = Path(server.env["VIDGATE_DATA_DIR"]) / "blobs" / "tasks" / video_id / "reference"
    assert reference.read_bytes() == first_frame.read_bytes()
    assert any(r == f"GET {server.url}/v1/videos/{video_id}/events" for r in requests)
    assert not any(r == f"GET {server.url}/v1/videos/{video_id}" for r in requests)  # no polling
    assert not any(server.key in r for r in requests)  # the key never in a URL
    page.wait_for_selector(f"#history li[data-id='{video_id}'] img")
    page.screenshot(path=str(SHOTS / "playground-desktop.png"), full_page=True)

    phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    phone_page = phone.new_page()
    phone_page.goto(server.url + "/")
    phone_page.fill("#api-key", server.key)
    phone_page.click("#key-form button[type=submit]")
    phone_page.wait_for_selector(f"#history li[data-id='{video_id}'] img")
    assert no_horizontal_scroll(phone_page)
    phone_page.screenshot(path=str(SHOTS / "playground-phone.png"), full_page=True)
    phone.close()

    page.click(f"#history li[data-id='{video_id}'] button.danger")
    wait_for(lambda: "Video deleted." in page.text_content("#history-status"), timeout=30,
             what="the deletion")
    assert page.locator(f"#history li[data-id='{video_id}']").count() == 0
    gone = httpx.get(f"{server.api}/videos/{video_id}", headers=server.headers())
    assert gone.status_code == 404
    context.close()


def server_video_ids(server) -> list[str]:
    listed = httpx.get(f"{server.api}/videos", headers=server.headers()).json()
    return [v["id"] for v in listed["data"]]


def test_dashboard_shows_the_keys_usage(server, browser):
    # a finished task for the usage chart (the playground test deletes its own; usage stays)
    r = httpx.post(f"{server.api}/videos", headers=server.headers(),
                   json={"prompt": "usage", "model": "sora-2-pro", "size": "720x720"})
    assert r.status_code == 200, r.text
    page = browser.new_page(viewport=DESKTOP)
    page.goto(server.url + "/dashboard")
    assert every_control_labelled(page)
    page.fill("#admin-token", "wrong")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#login-status.error")
    page.fill("#admin-token", ADMIN_TOKEN)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#panels:not([hidden])")
    page.wait_for_selector("#keys-table tbody tr")
    key_name = page.text_content("#keys-table tbody tr td")
    assert key_name and key_name.strip() == "test"

    def usage_has(model: str) -> bool:
        page.click("#reload")
        page.wait_for_selector("#usage-chart svg, #usage-chart p")
        return page.locator(f"#usage-chart rect[data-model='{model}']").count() > 0

    wait_for(lambda: usage_has("sora-2-pro"), timeout=120, interval=0.5,
             what="the finished task in the usage chart")
    assert page.locator("#usage-chart rect[data-model='sora-2']").count() == 1
    rows = page.locator("#usage-table tbody tr").all_text_contents()
    assert any("test" in row and "sora-2" in row for row in rows), rows
    assert page.locator("#channels-table tbody tr").count() >= 1
    assert "closed" in page.text_content("#channels-table tbody")
    page.screenshot(path=str(SHOTS / "dashboard-desktop.png"), full_page=True)

    phone = browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    phone.goto(server.url + "/dashboard")
    phone.fill("#admin-token", ADMIN_TOKEN)
    phone.click("#login-form button[type=submit]")
    phone.wait_for_selector("#usage-chart svg rect")
    assert no_horizontal_scroll(phone)
    phone.screenshot(path=str(SHOTS / "dashboard-phone.png"), full_page=True)


def test_docs_render_with_no_other_origin(server, browser):
    page = browser.new_page(viewport=DESKTOP)
    elsewhere: list[str] = []

    def only_local(route):
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(server.url + "/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "vidgate" in page.text_content(".swagger-ui .info .title")
    page.get_by_text("/v1/videos/{video_id}/events").first.wait_for()
    assert elsewhere == []
    page.goto(server.url + "/redoc")
    page.get_by_text("/v1/video/query/events").first.wait_for(state="attached", timeout=30_000)
    # ReDoc's bundle links its "API docs by Redocly" footer logo from its CDN; the page works
    # without it (aborted here), and it is the only thing it asks of another origin
    assert set(elsewhere) <= {"https://cdn.redoc.ly/redoc/logo-mini.svg"}, elsewhere
