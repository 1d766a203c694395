"""A `prefect server start` of the tests' own, on SQLite or on a PostgreSQL database of its own (the production
choice: SQLite answers "database is locked" under bursts), for the tests that operate the engine through Prefect
as a deployment would (the work pool, process workers, several hosts)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import httpx

from .processes import free_port, stop, wait_until

PREFECT = str(Path(sys.executable).with_name("prefect"))
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
    """`prefect server start` on a free loopback port with `home` as its Prefect home; its database is SQLite in
    that home, or a new PostgreSQL database, dropped afterwards. (API URL, the variables that point a process at
    it.) The server is stopped, and the database dropped, whatever happened inside."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {"PREFECT_HOME": str(home), "PREFECT_API_URL": url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    name = None
    if database == "postgresql":
        name = f"offbeat_prefect_{uuid.uuid4().hex[:12]}"
        postgres(f"CREATE DATABASE {name}")
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = f"postgresql+asyncpg://{POSTGRES}/{name}"
    try:
        with (home / "server.log").open("wb") as log:
            server = subprocess.Popen(
                [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                env={**os.environ, **env}, stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip
        try:
            wait_until(lambda: _healthy(url), 120, "the Prefect server to start")
            yield url, env
        finally:
            stop(server)
    finally:
        if name:
            postgres(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
