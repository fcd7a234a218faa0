"""The CLI contract other tooling relies on: serve, keys create/list/revoke, migrate."""

from __future__ import annotations

import re
import subprocess

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
