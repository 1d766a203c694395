"""The `offbeat` command line's root: the Typer apps and what every command shares (result output, Prefect
defaults). Result documents go to standard output; logs and progress to standard error."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

T = TypeVar("T")

app = typer.Typer(help="The Offbeat Engine: structured analysis of long DJ mixes.", no_args_is_help=True)
models_app = typer.Typer(help="Spleeter checkpoints.", no_args_is_help=True)
app.add_typer(models_app, name="models")
cache_app = typer.Typer(help="Inspect and prune the artifact store.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")
library_app = typer.Typer(help="The track library mixes are identified against.", no_args_is_help=True)
app.add_typer(library_app, name="library")
dead_app = typer.Typer(help="Job messages given up on (delivered too often unanswered).", no_args_is_help=True)
app.add_typer(dead_app, name="dead-letters")


def _prefect_defaults() -> None:
    """Prefect settings this command line needs, unless the operator set them.

    A fresh machine has no route to Prefect's telemetry endpoint: don't log failures about it. Prefect's
    embedded API server (used when `PREFECT_API_URL` is unset) must start within 20 s by default, which a
    machine with a little load misses about one start in three (measured at load 2-3 on 2 cores), killing
    the command before it did anything: wait up to 3 minutes instead.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    tether_temporary_servers()


PR_SET_PDEATHSIG = 1  # from linux/prctl.h


def tether_temporary_servers() -> None:
    """Have every temporary Prefect API server this process starts die with it, however it ends.

    Without an API URL, Prefect starts its own server (`SubprocessASGIServer`, a uvicorn child) and stops it at
    exit; a process killed by SIGKILL (or ended by `os._exit`) runs no exit handler, and the server lived on,
    orphaned, for good. Here the child is started with a parent-death signal (Linux `prctl(PR_SET_PDEATHSIG)`,
    set between fork and exec), so the kernel kills it the moment this process is gone. The signal is tied to
    the thread that forks, not to the process: Prefect may start its server from any of its threads, some of
    which end long before the process, so the fork is done by one thread of ours that lives as long as the
    process (`_PARENT`). Prefect's server module creates the process through its module-level `subprocess`,
    which is handed a copy whose `Popen` does this; nothing else of Prefect changes. Linux only, and only when no
    API URL is set (the server module is costly to import, and with an API no temporary server starts)."""
    if not sys.platform.startswith("linux"):
        return
    from prefect.settings import get_current_settings

    if get_current_settings().api.url:
        return
    from prefect.server.api import server

    if not isinstance(server.subprocess, _TetheredSubprocess):
        server.subprocess = _TetheredSubprocess()  # type: ignore[assignment]


class _ParentThread:
    """One daemon thread that runs what it is given (process starts) and never ends before the process does: the
    parent, for the kernel, of children with a parent-death signal. A daemon thread waiting for work is left
    alone at interpreter shutdown, so the signal comes only when the process itself is gone."""

    def __init__(self) -> None:
        self._work: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()

    def run(self, work: Callable[[], T]) -> T:
        """`work()`, run on the parent thread; its result, or its exception raised here."""
        with self._guard:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="offbeat-server-parent", daemon=True)
                self._thread.start()
        done: Future[T] = Future()
        self._work.put((work, done))
        return done.result()

    def _serve(self) -> None:
        while True:
            work, done = self._work.get()
            try:
                done.set_result(work())
            except BaseException as exc:  # handed to the caller, who raises it
                done.set_exception(exc)


_PARENT = _ParentThread()


class _TetheredPopen(subprocess.Popen):  # type: ignore[type-arg]
    """`subprocess.Popen` forked by `_PARENT` with SIGKILL as the child's parent-death signal (SIGKILL: nobody is
    left to follow a SIGTERM that the server were slow to obey). A child whose parent died before the signal was
    set (it would never come) leaves at once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork: the child only calls it
        parent = os.getpid()

        def die_with_parent() -> None:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != parent:
                os._exit(1)

        _PARENT.run(lambda: super(_TetheredPopen, self).__init__(*args, preexec_fn=die_with_parent, **kwargs))


class _TetheredSubprocess:
    """The `subprocess` module as Prefect's server module sees it once tethered: the same, but `Popen`."""

    Popen = _TetheredPopen

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)


PREFECT_SERVER_APP = b"prefect.server.api.server:create_app"  # in the command line of Prefect's temporary server
SERVER_STOP_SEC = 5.0  # how long a temporary server has to leave on SIGTERM before it is killed


@app.callback()
def exit_on_sigterm() -> None:
    """SIGTERM ends any command like Ctrl-C does (SystemExit, unwinding) instead of killing it outright: exit
    handlers run, and Prefect's stops the temporary API server (a uvicorn child) it started, which otherwise
    outlives the command, re-parented to init, for good. (`listen` handles SIGTERM itself while serving.)"""

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        atexit.register(stop_temporary_servers)


def stop_temporary_servers() -> None:
    """Stop every temporary Prefect API server that is still a child of this process, at exit.

    Prefect registers the stop of its server only after starting the process: a SIGTERM that lands in between
    (the moment the server appears) left it running, orphaned, for good; seen once in a test that signals the
    command as soon as the server shows. Linux only (children found through /proc); elsewhere Prefect's own
    handler is all there is."""
    me = str(os.getpid())
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = stat.read_text().rsplit(")", 1)[1].split()[1]
            if parent == me and PREFECT_SERVER_APP in (stat.parent / "cmdline").read_bytes():
                children.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile, or not readable: not ours
    for pid in children:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + SERVER_STOP_SEC
    for pid in children:
        with contextlib.suppress(OSError):  # ChildProcessError: reaped already (by Prefect's own stop)
            while os.waitpid(pid, os.WNOHANG) == (0, 0):
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.05)


def _emit(document: dict[str, Any], output: Path | None) -> None:
    text = json.dumps(document, indent=2)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text + "\n")
        typer.echo(f"result written to {output}", err=True)
    else:
        typer.echo(text)


RefreshOption = Annotated[
    list[str] | None, typer.Option("--refresh", help="stage to recompute with its dependents (repeatable)")
]
CueOption = Annotated[
    Path | None,
    typer.Option(
        help='cue hints: a CUE sheet (.cue), or a JSON list [{"title": ..., "start_time_sec": ...}]',
        show_default=False,
    ),
]
ModelOption = Annotated[str | None, typer.Option(help="Spleeter model: 2stems or 4stems (default from settings)")]


def _finish(document: dict[str, Any], output: Path | None, *, table: bool = False, note: str | None = None) -> None:
    """Print (or write to `output`) the result document, and say so on stderr when the analysis failed.

    With `table`, a completed result on a terminal is shown as the track table (`offbeat.console.track_table`),
    followed by `note`; the JSON then goes only to `output`, if given. Whenever stdout is not a terminal (a pipe,
    a file, a test that captures it) the document is printed as JSON, so scripts read it as before; `note` then
    goes to stderr."""
    on_terminal = table and document.get("status") == "completed" and sys.stdout.isatty()
    if output is not None or not on_terminal:
        _emit(document, output)
    if on_terminal:
        from offbeat.console import track_table

        typer.echo(track_table(document))
    if note:
        typer.echo(note, err=not on_terminal)
    if document.get("status") != "completed":
        typer.echo(f"analysis failed [{document.get('error_code')}]: {document.get('error')}", err=True)
        raise typer.Exit(1)
