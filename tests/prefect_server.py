"""A `prefect server start` of the tests' own, on SQLite or on a PostgreSQL database of its own (the production
choice: SQLite answers "database is locked" under bursts), for the tests that operate the engine through Prefect
as a deployment would (the work pool, process workers, several hosts)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from tests.prefect_process import prefect_server as start_server

POSTGRES = "postgres@127.0.0.1:5432"  # the machine's PostgreSQL (trust auth), as the deployment's would be


def postgres(statement: str, *args: Any, database: str = "postgres") -> Any:
    """The first value `statement` returns in `database` (None for a command)."""
    import asyncio

    import asyncpg

    async def run() -> Any:
        connection = await asyncpg.connect(f"postgresql://{POSTGRES}/{database}")
        try:
            return await connection.fetchval(statement, *args)
        finally:
            await connection.close()

    return asyncio.run(run())


@contextmanager
def prefect_server(home: Path, database: Literal["sqlite", "postgresql"]) -> Iterator[tuple[str, dict[str, str]]]:
    """`prefect server start` (`tests.prefect_process`, the one implementation) with `home` as its Prefect home;
    its database is SQLite in that home, or a new PostgreSQL database, dropped afterwards. (API URL, the variables
    that point a process at it.) The server is stopped, and the database dropped, whatever happened inside."""
    env: dict[str, str] = {}
    name = None
    if database == "postgresql":
        name = f"offbeat_prefect_{uuid.uuid4().hex[:12]}"
        postgres(f"CREATE DATABASE {name}")
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = f"postgresql+asyncpg://{POSTGRES}/{name}"
    try:
        with start_server(home, env, timeout=120, grace=300) as server:
            yield server
    finally:
        if name:
            postgres(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
