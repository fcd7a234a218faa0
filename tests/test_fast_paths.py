"""The fast paths (SQLite: sqlite_reads/sqlite_writes; PostgreSQL: pg_direct/pg_writes) give
SQLAlchemy's answers, batch creates without letting one refusal spoil the others, and keep
the database rules: a read on a dead connection runs once more, a write never does, and a
database out of reach is a 503. Runs on the suite's database (VIDGATE_TEST_DB)."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import pytest
import sqlalchemy as sa

from support import TEST_DB, await_for, make_task, needs_postgresql
from tcp_proxy import TcpProxy
from vidgate.app import create_app
from vidgate.config import Settings
from vidgate.store.characters import OF_OWNER, Character
from vidgate.store.database import Database, is_unreachable
from vidgate.store.keys import hash_key, key_from_mapping
from vidgate.store.ledger import InsufficientBalance
from vidgate.store.pg_direct import ConnectionLost, PgDirect, asyncpg_dsn
from vidgate.store.pg_writes import PgTaskWriter
from vidgate.store.schema import api_keys, tasks
from vidgate.store.sqlite_reads import SqliteRows
from vidgate.store.sqlite_writes import SqliteWriter
from vidgate.store.tasks import task_from_row


async def test_the_fast_path_reads_what_sqlalchemy_reads(db):
    fast = (PgDirect, PgTaskWriter) if TEST_DB == "postgresql" else (SqliteRows,
                                                                     SqliteWriter)
    assert (type(db._rows), type(db._writer)) == fast  # the path under test is taken
    key, secret = await db.create_key("fast", allowed_models=["sora-2", "sora-2-pro"],
                                      max_concurrent=3)
    plain = make_task(key.id)  # NULLs everywhere they may be, false booleans, empty JSON
    rich = make_task(key.id, params={"metadata": {"k": "v", "n": [1, 2.5, None]}, "x": True},
                 idempotency_key="idem-1", cancel_requested=True)
    for task in (plain, rich):
        assert (await db.tasks.insert(task, max_concurrent=3))[1]
    async with db.engine.begin() as conn:  # a finished task's floats and numbers
        await conn.execute(tasks.update().where(tasks.c.id == rich.id).values(
            delivered_seconds=4.04, completed_at=int(time.time()), video_bytes=2**40,
            progress=100, status="completed"))
    for task in (plain, rich):
        async with db.engine.connect() as conn:
            row = (await conn.execute(sa.select(tasks).where(tasks.c.id == task.id))).first()
        via_sqlalchemy = task_from_row(row)
        got = await db.get_task(task.id, key.id)
        assert got == via_sqlalchemy
        assert [type(getattr(got, f)) for f in vars(got)] == [
            type(getattr(via_sqlalchemy, f)) for f in vars(got)]
    got = await db.get_task(rich.id)
    assert got.params == {"metadata": {"k": "v", "n": [1, 2.5, None]}, "x": True}
    assert got.cancel_requested is True and got.delivered_seconds == 4.04
    assert (await db.get_task(plain.id)).cancel_requested is False
    assert (await db.get_task(plain.id)).completed_at is None
    assert await db.get_task(plain.id, "key_someone_else") is None
    assert await db.get_task("task_missing") is None
    async with db.engine.connect() as conn:
        row = (await conn.execute(sa.select(api_keys).where(api_keys.c.id == key.id))).first()
    assert await db.get_key(key.id) == key_from_mapping(row._mapping)
    assert await db.key_for_hash(hash_key(secret)) == key_from_mapping(row._mapping)
    assert (await db.get_key(key.id)).allowed_models == ["sora-2", "sora-2-pro"]
    assert (await db.get_key(key.id)).balance_micro is None
    assert await db.key_for_hash(hash_key("sk-vg-nobody")) is None
    for n, upstreams in enumerate(({}, {"kling": "up-1", "fal": "up-2"})):
        await db.characters.insert(Character(id=f"char_{n}", owner_id=key.id, name=f"c{n}",
                                             created_at=100 + n, clip_key=f"clips/{n}.mp4",
                                             upstreams=upstreams))
    found = await db.characters.of_owner(key.id)
    async with db.engine.connect() as conn:
        rows = (await conn.execute(OF_OWNER, {"owner_id": key.id})).all()
    assert found == [Character(**r._mapping) for r in rows]
    assert [c.id for c in found] == ["char_1", "char_0"]  # newest first
    assert found[0].upstreams == {"kling": "up-1", "fal": "up-2"}
    assert await db.characters.of_owner("key_nobody") == []


async def test_creates_waiting_together_are_refused_one_by_one(db):
    """Ten creates at once for a key that can pay five holds and has the same
    Idempotency-Key on two of them: five are written, the reused key gives back the first
    task, the rest are refused, and the balance agrees with the ledger."""
    key, _ = await db.create_key("batch", balance_micro=5)
    first = make_task(key.id, hold=1, idempotency_key="same")
    again = make_task(key.id, hold=1, idempotency_key="same")
    others = [make_task(key.id, hold=1) for _ in range(8)]
    outcomes = await asyncio.gather(
        *(db.tasks.insert(t) for t in (first, again, *others)), return_exceptions=True)
    assert outcomes[0] == (first, True)
    assert outcomes[1][0].id == first.id and outcomes[1][1] is False  # nothing written
    written = [o for o in outcomes[2:] if not isinstance(o, BaseException)]
    refused = [o for o in outcomes[2:] if isinstance(o, BaseException)]
    assert len(written) == 4 and all(created for _, created in written)
    assert len(refused) == 4 and all(isinstance(e, InsufficientBalance) for e in refused)
    async with db.engine.connect() as conn:
        count = (await conn.execute(sa.select(sa.func.count()).select_from(tasks))).scalar()
    assert count == 5
    assert (await db.get_key(key.id)).balance_micro == 0
    assert await db.keys.ledger_sum(key.id) == 0


class KillsItsConnection:
    """Patches asyncpg's fetchrow so that its first `times` calls find their connection's
    server process already terminated (as after a restart or `pg_terminate_backend`)."""

    def __init__(self, monkeypatch, url: str, times: int = 1) -> None:
        self.dsn = asyncpg_dsn(url)
        self.left = times
        self.pids: list[int] = []
        real = asyncpg.connection.Connection.fetchrow
        patch = self

        async def fetchrow(conn, *args, **kwargs):
            patch.pids.append(conn.get_server_pid())
            if patch.left > 0:
                patch.left -= 1
                await patch.kill(conn.get_server_pid())
            return await real(conn, *args, **kwargs)

        monkeypatch.setattr(asyncpg.connection.Connection, "fetchrow", fetchrow)

    async def kill(self, pid: int) -> None:
        admin = await asyncpg.connect(self.dsn)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)

            async def gone() -> bool:
                return not await admin.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)

            await await_for(gone, timeout=30, what="the killed backend to exit")
        finally:
            await admin.close()


async def test_a_read_whose_connection_died_runs_once_more(db, database_url, monkeypatch):
    needs_postgresql("PostgreSQL's fast path")
    key, _ = await db.create_key("retry")
    task = make_task(key.id)
    await db.tasks.insert(task)
    assert await db.get_task(task.id) is not None  # compiled, and the pool has a connection
    killer = KillsItsConnection(monkeypatch, database_url)
    assert (await db.get_task(task.id)).id == task.id
    assert len(killer.pids) == 2 and killer.pids[0] != killer.pids[1]  # a fresh connection
    killer.left = 2  # dead again, and again on the retry: the read gives up, as a 503
    with pytest.raises(ConnectionLost) as lost:
        await db.get_task(task.id)
    assert is_unreachable(lost.value) and len(killer.pids) == 4


async def test_a_create_whose_connection_died_is_not_retried(db, database_url, monkeypatch):
    needs_postgresql("PostgreSQL's fast path")
    key, _ = await db.create_key("no retry", balance_micro=10)
    await db.tasks.insert(make_task(key.id, hold=1))  # the pool has a connection
    killer = KillsItsConnection(monkeypatch, database_url)
    with pytest.raises(ConnectionLost) as lost:
        await db.tasks.insert(make_task(key.id, hold=1))
    assert is_unreachable(lost.value)
    assert len(killer.pids) == 1  # tried once, on the connection that died
    async with db.engine.connect() as conn:
        count = (await conn.execute(sa.select(sa.func.count()).select_from(tasks))).scalar()
    assert count == 1 and (await db.get_key(key.id)).balance_micro == 9  # nothing written


async def test_database_out_of_reach_answers_503_then_recovers(tmp_path, database_url):
    """Status reads, key lookups and creates on the fast path answer 503 + Retry-After
    while PostgreSQL is out of reach, and 200 once it is back."""
    needs_postgresql("PostgreSQL's fast path")
    url = database_url
    host_port = url.split("@", 1)[1].split("/", 1)[0]
    proxy = TcpProxy(int(host_port.rsplit(":", 1)[1])).start()
    data = tmp_path / "data"
    data.mkdir()
    settings = Settings(data_dir=data, secret=b"test-secret", render_workers=1,
                        database_url=url.replace(host_port, f"127.0.0.1:{proxy.port}"),
                        key_cache_seconds=0)
    app = create_app(settings)
    try:
        async with app.lifespan():
            _, secret = await app.services.db.create_key("down")
            headers = {"Authorization": f"Bearer {secret}"}
            # (the app's own exception is raised after its answer is sent; see the answer)
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport,
                                         base_url="http://testserver") as client:
                body = {"prompt": "p", "size": "720x720", "seconds": "4"}
                made = await client.post("/v1/videos", headers=headers, json=body)
                assert made.status_code == 200, made.text
                path = f"/v1/videos/{made.json()['id']}"
                proxy.stop()
                for answer in (await client.get(path, headers=headers),
                               await client.post("/v1/videos", headers=headers, json=body)):
                    assert answer.status_code == 503, answer.text
                    assert answer.headers["retry-after"].isdigit()
                    assert answer.json()["error"]["code"] == "service_unavailable"
                proxy.start()
                back = await client.get(path, headers=headers)
                assert back.status_code == 200, back.text
    finally:
        proxy.stop()


async def test_a_silent_database_host_is_out_of_reach_in_seconds_not_a_minute():
    """A host that takes the TCP connection and never answers (a hung server, a dead host
    behind a load balancer) makes both database paths give up after the connect timeout,
    as an out-of-reach database (503), well before asyncpg's own 60 s."""
    accepted: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # say nothing, close nothing

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    db = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/silent")
    try:
        for read in (lambda: db.get_task("video_x"), db.list_keys):  # pg_direct, SQLAlchemy
            attempt = asyncio.create_task(read())
            done, _ = await asyncio.wait({attempt}, timeout=45)
            assert attempt in done, "still connecting after 45 s"
            assert is_unreachable(attempt.exception()), repr(attempt.exception())
        assert accepted  # it did reach the silent host
    finally:
        await db.close()
        server.close()
        for writer in accepted:
            writer.close()
