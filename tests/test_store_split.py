"""The store's single copies: statements compiled once for the fast paths, conversions
taken from the schema, one hold-and-concurrency rule, one answer about revoked keys."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from support import make_task
from vidgate.catalog import RawVideoRequest
from vidgate.domain import ApiKey
from vidgate.errors import ApiError
from vidgate.store import admission
from vidgate.store import tasks as tasks_store
from vidgate.store.admission import ConcurrencyLimitReached
from vidgate.store.compiled import compile_sqlite
from vidgate.store.database import Database
from vidgate.store.keys import hash_key
from vidgate.store.ledger import InsufficientBalance
from vidgate.store.schema import tasks
from vidgate.store.tasks import task_from_row


def test_conversions_come_from_the_column_types():
    insert = admission.SQLITE[admission.INSERT_TASK]
    converted = {name for name, _ in insert.to_db}
    assert {"params", "cancel_requested"} <= converted
    assert not {"id", "prompt", "status"} & converted
    row = insert.params({**{n: None for n in insert.names}, "params": {"a": [1]},
                         "cancel_requested": True})
    assert row["params"] == '{"a": [1]}' and row["cancel_requested"] == 1
    read = compile_sqlite(tasks_store.TASK_BY_ID)
    assert {name for name, _ in read.from_db} == {"params", "cancel_requested"}
    # asyncpg: JSON written as text by the column's type, booleans and JSON read natively
    pg_insert = admission.POSTGRES[admission.INSERT_TASK]
    args = pg_insert.args({**{n: None for n in pg_insert.names}, "params": {"a": [1]},
                           "cancel_requested": True})
    assert args[pg_insert.order.index("params")] == '{"a": [1]}'
    assert args[pg_insert.order.index("cancel_requested")] is True
    assert pg_insert.sql.count("$") == len(pg_insert.order)


async def test_sqlite_fast_path_compiles_nothing_per_call(tmp_path, monkeypatch):
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'fast.db'}")
    await db.migrate()
    try:
        key, _ = await db.create_key("fast", balance_micro=10, max_concurrent=5,
                                     allowed_models=["sora-2"])
        # each read statement is compiled at its first use...
        assert await db.get_task("task_none", key.id) is None
        assert await db.get_key("key_none") is None
        # ...and from here on, neither SQLAlchemy's compiler nor its engine may be used
        def refuse(*_args, **_kwargs):
            raise AssertionError("the SQLite fast path went through SQLAlchemy")

        with monkeypatch.context() as patched:
            patched.setattr(sa.sql.compiler.SQLCompiler, "__init__", refuse)
            patched.setattr(type(db.engine), "connect", refuse)
            patched.setattr(type(db.engine), "begin", refuse)
            task = make_task(key.id, hold=4, params={"metadata": {"k": "v"}})
            assert (await db.tasks.insert(task, max_concurrent=5))[1]
            got = await db.get_task(task.id, key.id)
            found = await db.get_key(key.id)
        # the same values as SQLAlchemy's own reading of the row
        async with db.engine.connect() as conn:
            via_sqlalchemy = task_from_row(
                (await conn.execute(sa.select(tasks).where(tasks.c.id == task.id))).first())
        assert got == via_sqlalchemy and got.params == {"metadata": {"k": "v"}}
        assert got.cancel_requested is False
        assert found.allowed_models == ["sora-2"] and found.balance_micro == 6
    finally:
        await db.close()


async def test_one_exception_per_refusal_on_every_writer(database_url):
    db = Database(database_url)
    await db.migrate()
    try:
        key, _ = await db.create_key("refused", balance_micro=5)
        with pytest.raises(InsufficientBalance):
            await db.tasks.insert(make_task(key.id, hold=6))
        assert (await db.tasks.insert(make_task(key.id, hold=5), max_concurrent=1))[1]
        with pytest.raises(ConcurrencyLimitReached) as refused:
            await db.tasks.insert(make_task(key.id, hold=0), max_concurrent=1)
        assert refused.value.active == 1
        assert (await db.get_key(key.id)).balance_micro == 0
        assert await db.keys.ledger_sum(key.id) == 0
    finally:
        await db.close()


async def test_a_revoked_key_is_found_but_not_usable(app_client):
    services = app_client.services
    key, secret = await services.db.create_key("gone")
    assert await services.db.revoke_key(key.id)
    for found in (await services.db.get_key(key.id), await services.accounts.get(key.id),
                  await services.db.key_for_hash(_digest(secret)),
                  next(k for k in await services.db.list_keys() if k.id == key.id)):
        assert isinstance(found, ApiKey) and found.revoked and not found.usable
        assert found.revoked_at is not None
    # creating with it (revoked between authentication and the insert) is refused
    with pytest.raises(ApiError) as refused:
        await services.tasks.create(key.id, RawVideoRequest(prompt="p"), family="videos")
    assert refused.value.status == 401
    # operators still see it, marked revoked; the API refuses it
    services.settings.admin_token = "admin-secret"
    r = await app_client.client.get(f"/admin/keys/{key.id}",
                                    headers={"Authorization": "Bearer admin-secret"})
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    r = await app_client.client.get("/v1/videos", headers=app_client.headers(secret))
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]


def _digest(secret: str) -> str:
    return hash_key(secret)
