"""Processes the tests start: stopped for sure, whatever happened in the test.

Waits are upper bounds for a loaded machine (minutes), never the expected time: a test goes on as soon as the
process is gone. A process started in its own session is stopped with its whole group, and whatever it started
in sessions of their own (a `prefect worker` and the flow-run processes it started) is killed once it is gone."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from contextlib import suppress
from pathlib import Path
from typing import Any


def stop(proc: subprocess.Popen[bytes], grace: float = 300.0, sig: int = signal.SIGTERM) -> int:
    """Send `sig` (to the group when the process leads one), wait up to `grace` seconds, then SIGKILL; the exit
    status. Never raises for a process that is slow to leave: it is killed instead of left running."""
    group = _own_group(proc)
    below = _descendants(proc.pid)
    if proc.poll() is None:
        _send(proc, group, sig)
        try:
            return proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _send(proc, group, signal.SIGKILL)
            proc.wait()
    if group:  # children of a process that left first
        _send(proc, group, signal.SIGKILL)
    _kill(below)
    return proc.returncode


# A Prefect 3.8 process worker does not leave on SIGTERM or SIGINT here: it keeps polling its pool until the grace
# runs out. The tests stop one only once its runs are over, so it gets this long, not minutes, before SIGKILL.
WORKER_GRACE = 30.0


def stop_worker(proc: subprocess.Popen[bytes]) -> int:
    """Stop a `prefect worker` whose runs are over (see WORKER_GRACE), with everything it started."""
    return stop(proc, grace=WORKER_GRACE)


def _own_group(proc: subprocess.Popen[bytes]) -> bool:
    try:
        return os.getpgid(proc.pid) == proc.pid
    except ProcessLookupError:
        return False


def _send(proc: subprocess.Popen[bytes], group: bool, sig: int) -> None:
    try:
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
    except ProcessLookupError:
        pass


def wait_until(condition: Any, timeout: float, what: str) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds (an upper bound, never the expected time)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL `proc` and every process below it, whatever their session (a Prefect process worker starts each
    flow run in a session of its own), as when their host goes away; then reap `proc`. The processes are all
    found before any is killed: a child whose parent died first would be out of reach."""
    _kill([(proc.pid, _started(proc.pid)), *_descendants(proc.pid)])
    proc.wait()


def _descendants(pid: int) -> list[tuple[int, str | None]]:
    """Every process below `pid`: (pid, start time), so that a number taken by another process since is spared."""
    found: list[tuple[int, str | None]] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(child) for child in (task / "children").read_text().split()]
        except OSError:  # gone meanwhile
            continue
        for child in children:
            found += [(child, _started(child)), *_descendants(child)]
    return found


def _started(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _kill(processes: list[tuple[int, str | None]]) -> None:
    for pid, started in processes:
        if started is not None and _started(pid) == started:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
