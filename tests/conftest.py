"""Shared fixtures: isolated settings per test, one Prefect API for the whole session, a Prefect server on
PostgreSQL for a module."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from offbeat.settings import Settings, get_settings

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")  # loaded machines start slowly


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

    with prefect_server(tmp_path_factory.mktemp("prefect-home"), "postgresql") as server:
        yield server
