"""The local data folder and database the operator commands work on.

Commands that only read or change what is already there (keys list/show/set/topup/revoke,
usage, ledger) never create a data folder: run from the wrong folder, they would otherwise
make an empty `./vidgate-data` and answer "no keys". Every command says on stderr which
folder (or database) it used, so stdout stays the command's own output.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import typer
from sqlalchemy.engine import make_url

from ..config import load_settings, read_environment, sqlite_url
from ..store.database import Database

T = TypeVar("T")


@dataclass(frozen=True)
class Location:
    data_dir: Path
    database_url: str
    in_data_dir: bool  # the default SQLite file inside the data folder

    @property
    def exists(self) -> bool:
        """Whether there is a database to read (an external one is assumed to exist)."""
        return not self.in_data_dir or (self.data_dir / "vidgate.db").is_file()

    def describe(self) -> str:
        if self.in_data_dir:
            return f"data folder {self.data_dir}"
        shown = make_url(self.database_url).render_as_string(hide_password=True)
        return f"data folder {self.data_dir}, database {shown}"


def locate() -> Location:
    """Where the data is, from VIDGATE_DATA_DIR / VIDGATE_DATABASE_URL; creates nothing."""
    env = read_environment()
    data_dir = env.data_dir.resolve()
    return Location(data_dir, env.database_url or sqlite_url(data_dir),
                    env.database_url is None)


def note(message: str) -> None:
    typer.echo(f"vidgate: {message}", err=True)


def missing_message(where: Location) -> str:
    return (f"no vidgate database in {where.data_dir} (nothing was created). Run this from "
            "the folder where `vidgate serve` ran, or set VIDGATE_DATA_DIR (or "
            "VIDGATE_DATABASE_URL) to the server's.")


def existing(where: Location | None = None) -> Location:
    """The location, or exit 1 when it holds no database: for commands that only read."""
    where = where or locate()
    if not where.exists:
        typer.echo(missing_message(where), err=True)
        raise typer.Exit(1)
    return where


async def _open(url: str, fn: Callable[[Database], Awaitable[T]]) -> T:
    db = Database(url)
    try:
        await db.migrate()
        return await fn(db)
    finally:
        await db.close()


def read(fn: Callable[[Database], Awaitable[T]]) -> T:
    """Run `fn` on the existing database; never creates a data folder."""
    where = existing()
    note(f"using {where.describe()}")
    return asyncio.run(_open(where.database_url, fn))


def write(fn: Callable[[Database], Awaitable[T]]) -> T:
    """Run `fn` on the database, creating the data folder and schema when missing."""
    before = locate()
    created = not before.data_dir.exists()
    settings = load_settings()  # creates the folder and its signing secret
    note(f"using {before.describe()}{' (new)' if created else ''}")
    return asyncio.run(_open(settings.database_url, fn))
