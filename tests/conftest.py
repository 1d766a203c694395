"""Shared fixtures: isolated settings per test, one Prefect API for the whole session, a Prefect server on
PostgreSQL for a module, the machine's Redis (queues and store-index key prefixes of a test's own), an S3 server on
loopback, the `offbeat listen` workers of a listener test.

What a test needs is a marker (pyproject.toml lists them), added here to every test whose fixtures imply it:
`redis` (the `redis_server` fixture), `postgres` (`prefect_postgres`), `prefect` (a Prefect API server: `prefect_api`
or `prefect_postgres`), `s3` (`s3_endpoint`). A test that needs the machine's Redis or PostgreSQL, or a program that
is not on PATH (`program("redis-server")`), is skipped, saying what to start or install, when it is missing; under
CI (`CI=true`), which provides them, it fails instead (`require`): a skip would hide that the tests did not run.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from offbeat.settings import Settings, get_settings

from .fleet import Fleet

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")  # loaded machines start slowly

# The Redis the tests use: database 13 of the machine's Redis unless OFFBEAT_TEST_REDIS_URL names another. Tests
# use queue names and key prefixes of their own there and delete them afterwards.
REDIS_URL = os.environ.get("OFFBEAT_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def require(needed: str, problem: str | None, remedy: str) -> None:
    """Skip the test when `problem` says something it needs (a service, a program) is missing, saying what to
    do; fail it under CI (`CI=true`). The one rule for every test's external needs."""
    if problem is None:
        return
    message = f"needs {needed}: {problem}; {remedy}"
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"{message}; CI=true, where it must be there: failed, not skipped", pytrace=False)
    pytest.skip(message)


@functools.cache
def _redis_problem(url: str) -> str | None:
    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as error:
        return f"{type(error).__name__}: {error}"
    finally:
        client.close()
    return None


def require_redis() -> None:
    start = "start redis-server, or set OFFBEAT_TEST_REDIS_URL to a Redis the tests may use"
    require(f"Redis at {REDIS_URL}", _redis_problem(REDIS_URL), start)


# What to install for each program a test may need on PATH (the `program` marker, `require_program`).
PROGRAMS = {
    "redis-server": "install Redis (the redis-server program)",
    "strace": "install strace",
}


def require_program(name: str) -> None:
    """Skip the test (fail it under CI) when the program `name` is not on PATH."""
    require(f"the program {name}", None if shutil.which(name) else "not found on PATH", PROGRAMS[name])


@functools.cache
def _tcp_problem(host: str, port: int) -> str | None:
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as error:
        return f"{type(error).__name__}: {error}"
    return None


def _postgres_problem() -> tuple[str, str | None]:
    from .prefect_server import POSTGRES

    host, port = POSTGRES.rpartition("@")[2].split(":")
    return f"PostgreSQL at {host}:{port}", _tcp_problem(host, int(port))


def require_postgres() -> None:
    where, problem = _postgres_problem()
    require(where, problem, "start postgresql")


# The markers a fixture implies (closure of a test's fixtures, so `fleet` implies `redis`).
IMPLIED = {
    "redis_server": ("redis",),
    "prefect_postgres": ("postgres", "prefect"),
    "prefect_api": ("prefect",),
    "s3_endpoint": ("s3",),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        implied = {marker for fixture, markers in IMPLIED.items() if fixture in fixtures for marker in markers}
        for marker in sorted(implied):
            if item.get_closest_marker(marker) is None:
                item.add_marker(getattr(pytest.mark, marker))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("redis") is not None:
        require_redis()
    if item.get_closest_marker("postgres") is not None:
        require_postgres()
    for marker in item.iter_markers("program"):
        for name in marker.args:
            require_program(name)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings pointing at a private store and shared mount; the real model folder of the checkout."""
    mount = tmp_path / "shared"
    mount.mkdir()
    env = {
        "OFFBEAT_ARTIFACT_STORE": str(tmp_path / "artifacts"),
        "OFFBEAT_SHARED_MOUNT_PATH": str(mount),
        "OFFBEAT_LOCAL_EXPORTS_PATH": str(tmp_path / "exports"),
        "OFFBEAT_MODEL_DIR": str(REPO / "models"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """A Prefect API server shared by every flow test (and handed to CLI subprocesses)."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield str(PREFECT_API_URL.value())


@pytest.fixture(scope="module")
def prefect_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A Prefect server on a PostgreSQL database of its own (dropped afterwards), as a deployment of several hosts
    runs it: (API URL, the variables that point a process at it)."""
    from .prefect_server import prefect_server

    require_postgres()
    with prefect_server(tmp_path_factory.mktemp("prefect-home"), "postgresql") as server:
        yield server


@pytest.fixture(scope="session")
def redis_server() -> str:
    """The URL of the tests' Redis, once it answers (else the test is skipped, or failed under CI)."""
    require_redis()
    return REDIS_URL


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """A store-index URL with a key prefix of this test's own; every key under it is deleted afterwards."""
    prefix = f"test-index-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_server)
    try:
        yield f"{redis_server}?prefix={prefix}"
    finally:
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
        client.close()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3-compatible server on loopback (moto's), stopped when the session ends (whatever happened)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_endpoint: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """A bucket of this test's own, and the fsspec storage options that reach it (`OFFBEAT_STORE_OPTIONS`)."""
    import s3fs

    options = {"endpoint_url": s3_endpoint, "key": "testing", "secret": "testing"}
    name = f"offbeat-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem(**options, use_listings_cache=False)
    fs.mkdir(name)
    try:
        yield name, options
    finally:
        fs.rm(name, recursive=True)


@pytest.fixture
def fleet(
    settings: Settings, prefect_api: str, redis_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Fleet]:
    """`offbeat listen` workers of this test (killed afterwards) on queues of its own in the tests' Redis."""
    tag = uuid.uuid4().hex[:8]
    for name, value in {
        "OFFBEAT_REDIS_URL": redis_server,
        "OFFBEAT_QUEUE_NAME": f"test-jobs-{tag}",
        "OFFBEAT_RESULTS_QUEUE_NAME": f"test-results-{tag}",
        "OFFBEAT_WORKER_LEASE_SEC": "2",
        "OFFBEAT_REDIS_RETRY_MAX_SEC": "1",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    client = redis.Redis.from_url(redis_server, socket_timeout=30)  # above the BRPOP waits
    fleet = Fleet(get_settings(), {**os.environ, "PREFECT_API_URL": prefect_api}, client, tmp_path)
    yield fleet
    fleet.kill_all()
    for key in client.scan_iter(f"test-*-{tag}*"):
        client.delete(key)
    get_settings.cache_clear()
