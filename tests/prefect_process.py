"""A `prefect server start` of one's own: a private PREFECT_HOME, a free loopback port, always stopped.

The one implementation of it: the accuracy bench runs every `offbeat analyze` against one (each would otherwise
start an embedded server of its own, about 15 s per run), and the tests that operate the engine through Prefect as
a deployment would start theirs with it (`tests/prefect_server.py` adds their PostgreSQL database).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

PREFECT = str(Path(sys.executable).with_name("prefect"))  # the venv's, beside this interpreter


def free_port() -> int:
    """A loopback TCP port no one listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(proc: subprocess.Popen[bytes], grace: float, group: bool) -> None:
    """SIGTERM (to the whole process group when `proc` leads its own), then SIGKILL after `grace` seconds."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait)
            return


@contextlib.contextmanager
def prefect_server(
    home: Path,
    env: Mapping[str, str] | None = None,
    *,
    ui: bool = True,
    timeout: float = 180.0,
    grace: float = 20.0,
) -> Iterator[tuple[str, dict[str, str]]]:
    """`prefect server start` on a free loopback port with `home` as its Prefect home and `env` added to its
    environment (a database URL, say); its log is `home/server.log`. Yields (API URL, the variables that point a
    process at it: PREFECT_HOME, PREFECT_API_URL, analytics off and `env`).

    Raises RuntimeError, with the log's end, if the server exits or is not healthy within `timeout` seconds. It
    runs in a session of its own, so a Ctrl-C in the terminal does not stop it under running work; whatever
    happened inside, its process group is stopped (SIGTERM, SIGKILL after `grace` seconds).
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    variables = {"PREFECT_HOME": str(home), "PREFECT_API_URL": url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    variables |= dict(env or {})
    log_path = home / "server.log"
    cmd = [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port), *([] if ui else ["--no-ui"])]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **variables}, start_new_session=True
        )
    try:
        deadline = time.monotonic() + timeout
        while not _healthy(url):
            if proc.poll() is not None:
                raise RuntimeError(f"prefect server exited ({proc.returncode}): {tail(log_path)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"prefect server not healthy after {timeout:.0f} s: {tail(log_path)}")
            time.sleep(0.5)
        yield url, variables
    finally:
        stop(proc, grace=grace, group=True)


def _healthy(url: str) -> bool:
    with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/health", timeout=2) as response:
        return bool(response.status == 200)
    return False


def tail(path: Path, chars: int = 2000) -> str:
    """The last `chars` characters of a log file ('' when it cannot be read)."""
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-chars:]
    return ""
