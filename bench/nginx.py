"""nginx as the fast fake upstream (OpenAI Videos protocol, fixed JSON) and as the file server
that is the practical limit for downloads.

Routes (every request is written to the access log, so a phase can count upstream hits):

  POST /v1/videos                    -> a queued OpenAI video object with a fresh id
  GET  /v1/videos/{id}               -> that id, in progress (a real job takes minutes: the
                                        creates measured must not each trigger a mirror)
  /done/v1/...                       -> the same, but GET says completed and /content is the
                                        small sample MP4 (?variant=thumbnail|spritesheet give
                                        its WebP / JPEG previews)
  /big/v1/...                        -> completed too, and /content is the big MP4
  GET  /static/big.mp4               -> the big MP4 straight from disk (the download baseline)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vidgate.media.files import SPRITESHEET_NAME, THUMBNAIL_NAME, VIDEO_NAME

from . import procs

QUEUED = ('{"id":"video_$request_id","object":"video","model":"sora-2","status":"queued",'
          '"progress":0,"created_at":1760000000,"completed_at":null,"expires_at":null,'
          '"prompt":"bench","size":"1280x720","seconds":"4","quality":"standard",'
          '"remixed_from_video_id":null,"error":null}')
COMPLETED = ('{"id":"$vid","object":"video","model":"sora-2","status":"completed",'
             '"progress":100,"created_at":1760000000,"completed_at":1760000060,'
             '"expires_at":1760003600,"prompt":"bench","size":"1280x720","seconds":"4",'
             '"quality":"standard","remixed_from_video_id":null,"error":null}')
IN_PROGRESS = ('{"id":"$vid","object":"video","model":"sora-2","status":"in_progress",'
               '"progress":40,"created_at":1760000000,"completed_at":null,'
               '"expires_at":null,"prompt":"bench","size":"1280x720","seconds":"4",'
               '"quality":"standard","remixed_from_video_id":null,"error":null}')


def _variant_map(name: str, video: str) -> str:
    """`$name` = the file for `?variant=` (a map, as `if` inside a location drops try_files)."""
    return f"""
    map $arg_variant ${name} {{
        default {video};
        thumbnail {THUMBNAIL_NAME};
        spritesheet {SPRITESHEET_NAME};
    }}"""


def _protocol(prefix: str, status: str, media_dir: Path, file_var: str) -> str:
    """The OpenAI Videos routes under `prefix`: GET answers `status` (a JSON template),
    /content serves `media_dir/${file_var}`."""
    return f"""
        location = {prefix}/v1/videos {{
            default_type application/json;
            return 200 '{QUEUED}';
        }}
        location ~ ^{prefix}/v1/videos/(?<vid>[^/]+)$ {{
            default_type application/json;
            return 200 '{status}';
        }}
        location ~ ^{prefix}/v1/videos/[^/]+/content$ {{
            root {media_dir};
            try_files /${file_var} =404;
        }}"""


def config(run_dir: Path, port: int, media_dir: Path, big_name: str) -> str:
    user = "user root;" if os.geteuid() == 0 else ""
    return f"""{user}
worker_processes 1;
pid {run_dir}/nginx.pid;
error_log {run_dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    log_format bench '$request_method $uri $status $body_bytes_sent';
    access_log {run_dir}/nginx-access.log bench;
    client_body_temp_path {run_dir}/body;
    proxy_temp_path {run_dir}/proxy;
    fastcgi_temp_path {run_dir}/fastcgi;
    uwsgi_temp_path {run_dir}/uwsgi;
    scgi_temp_path {run_dir}/scgi;
    client_max_body_size 64m;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    sendfile on;
    tcp_nopush on;
    types {{ video/mp4 mp4; image/webp webp; image/jpeg jpg; }}
    {_variant_map("small_file", VIDEO_NAME)}
    {_variant_map("big_file", big_name)}
    server {{
        listen 127.0.0.1:{port};
        {_protocol("", IN_PROGRESS, media_dir, "small_file")}
        {_protocol("/done", COMPLETED, media_dir, "small_file")}
        {_protocol("/big", COMPLETED, media_dir, "big_file")}
        location = /static/big.mp4 {{
            alias {media_dir}/{big_name};
        }}
    }}
}}
"""


@dataclass
class Nginx:
    proc: procs.Proc
    port: int
    access_log: Path
    media_dir: Path
    big_name: str

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hits(self) -> int:
        """Requests logged so far (nginx writes each line as the request ends)."""
        try:
            with open(self.access_log, "rb") as log:
                return sum(1 for _ in log)
        except FileNotFoundError:
            return 0

    def stop(self) -> None:
        self.proc.stop()


def start(binary: str, run_dir: Path, media_dir: Path, big_name: str, core: int) -> Nginx:
    run_dir.mkdir(parents=True, exist_ok=True)
    port = procs.free_port()
    conf = run_dir / "nginx.conf"
    conf.write_text(config(run_dir, port, media_dir, big_name))
    proc = procs.start("nginx", [binary, "-p", str(run_dir), "-c", str(conf),
                                 "-g", "daemon off; master_process on;"],
                       core=core, log_dir=run_dir)
    nginx = Nginx(proc, port, run_dir / "nginx-access.log", media_dir, big_name)
    procs.wait_http(proc, f"{nginx.base}/v1/videos/ready", timeout=15)
    return nginx
