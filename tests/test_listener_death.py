"""A listener that dies without a word (SIGKILL) takes its temporary Prefect API server along, and what it logged
of a hostile job's path on the way is escaped.

A real `offbeat listen` without an API URL, so that it starts Prefect's temporary server itself; its processes
are told apart from the session's by a private PREFECT_HOME in their environment. Every one of them is killed at
the end, whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest

from .fleet import Fleet
from .processes import wait_until
from .test_operator import with_env

pytestmark = pytest.mark.slow  # starts a Prefect server and runs an analysis flow

FORGED = "FORGED job 1: completed result published"


def _stat(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (state first, then the parent's pid); [] once gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _servers(home: str) -> list[int]:
    """Pids of live (not zombie) Prefect API servers started under `home`."""
    found = []
    for pid in with_env(home):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"prefect.server.api.server:create_app" in command and _stat(pid)[:1] not in ([], ["Z"]):
            found.append(pid)
    return found


def test_a_killed_listener_takes_its_prefect_server_along(fleet: Fleet, tmp_path: Path) -> None:
    home = str(tmp_path / "prefect-home")
    fleet.env = {k: v for k, v in fleet.env.items() if k != "PREFECT_API_URL"} | {"PREFECT_HOME": home}
    try:
        listener = fleet.start("listener")
        fleet.wait_for_workers(1, timeout=600)
        fleet.push({"job_id": 5, "relative_path": f"sets/missing.wav\n{FORGED}"})
        (result,) = fleet.results(1, timeout=600)  # answered through an analysis flow run: the server is up
        assert result["job_id"] == 5 and result["error_code"] == "file_not_found", result

        servers = _servers(home)
        assert len(servers) == 1, f"one temporary server expected: {servers}"
        server = servers[0]
        assert int(_stat(server)[1]) == listener.pid, "the server is the listener's child"
        born = _stat(server)[19]  # its start time: a pid taken by another process since is not the server

        os.kill(listener.pid, signal.SIGKILL)
        listener.wait(timeout=120)

        def server_gone() -> bool:
            fields = _stat(server)
            return not fields or fields[0] == "Z" or fields[19] != born

        wait_until(server_gone, 120, "the orphaned Prefect server to exit")
    finally:
        fleet.kill_all()
        for pid in with_env(home):  # never leave one behind, even when the test failed
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    log = fleet.log("listener")
    assert "sets/missing.wav\\n" + FORGED in log, log  # the worker quoted the path, escaped
    assert not [line for line in log.splitlines() if line.startswith(FORGED)], log
