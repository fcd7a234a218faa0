"""Character rows: insert, read by id for its owner, and the owner's characters by name."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from .pg_direct import PgDirect
from .schema import characters
from .sqlite_reads import SqliteRows
from .writes import Writes

# Newest first, so a name used twice resolves to the latest clip. Read on every create.
OF_OWNER = (sa.select(characters).where(characters.c.owner_id == sa.bindparam("owner_id"))
            .order_by(characters.c.created_at.desc(), characters.c.id))


@dataclass
class Character:
    id: str
    owner_id: str
    name: str
    created_at: int
    clip_key: str
    upstreams: dict[str, str] = field(default_factory=dict)  # channel name -> upstream id


class Characters:
    def __init__(self, engine: AsyncEngine, writes: Writes,
                 rows: SqliteRows | PgDirect | None = None) -> None:
        self.engine = engine
        self.writes = writes
        self._rows = rows  # the fast path's reads, when there is one

    async def insert(self, character: Character) -> None:
        stmt = characters.insert().values(**character.__dict__)
        await self.writes.run(lambda conn: conn.execute(stmt).rowcount)

    async def get(self, character_id: str, owner_id: str) -> Character | None:
        query = sa.select(characters).where(characters.c.id == character_id,
                                            characters.c.owner_id == owner_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return Character(**row._mapping) if row else None

    async def of_owner(self, owner_id: str) -> list[Character]:
        """Newest first (OF_OWNER)."""
        values = {"owner_id": owner_id}
        if self._rows is not None:
            return [Character(**row) for row in await self._rows.all(OF_OWNER, values)]
        async with self.engine.connect() as conn:
            return [Character(**r._mapping) for r in (await conn.execute(OF_OWNER, values)).all()]
