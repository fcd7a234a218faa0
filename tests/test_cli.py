"""The CLI contract other tooling relies on: serve, keys create/list/revoke, migrate; its help,
--version, and which data folder it uses."""

from __future__ import annotations

import os
import re
import subprocess
from importlib.metadata import version

import httpx

from support import free_port, fresh_database_url, server_env, start_server, vidgate_cmd, wait_for


def run(env, *args, check=True):
    return subprocess.run(vidgate_cmd(*args), env=env, capture_output=True, text=True,
                          check=check, timeout=120)


def test_keys_create_list_revoke_and_migrate(tmp_path):
    url, cleanup = fresh_database_url(tmp_path)
    env = server_env(tmp_path / "data", url)
    try:
        assert "up to date" in run(env, "migrate").stdout
        assert "up to date" in run(env, "migrate").stdout  # idempotent
        out = run(env, "keys", "create", "--name", "ci bot").stdout
        key = out.strip().splitlines()[-1]
        assert re.fullmatch(r"sk-vg-[A-Za-z0-9_-]{40,}", key), out
        listed = run(env, "keys", "list").stdout
        assert "ci bot" in listed and key[:12] in listed and "active" in listed
        assert key not in listed  # only a prefix is ever shown

        server = start_server(env, key=key)
        try:
            ok = httpx.get(server.api + "/videos", headers=server.headers())
            assert ok.status_code == 200
            key_id = re.search(r"(key_[0-9a-f]+)", listed).group(1)
            assert run(env, "keys", "revoke", key_id).stdout.strip() == "revoked"
            # another process revoked it: the server trusts a seen key for at most
            # VIDGATE_KEY_CACHE_SECONDS (2 s) before it looks again
            denied = wait_for(lambda: (r := httpx.get(server.api + "/videos",
                                                      headers=server.headers()))
                              .status_code == 401 and r, timeout=10, what="revocation")
            assert "revoked" in denied.json()["error"]["message"]
            again = run(env, "keys", "revoke", key, check=False)
            assert again.returncode == 1 and "no such active key" in again.stderr
            other = run(env, "keys", "create").stdout.strip().splitlines()[-1]
            assert run(env, "keys", "revoke", other).stdout.strip() == "revoked"  # by value
            assert "revoked" in run(env, "keys", "list").stdout
        finally:
            server.stop()
    finally:
        cleanup()


def test_first_serve_creates_a_key_and_prints_a_curl(tmp_path):
    url, cleanup = fresh_database_url(tmp_path)
    env = server_env(tmp_path / "data", url)
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(vidgate_cmd("serve", "--port", str(port)), env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        text = wait_for(lambda: (t := log.read_text()) and "Application startup complete" in t
                        and t, timeout=60, what="serve to start")
        key = re.search(r"^\s+(sk-vg-\S+)\s*$", text, re.M).group(1)
        assert f"http://127.0.0.1:{port}/v1/video/generations" in text
        assert f"Authorization: Bearer {key}" in text
        # the banner shows the whole round trip: create, poll, download
        assert f"curl http://127.0.0.1:{port}/v1/video/generations/TASK_ID" in text
        assert 'curl -o garden.mp4 "URL"' in text
        assert f"VIDGATE_API_KEY={key} vidgate generate --base-url http://127.0.0.1:{port}" \
            in text
        assert re.search(rf"^vidgate: using data folder {tmp_path / 'data'}, database .*\(new\)$",
                         text, re.M)
        r = httpx.get(f"http://127.0.0.1:{port}/v1/videos",
                      headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200
    finally:
        proc.terminate()
        proc.wait(20)
    # a second start finds the key and prints none
    log2 = tmp_path / "serve2.log"
    with open(log2, "wb") as out:
        proc = subprocess.Popen(vidgate_cmd("serve", "--port", str(port)), env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        text = wait_for(lambda: (t := log2.read_text()) and "Application startup complete" in t
                        and t, timeout=60, what="second serve to start")
        assert "sk-vg-" not in text
    finally:
        proc.terminate()
        proc.wait(20)
        cleanup()


def test_version_and_help_without_type_tags(tmp_path):
    env = dict(os.environ, COLUMNS="120")
    shown = run(env, "--version").stdout.strip()
    assert shown == f"vidgate {version('vidgate')}"
    for args in ([], ["serve"], ["keys", "create"], ["keys", "show"], ["generate"],
                 ["videos", "download"]):
        text = run(env, *args, "--help").stdout
        assert "--help" in text
        assert not re.search(r"<(bool|str|int|float|path)>", text), (args, text)
    generate = run(env, "generate", "--help").stdout
    assert re.search(r"--size\s+WxH", generate) and re.search(r"--image\s+PATH_OR_URL", generate)


def test_read_only_commands_refuse_to_create_a_data_folder(tmp_path):
    env = dict(os.environ)
    for name in ("VIDGATE_DATA_DIR", "VIDGATE_DATABASE_URL", "VIDGATE_CONFIG"):
        env.pop(name, None)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for args in (["keys", "list"], ["keys", "show", "key_0"], ["usage"], ["ledger"],
                 ["keys", "revoke", "key_0"], ["keys", "topup", "key_0", "1"]):
        done = subprocess.run(vidgate_cmd(*args), env=env, cwd=elsewhere,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1, (args, done.stderr)
        assert f"no vidgate database in {elsewhere / 'vidgate-data'} (nothing was created)" \
            in done.stderr, args
        assert "VIDGATE_DATA_DIR" in done.stderr
        assert list(elsewhere.iterdir()) == [], args

    # where the data is, every command says which folder it used
    url, cleanup = fresh_database_url(tmp_path)
    try:
        data = tmp_path / "data"
        env = server_env(data, url)
        created = run(env, "keys", "create", "--name", "x")
        assert re.search(rf"^vidgate: using data folder {data}, database "
                         rf"{re.escape(url.split(':')[0])}.*\(new\)$", created.stderr, re.M)
        listed = run(env, "keys", "list")
        assert "using data folder" in listed.stderr and "\tx" in listed.stdout
        assert "using data folder" in run(env, "usage").stderr
    finally:
        cleanup()
