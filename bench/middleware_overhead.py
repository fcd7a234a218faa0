"""What the request-id and metrics middleware cost a fast-path status read, in process.

    .venv/bin/python -m bench.middleware_overhead [--reads 20000] [--rounds 5]

Calls the ASGI app directly (no sockets, no HTTP parser): the fast path alone
(`Gateway.hot_routes`) against the whole `Gateway` (RequestIds and HttpMetrics around it),
alternating in rounds, and prints the best round of each and their ratio. The engine is off
so only the reads run.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from vidgate.app import create_app
from vidgate.config import Settings


async def measure(reads: int, rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        settings = Settings(data_dir=data, database_url=f"sqlite+aiosqlite:///{data / 'b.db'}",
                            secret=b"bench", run_engine=False, key_cache_seconds=3600)
        app = create_app(settings)
        async with app.lifespan():
            _, key = await app.services.db.create_key("bench")
            headers = [(b"host", b"bench"), (b"authorization", f"Bearer {key}".encode())]
            create = _scope("POST", "/v1/videos", [*headers, (b"content-type",
                                                               b"application/json")])
            body = b'{"model": "sora-2", "prompt": "bench", "size": "720x720"}'
            sent: list[dict] = []
            await app(create, _receive(body), _collect(sent))  # FastAPI: fills the key cache
            task_id = __import__("orjson").loads(sent[-1]["body"])["id"]
            read = _scope("GET", f"/v1/videos/{task_id}", headers)

            async def loop(target) -> float:
                receive, send = _receive(b""), _discard
                started = time.perf_counter()
                for _ in range(reads):
                    await target(dict(read), receive, send)
                return time.perf_counter() - started

            best = {"fast path alone": float("inf"), "with middleware": float("inf")}
            await loop(app)  # warm-up: label children bound, caches filled
            for _ in range(rounds):
                best["fast path alone"] = min(best["fast path alone"],
                                              await loop(app.hot_routes))
                best["with middleware"] = min(best["with middleware"], await loop(app))
            return best


def _scope(method: str, path: str, headers: list) -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": b"", "root_path": "", "headers": headers,
            "server": ("bench", 80), "client": ("127.0.0.1", 1)}


def _receive(body: bytes):
    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}
    return receive


def _collect(into: list):
    async def send(message: dict) -> None:
        into.append(message)
    return send


async def _discard(_message: dict) -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reads", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    best = asyncio.run(measure(args.reads, args.rounds))
    for name, seconds in best.items():
        print(f"{name}: {seconds:.3f} s for {args.reads} reads "
              f"({seconds / args.reads * 1e6:.1f} us each)")
    print(f"ratio: {best['with middleware'] / best['fast path alone']:.3f}")


if __name__ == "__main__":
    main()
