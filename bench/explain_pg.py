"""The PostgreSQL plans of the engine's claim, a status read and a list, at a million tasks.

Fills a database of your own (never the test database) with `--rows` tasks, most finished and
`--active` still in flight (queued, or polled on a fake channel with next polls spread over
the next minute), runs ANALYZE, then prints `EXPLAIN (ANALYZE, BUFFERS)` of each statement the
way vidgate runs it (the claim inside a transaction that is rolled back), and the statements
vidgate prepares on asyncpg as a generic plan (the plan PostgreSQL may settle on for a
prepared statement after five runs, made for any parameter values):

    createdb -h 127.0.0.1 -U postgres pg_scale
    .venv/bin/python -m bench.explain_pg postgresql+asyncpg://postgres@127.0.0.1:5432/pg_scale

The fill is skipped when the table already has `--rows` rows, so a second run only explains.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import time

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import visitors

from vidgate.domain import ACTIVE
from vidgate.store import admission
from vidgate.store.database import Database
from vidgate.store.leases import IN_FLIGHT, claim_statement
from vidgate.store.pg_direct import asyncpg_dsn, compile_on
from vidgate.store.schema import tasks
from vidgate.store.tasks import TASK_BY_ID_FOR_OWNER

OWNERS = 20  # keys; owner 0 made half of all tasks (the list query's worst case)

# Rows made in SQL: a task id per row, owner 0 for even rows, the last `active` rows unfinished
# (the first tenth of those queued, the rest bound to channel "fake").
FILL = """
INSERT INTO tasks (id, owner_id, family, model, prompt, width, height, seconds, seed, params,
    status, progress, created_at, status_updated_at, completed_at, backend, upstream_id,
    next_poll_at, deadline_at, attempts, cancel_requested, hold_micro)
SELECT 'video_' || lpad(to_hex(g), 24, '0'),
    CASE WHEN g % 2 = 0 THEN 'key_0' ELSE 'key_' || (g % :owners) END,
    'videos', 'sora-2', 'a calm sea at dawn, task ' || g, 1280, 720, 4, 0, '{}',
    CASE WHEN g > :rows - :active THEN
             CASE WHEN g > :rows - :active / 10 THEN 'queued' ELSE 'in_progress' END
         WHEN g % 20 = 0 THEN 'failed' ELSE 'completed' END,
    CASE WHEN g > :rows - :active THEN 0 ELSE 100 END,
    :now - (:rows - g), :now - (:rows - g), CASE WHEN g > :rows - :active THEN NULL
                                                 ELSE :now - (:rows - g) + 180 END,
    CASE WHEN g > :rows - :active / 10 THEN NULL ELSE 'fake' END,
    CASE WHEN g > :rows - :active / 10 THEN NULL ELSE 'job_' || g END,
    CASE WHEN g > :rows - :active / 10 THEN :now
         WHEN g > :rows - :active THEN :now + (g % 60) ELSE :now - (:rows - g) + 170 END,
    :now + 3600, 1, false, 0
