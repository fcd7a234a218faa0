"""Run ASGI apps with uvicorn on 127.0.0.x ports, in one background thread and event loop."""

from __future__ import annotations

import asyncio
import socket
import threading

import uvicorn


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ServerThread:
    """Serves apps until stop(); `start` returns once every server accepts connections."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.servers: list[uvicorn.Server] = []
        self._runs: list = []
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                        name="fake-upstreams")
        self._thread.start()

    def serve(self, app, host: str = "127.0.0.1") -> str:
        port = free_port(host)
        config = uvicorn.Config(app, host=host, port=port, log_level="critical",
                                access_log=False, lifespan="off", timeout_keep_alive=30)
        server = uvicorn.Server(config)
        self.servers.append(server)
        self._runs.append(asyncio.run_coroutine_threadsafe(server.serve(), self.loop))
        started = threading.Event()

        async def wait_started() -> None:
            while not server.started:
                await asyncio.sleep(0.01)
            started.set()

        asyncio.run_coroutine_threadsafe(wait_started(), self.loop)
        if not started.wait(15):
            raise RuntimeError(f"fake server on {host}:{port} did not start")
        return f"http://{host}:{port}"

    def stop(self) -> None:
        for server in self.servers:
            server.should_exit = True
        for run in self._runs:
            try:
                run.result(10)
            except Exception:
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
