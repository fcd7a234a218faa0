"""Download phase: one big video through vidgate's `/content` and its signed `/files` URL,
and the same bytes straight from nginx's disk (the practical limit), with vidgate's RSS
sampled throughout ("memory flat").

vidgate gets the video the way it gets any result: a `sora-2-pro` task goes to the
`fake-big` channel, whose upstream `/content` is the padded MP4, and vidgate's engine
mirrors it into its blob store before the measurement starts.

The nginx baseline is a second nginx, pinned to the server core like the server under
test (the fake-upstream nginx shares the load core with wrk, which would handicap it)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from .. import client, nginx, wrk
from ..context import LOAD_CORE, SERVER_CORE, Context
from ..nginx import Nginx
from ..procs import RssSampler
from ..targets import Target

BIG_MODEL = "sora-2-pro"


def _measure(ctx: Context, base: str, req: wrk.Req, name: str) -> dict:
    result = wrk.run(ctx.tool("wrk"), base, [req], connections=ctx.sizes.download_connections,
                     seconds=ctx.sizes.seconds, core=LOAD_CORE,
                     work_dir=ctx.work / "wrk" / "downloads", name=name, timeout_s=60)
    return result.as_dict()


def run(ctx: Context, vidgate: Target, upstream: Nginx) -> dict:
    task = client.create(vidgate.base, vidgate.auth, model=BIG_MODEL)
    done = client.wait_completed(vidgate.base, vidgate.auth, [task["id"]], timeout=300)
    video = done[task["id"]]
    signed = urlsplit(video["url"])
    out: dict = {"bytes": ctx.sizes.big_bytes, "connections": ctx.sizes.download_connections}
    media_dir = Path(upstream.media_dir)
    files = nginx.start(ctx.tool("nginx"), ctx.work / "nginx-files", media_dir,
                        upstream.big_name, SERVER_CORE)
    try:
        out["nginx_static"] = _measure(ctx, files.base, wrk.Req("GET", "/static/big.mp4"),
                                       "nginx_static")
    finally:
        files.stop()
    with RssSampler(vidgate.proc.pid) as rss:
        out["vidgate_content"] = _measure(
            ctx, vidgate.base,
            wrk.Req("GET", f"/v1/videos/{task['id']}/content", vidgate.auth), "vidgate_content")
        out["vidgate_signed"] = _measure(
            ctx, vidgate.base, wrk.Req("GET", f"{signed.path}?{signed.query}"),
            "vidgate_signed")
    out["vidgate_rss"] = rss.summary()
    return out


def run_litellm(ctx: Context, litellm: Target) -> dict:
    """LiteLLM's `/content` for the same file (it fetches from the upstream per request)."""
    task = client.create(litellm.base, litellm.auth, model=BIG_MODEL)
    with RssSampler(litellm.proc.pid) as rss:
        result = _measure(ctx, litellm.base,
                          wrk.Req("GET", f"/v1/videos/{task['id']}/content", litellm.auth),
                          "litellm_content")
    return {"litellm_content": result, "litellm_rss": rss.summary()}