FROM generate_series(1, :rows) AS g
"""


def _sql(stmt: sa.ClauseElement, **values: object) -> str:
    """The statement as PostgreSQL receives it, with these values written in."""
    def fill(element: sa.ClauseElement) -> sa.ClauseElement | None:
        if isinstance(element, sa.BindParameter) and element.key in values:
            return sa.literal(values[element.key], element.type)
        if isinstance(element, sa.BindParameter) and isinstance(element.value, enum.Enum):
            return sa.literal(element.value.value)  # the statuses, written as text
        return None

    filled = visitors.replacement_traverse(stmt, {}, fill)
    return str(filled.compile(dialect=postgresql.dialect(),
                              compile_kwargs={"literal_binds": True}))


def statements(rows: int, now: float) -> dict[str, str]:
    owner_list = (sa.select(tasks).where(tasks.c.owner_id == "key_0",
                                         tasks.c.deleted_at.is_(None))
                  .order_by(tasks.c.seq.desc()).limit(21))
    claim = {"worker": "w_explain", "now": now, "lease_until": now + 30, "limit": 256}
    place = (sa.select(sa.func.count()).select_from(tasks)
             .where(tasks.c.backend == "fake", tasks.c.status.in_(ACTIVE),
                    tasks.c.id != "video_x"))
    return {
        "claim (bound tasks, submit=False)": _sql(claim_statement("postgresql", False), **claim),
        "claim (new tasks, submit=True)": _sql(claim_statement("postgresql", True), **claim),
        # an engine's tick between polls, fewer rows due than its batch: here none (a time
        # before every row's next poll, whenever the table was filled)
        "claim when none is due (bound tasks, submit=False)": _sql(
            claim_statement("postgresql", False), **{**claim, "now": 1.0}),
        "status read (TASK_BY_ID_FOR_OWNER)": _sql(
            TASK_BY_ID_FOR_OWNER, task_id=f"video_{rows // 2:024x}", owner_id="key_0"),
        "list, first page (key with half the rows)": _sql(owner_list),
        "list, a page deep in the past": _sql(owner_list.where(tasks.c.seq < rows // 10)),
        "jobs in flight per channel (count_in_flight)": _sql(IN_FLIGHT),
        "a channel's places (reserve_slot)": _sql(place),
        "a key's unfinished tasks (admission, max_concurrent), key with half": _sql(
            admission.ACTIVE_COUNT, owner_id="key_0"),
        "a key's unfinished tasks (admission, max_concurrent), key with 1/20": _sql(
            admission.ACTIVE_COUNT, owner_id="key_1"),
    }


async def prepared(conn: asyncpg.Connection, now: float
                   ) -> dict[str, tuple[str, tuple[object, ...]]]:
    """Statements as asyncpg runs them (`$n` parameters), with the values to explain."""
    count = admission.POSTGRES[admission.ACTIVE_COUNT]
    found = {f"a key's unfinished tasks (admission, max_concurrent), prepared, {key}": (
        count.sql, count.args({"owner_id": key})) for key in ("key_0", "key_1")}
    # the engine's claims as PgDirect compiles and runs them, when rows are due and when none
    # is (1.0: before every row's next poll)
    for submit, rows in ((None, "any tasks"), (False, "bound tasks"), (True, "new tasks")):
        claim = await compile_on(conn, claim_statement("postgresql", submit))
        for when, at in (("", now), (" when none is due", 1.0)):
            found[f"claim{when} ({rows}, submit={submit}), prepared"] = (claim.sql, claim.args(
                {"worker": "w_explain", "now": at, "lease_until": at + 30, "limit": 256}))
    return found


async def explain_generic(url: str, now: float) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        for n, (name, (sql, args)) in enumerate((await prepared(conn, now)).items()):
            await conn.execute(f"PREPARE explained_{n} AS {sql}")
            values = ", ".join(f"'{a}'" for a in args)
            explained = conn.transaction()
            await explained.start()
            try:
                plan = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "
                                        f"EXECUTE explained_{n}({values})")
            finally:
                await explained.rollback()  # the claim's UPDATE is only explained
            print(f"== {name}, generic plan")
            print("\n".join(r[0] for r in plan) + "\n")
    finally:
        await conn.close()


async def main(url: str, rows: int, active: int) -> None:
    db = Database(url)
    await db.migrate()
    now = time.time()
    async with db.engine.begin() as conn:
        have = (await conn.execute(sa.select(sa.func.count()).select_from(tasks))).scalar()
        if have < rows:
            started = time.monotonic()
            await conn.execute(tasks.delete())
            await conn.execute(sa.text(FILL), {"rows": rows, "active": active, "now": now,
                                               "owners": OWNERS})
            print(f"filled {rows} rows in {time.monotonic() - started:.0f} s")
    async with db.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(sa.text("VACUUM ANALYZE tasks"))
        size = (await conn.execute(sa.text(
            "SELECT pg_size_pretty(pg_total_relation_size('tasks'))"))).scalar()
    print(f"tasks: {rows} rows, {active} in flight, {size} with indexes\n")
    for name, sql in statements(rows, now).items():
        async with db.engine.connect() as conn:
            plan = (await conn.execute(sa.text(
                "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql.replace(":", r"\:")))).all()
            await conn.rollback()  # the claim's UPDATE is only explained
        print(f"== {name}")
        print("\n".join(r[0] for r in plan) + "\n")
    await db.close()
    await explain_generic(url, now)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="a PostgreSQL database of your own (it is filled)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--active", type=int, default=10_000)
    args = parser.parse_args()
    asyncio.run(main(args.url, args.rows, args.active))
