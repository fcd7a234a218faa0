"""A real HTTP endpoint on 127.0.0.1 that records webhook deliveries (or hangs, if told)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    def __init__(self, port: int = 0, hang: bool = False) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.hang = threading.Event()
        if hang:
            self.hang.set()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if receiver.hang.is_set():
                    receiver._release.wait(30)
                    return
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()},
                                          body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
