"""The `offbeat` command line's root: the Typer apps and what every command shares (result output, Prefect
defaults). Result documents go to standard output; logs and progress to standard error."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(help="The Offbeat Engine: structured analysis of long DJ mixes.", no_args_is_help=True)
models_app = typer.Typer(help="Spleeter checkpoints.", no_args_is_help=True)
app.add_typer(models_app, name="models")
cache_app = typer.Typer(help="Inspect and prune the artifact store.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")
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
    Path | None, typer.Option(help='JSON list of cues: [{"title": ..., "start_time_sec": ...}]', show_default=False)
]
ModelOption = Annotated[str | None, typer.Option(help="Spleeter model: 2stems or 4stems (default from settings)")]


def _finish(document: dict[str, Any], output: Path | None) -> None:
    _emit(document, output)
    if document.get("status") != "completed":
        typer.echo(f"analysis failed [{document.get('error_code')}]: {document.get('error')}", err=True)
        raise typer.Exit(1)
