"""Processes the tests start: stopped for sure, whatever happened in the test.

Waits are upper bounds for a loaded machine (minutes), never the expected time: a test goes on as soon as the
process is gone. A process started in its own session is stopped with its whole group (a `prefect worker`
and the flow-run processes it started)."""

from __future__ import annotations

import os
import signal
import subprocess


def stop(proc: subprocess.Popen[bytes], grace: float = 300.0, sig: int = signal.SIGTERM) -> int:
    """Send `sig` (to the group when the process leads one), wait up to `grace` seconds, then SIGKILL; the exit
    status. Never raises for a process that is slow to leave: it is killed instead of left running."""
    group = _own_group(proc)
    if proc.poll() is None:
        _send(proc, group, sig)
        try:
            return proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _send(proc, group, signal.SIGKILL)
            proc.wait()
    if group:  # children of a process that left first
        _send(proc, group, signal.SIGKILL)
    return proc.returncode


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
