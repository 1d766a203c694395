"""The Redis side and serving: listen, serve, redis-check, push-job, pop-result, status."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from offbeat.cli.app import CueOption, _prefect_defaults, app, dead_app


@app.command()
def listen(
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="jobs analyzed at once (default OFFBEAT_WORKER_CONCURRENCY)")
    ] = None,
) -> None:
    """Serve the Redis job queue: one analysis flow run per job, one result per job, until SIGINT/SIGTERM."""
    _prefect_defaults()
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


@app.command()
def serve(
    listen: Annotated[bool, typer.Option(help="also start a run of the Redis listener right away")] = False,
) -> None:
    """Serve both flows as deployments `analyze-mix/analysis-served` and `redis-listener/listener-served` from this
    process, without a work pool: their runs, triggered from the UI or `prefect deployment run`, execute here.
    (Named apart from prefect.yaml's `analysis` and `listener` deployments, which run on the work pool.)"""
    _prefect_defaults()
    from prefect import serve as serve_deployments
    from prefect.deployments import run_deployment

    from flows.analyze import analyze_mix
    from flows.listen import redis_listener

    deployments = [
        analyze_mix.to_deployment(name="analysis-served", tags=["offbeat", "analysis"]),
        redis_listener.to_deployment(name="listener-served", tags=["offbeat", "listener"]),
    ]
    if listen:

        def start_listener() -> None:
            time.sleep(5)  # the deployments are registered by then
            run_deployment("redis-listener/listener-served", timeout=0)

        threading.Thread(target=start_listener, daemon=True).start()
    serve_deployments(*deployments)


@app.command("redis-check")
def redis_check() -> None:
    """Say whether Redis answers at OFFBEAT_REDIS_URL (exit status 1 when it does not)."""
    from offbeat.service import transport
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
    cue_file: CueOption = None,
) -> None:
    """Push an analysis job to the job queue, as the web application does; prints the job."""
    from pydantic import ValidationError

    from offbeat import cue_sheet
    from offbeat.errors import AnalysisError
    from offbeat.service import transport
    from offbeat.settings import get_settings

    settings = get_settings()
    try:
        text = cue_sheet.decode(cue_file.read_bytes()) if cue_file else None
        sheet = text if text is not None and not text.lstrip().startswith("[") else None  # else JSON cues
        if sheet is not None:
            cue_sheet.parse(sheet, max_tracks=settings.max_cues)  # the worker would refuse it: say so now
        cues = json.loads(text) if text is not None and sheet is None else None
        # The job is checked (path, cues) before an id is drawn: a refused push uses up no id of the counter.
        job = transport.make_job(path, settings, job_id if job_id is not None else 0, cues, sheet)
        client = transport.connect(settings.redis_url)
        if job_id is None:
            job = job.model_copy(update={"job_id": transport.next_job_id(client, settings)})
        transport.push_job(client, settings, job)
    except (OSError, ValueError, ValidationError, AnalysisError, transport.TransportError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(job.model_dump_json(exclude_none=True))


@app.command("pop-result")
def pop_result(timeout: Annotated[float, typer.Option(help="seconds to wait for a result")] = 10.0) -> None:
    """Print the oldest result from the results queue (exit status 1 when none came in time)."""
    from offbeat.service import transport
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


@app.command()
def status(job_id: Annotated[int, typer.Argument(help="the job's id")]) -> None:
    """Print where a job is: its progress record (stage running, share done, time left; exit status 1 when Redis
    holds none: not started, or expired)."""
    from offbeat.service import transport
    from offbeat.settings import get_settings

    settings = get_settings()
    try:
        record = transport.read_progress(transport.connect(settings.redis_url, socket_timeout=10), settings, job_id)
    except transport.TransportError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if record is None:
        typer.echo(f"no progress for job {job_id} in {settings.queue_name} (not started, or expired)", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(record, indent=2))


@dead_app.command("ls")
def dead_letters_ls() -> None:
    """List the dead letters of the job queue, oldest first: job id, size, the start of the message."""
    from offbeat.service import transport
    from offbeat.service.dead_letters import dead_letters
    from offbeat.settings import get_settings

    settings = get_settings()
    try:
        letters = dead_letters(transport.connect(settings.redis_url), settings.queue_name)
    except transport.TransportError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    for letter in letters:
        typer.echo(letter.summary())
    typer.echo(f"{len(letters)} dead letter(s) in {settings.queue_name}:dead", err=True)


@dead_app.command("requeue")
def dead_letters_requeue(
    job_id: Annotated[list[int] | None, typer.Option("--job-id", help="only this job id (repeatable)")] = None,
) -> None:
    """Put dead letters back at the end of the job queue with a fresh attempt count (all, or --job-id ones)."""
    from offbeat.service import transport
    from offbeat.service.dead_letters import requeue
    from offbeat.settings import get_settings

    settings = get_settings()
    try:
        moved = requeue(transport.connect(settings.redis_url), settings.queue_name, set(job_id) if job_id else None)
    except transport.TransportError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{moved} dead letter(s) requeued")
