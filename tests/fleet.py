"""The workers of one listener test (`offbeat listen` processes), their environment and queues; the `fleet`
fixture in conftest.py makes one per test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from offbeat.settings import Settings

from .processes import wait_until

OFFBEAT = str(Path(sys.executable).with_name("offbeat"))


@dataclass
class Fleet:
    """Workers of one test: their environment, queues, and the processes started."""

    settings: Settings
    env: dict[str, str]
    client: redis.Redis
    root: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def mount(self) -> Path:
        return self.settings.shared_mount_path

    def push(self, job: dict[str, Any] | str) -> None:
        self.client.lpush(self.settings.queue_name, job if isinstance(job, str) else json.dumps(job))

    def start(self, name: str, *args: str, strace: Path | None = None, **env: str) -> subprocess.Popen[bytes]:
        command = [OFFBEAT, "listen", *args]
        if strace is not None:
            # -y: descriptors with their paths, so calls relative to a directory descriptor (the engine opens
            # job files by a walk of openat calls) are traced to where they really lead.
            command = ["strace", "-f", "-qq", "-y", "--seccomp-bpf", "-e", "trace=%file", "-o", str(strace), *command]
        work = self.root / "cwd"
        work.mkdir(exist_ok=True)
        log = (self.root / f"{name}.log").open("wb")
        proc = subprocess.Popen(command, env={**self.env, **env}, cwd=work, stdout=log, stderr=subprocess.STDOUT)
        self.workers.append(proc)
        return proc

    @staticmethod
    def worker_pid(proc: subprocess.Popen[bytes]) -> int:
        """The listener's own pid (under strace, the tracer's child)."""
        if Path(str(proc.args[0])).name != "strace":
            return proc.pid
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        wait_until(lambda: children.read_text().split(), 30, "strace to start the worker")
        return int(children.read_text().split()[0])

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def registered(self) -> set[str]:
        return {m.decode() for m in self.client.smembers(f"{self.settings.queue_name}:workers")}

    def wait_for_workers(self, count: int, timeout: float = 120) -> set[str]:
        deadline = time.monotonic() + timeout
        while len(self.registered()) < count:
            assert time.monotonic() < deadline, f"{count} worker(s) did not register in {timeout} s"
            assert all(p.poll() is None for p in self.workers), "a worker exited"
            time.sleep(0.2)
        return self.registered()

    def held_by(self, worker: str) -> int:
        return int(self.client.llen(f"{self.settings.queue_name}:processing:{worker}"))

    def results(self, count: int, timeout: float = 180, quiet: float = 0.0) -> list[dict[str, Any]]:
        """`count` results (failing after `timeout`), then any further ones arriving within `quiet` s."""
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(found) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"only {len(found)} of {count} results in {timeout} s: {found}"
            item = self.client.brpop([self.settings.results_queue_name], timeout=min(left, 5))
            if item is not None:
                found.append(json.loads(item[1]))
        if quiet:
            time.sleep(quiet)
            found += [json.loads(raw) for raw in reversed(self.client.lrange(self.settings.results_queue_name, 0, -1))]
        return found

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 300) -> int:
        """SIGTERM and the exit status; a worker still there after `timeout` (an upper bound for a loaded
        machine) is killed, so the assertion on its status fails without leaving it running."""
        os.kill(self.worker_pid(proc), signal.SIGTERM)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        self.workers.remove(proc)
        return code

    def kill_all(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                os.kill(self.worker_pid(proc), signal.SIGKILL)
                proc.kill()
                proc.wait()
