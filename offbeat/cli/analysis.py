"""Analysis commands: analyze, rerun, demo, split, report, config, schema."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from offbeat.cli.app import (
    CueOption,
    ModelOption,
    RefreshOption,
    _emit,
    _finish,
    _prefect_defaults,
    app,
)

JsonOption = Annotated[
    bool, typer.Option("--json", help="print the result document (JSON) even on a terminal, not the track table")
]


def _checked_stages(names: list[str] | None) -> list[str]:
    from offbeat.pipeline.registry import STAGES

    unknown = sorted(set(names or []) - set(STAGES))
    if unknown:
        raise typer.BadParameter(f"unknown stage(s) {', '.join(unknown)}; stages are {', '.join(STAGES)}")
    return list(names or [])


def _read_cues(path: Path | None) -> tuple[list[Any] | None, str | None]:
    """A `--cue-file`: the JSON list of cues (a file starting with `[`), else a CUE sheet's text; each goes to the
    flow as it is (a sheet is parsed there, as a job's is, and before Prefect starts by `run_analysis`)."""
    if path is None:
        return None, None
    from pydantic import TypeAdapter, ValidationError

    from offbeat import cue_sheet
    from offbeat.contract import CueTrack

    try:
        text = cue_sheet.decode(path.read_bytes())
        if not text.lstrip().startswith("["):
            return None, text
        return TypeAdapter(list[CueTrack]).validate_json(text), None
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
    cue_sheet: str | None = None,
    library: str | None = None,
) -> dict[str, Any]:
    """Run the analysis flow in this process (Prefect's embedded API unless PREFECT_API_URL is set).

    Always a result document: a failure before the flow runs (a missing model, Prefect's temporary server not
    starting on a loaded machine) is a failed document with its error_code too, never a bare traceback. A
    malformed `cue_sheet` (a CUE sheet's text, the hints instead of `cues`) is answered before Prefect starts."""
    if model not in (None, "2stems", "4stems"):
        raise typer.BadParameter(f"model must be 2stems or 4stems, not {model}")
    if library is not None:
        from offbeat.library import check_name

        try:
            check_name(library)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
    refresh = _checked_stages(refresh)
    from offbeat.contract import FailedResult, dump_result
    from offbeat.errors import AnalysisError

    try:
        if source is not None and job is None:
            _check_source(source)
        if cue_sheet is not None:
            from offbeat import cue_sheet as sheets
            from offbeat.settings import get_settings

            sheets.parse(cue_sheet, max_tracks=get_settings().max_cues)
    except AnalysisError as exc:  # the flow's own answer, without waiting ~15 s for Prefect to start first
        return dump_result(FailedResult.from_error(job_id, exc))
    try:
        return _run_flow(source, job, job_id, refresh, (cues, cue_sheet), model, library)
    except Exception as exc:
        from offbeat.errors import bounded_traceback

        typer.echo(f"analysis could not run: {bounded_traceback(exc)}", err=True)
        return dump_result(FailedResult.from_error(job_id, exc, stage="startup"))


def _check_source(source: Path) -> None:
    """Open the file as the flow will (`offbeat.paths.open_local_source`) and close it again: a missing file, a
    folder or a path the flow would refuse raises the same `intake` AnalysisError before Prefect starts."""
    from offbeat.paths import open_local_source
    from offbeat.settings import get_settings

    open_local_source(source, get_settings().shared_mount_path).close()


def _run_flow(
    source: Path | None,
    job: dict[str, Any] | None,
    job_id: int,
    refresh: list[str],
    hints: tuple[list[Any] | None, str | None],
    model: str | None,
    library: str | None = None,
) -> dict[str, Any]:
    from offbeat.pipeline.preflight import preflight
    from offbeat.settings import get_settings

    preflight(get_settings(), model)  # before Prefect's start-up: a missing model fails in a second
    _prefect_defaults()
    from prefect import tags

    from flows.analyze import analyze_mix

    # Whatever prints during the run is a log line, never part of the document on stdout.
    with contextlib.redirect_stdout(sys.stderr), tags("offbeat", "cli"):
        state = analyze_mix(
            source=str(source) if source is not None else None,
            job=job,
            job_id=job_id,
            cues=hints[0],
            cue_sheet=hints[1],
            refresh=refresh or None,
            model=model,
            library=library,
            return_state=True,
        )
    document = state.result(raise_on_failure=False)
    if isinstance(document, BaseException):
        raise document
    if not isinstance(document, dict):
        raise RuntimeError(f"the analysis flow ended {state.type.value} without a result: {state.message}")
    return document


@app.command()
def analyze(
    path: Annotated[Path, typer.Argument(help="audio file to analyze, in place")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write the result here")] = None,
    refresh: RefreshOption = None,
    job_id: Annotated[int, typer.Option(help="job id to put in the result (-1: none)")] = -1,
    cue_file: CueOption = None,
    model: ModelOption = None,
    cue_sheet: Annotated[
        Path | None,
        typer.Option("--cue-sheet", help="also write the tracks as a CUE sheet here", show_default=False),
    ] = None,
    library: Annotated[
        str | None,
        typer.Option(help="track library to identify tracks against (default from settings)", show_default=False),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Analyze a mix: on a terminal, print its tracks as a table; else (or with --json) its result document.
    Exit status 1 when the analysis failed."""
    cues, sheet = _read_cues(cue_file)
    document = run_analysis(
        path, job_id=job_id, refresh=refresh, cues=cues, model=model, cue_sheet=sheet, library=library
    )
    if cue_sheet is not None and document.get("status") == "completed":
        cue_sheet.parent.mkdir(parents=True, exist_ok=True)
        cue_sheet.write_text(document["results"]["cue_sheet"], encoding="utf-8")
        typer.echo(f"cue sheet written to {cue_sheet}", err=True)
    _finish(document, output, table=not as_json)


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
    from offbeat.storage import JobLedger, open_store

    ledger = JobLedger(open_store())
    job, message = None, ""
    if job_id is not None:
        record = ledger.answered(job_id)
        if record is None:
            typer.echo(f"error: job {job_id} is not in the job ledger (completed jobs are recorded there)", err=True)
            raise typer.Exit(1)
        message = record["job"]
        job = json.loads(message)
    cues, sheet = _read_cues(cue_file)
    document = run_analysis(
        source, job=job, job_id=job_id if job_id is not None else -1, refresh=stage, cues=cues, cue_sheet=sheet
    )
    if document.get("status") == "completed":
        engine = document["engine"]
        ran = [name for name in engine["timings_sec"] if name != "total" and name not in engine["cached_stages"]]
        typer.echo(
            f"ran: {', '.join([*ran, 'assemble'])}; from the store: {', '.join(engine['cached_stages']) or 'nothing'}",
            err=True,
        )
        if job is not None and job_id is not None:
            ledger.record(job_id, message, document)
    _finish(document, output)


@app.command()
def demo(
    minutes: Annotated[float, typer.Option(help="length of the generated mix")] = 4.0,
    folder: Annotated[Path, typer.Option(help="where the demo mix is written")] = Path("demo"),
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
    as_json: JsonOption = False,
) -> None:
    """Generate a demo mix (known tempos, keys, vocals, silence), analyze it, show its tracks (a table on a
    terminal, else or with --json the result document) and say how close they are to the mix's known truth."""
    from offbeat import synth
    from offbeat.console import truth_line

    spec = synth.demo_mix(minutes)
    path = folder / f"demo-mix-{minutes:g}min.wav"
    if not path.exists():
        typer.echo(f"writing {path} ...", err=True)
        synth.write_mix(spec, path, subtype="PCM_16")
    document = run_analysis(path)
    note = None
    if document.get("status") == "completed":
        played = [(start, end, s.bpm) for (start, end), s in zip(spec.spans(), spec.sections, strict=True)]
        note = truth_line(document, spec.boundaries(), played)
    _finish(document, output, table=not as_json, note=note)


@app.command()
def result(
    run_id: Annotated[str, typer.Argument(help="the analyze-mix flow run's id (the UI shows it; also its log)")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write the result here")] = None,
) -> None:
    """Print the result document of an analysis run, also one started from the Prefect UI or `prefect deployment
    run` (kept 30 days in the store's job ledger); exit status 1 when the store holds none for that run."""
    from offbeat.storage import JobLedger, open_store

    document = JobLedger(open_store()).delivered(run_id.strip())
    if document is None:
        typer.echo(f"error: no result document for flow run {run_id} in the store (another store? expired?)", err=True)
        raise typer.Exit(1)
    _emit(document, output)


@app.command()
def split(
    result: Annotated[Path, typer.Argument(help="a completed result document (JSON)")],
    audio: Annotated[
        Path | None, typer.Option(help="the mix (default: where the result's stems and CUE sheet place it)")
    ] = None,
    file_format: Annotated[str, typer.Option("--format", help="flac, wav, ogg or mp3")] = "flac",
    at: Annotated[
        str, typer.Option(help="cut at each track's boundary, or at the middle of its transition")
    ] = "boundary",
) -> None:
    """Write each track of a result as its own tagged audio file, with a CUE sheet and an M3U playlist, in
    `<name>.tracks/` beside the mix (or under the local exports folder); prints what was written (JSON)."""
    from offbeat import split as splitting
    from offbeat.errors import AnalysisError
    from offbeat.settings import get_settings

    settings = get_settings()
    try:
        if file_format not in splitting.FORMATS or at not in ("boundary", "middle"):
            raise ValueError(f"--format is one of {', '.join(splitting.FORMATS)}; --at is boundary or middle")
        document = json.loads(result.read_text())
        source = audio or splitting.source_of(document, settings.shared_mount_path)
        if source is None:
            raise ValueError("the result does not say where its mix is: name it with --audio")
        listed = splitting.split(source, document, settings, file_format, at)  # type: ignore[arg-type]
    except (OSError, ValueError, KeyError, AnalysisError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(listed, indent=2))


@app.command()
def report(
    result: Annotated[Path, typer.Argument(help="a completed result document (JSON)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="the HTML file to write")] = Path("mix.html"),
    audio: Annotated[
        Path | None, typer.Option(help="the mix (default: where the result's stems and CUE sheet place it)")
    ] = None,
) -> None:
    """Write one self-contained HTML page of a result: the mix's level with its tracks (key colours, blends), the
    tempo, a block per track, and a player of the mix from any track's start when the mix can be found."""
    from offbeat import html_report
    from offbeat import split as splitting
    from offbeat.errors import AnalysisError
    from offbeat.settings import get_settings

    settings = get_settings()
    try:
        document = json.loads(result.read_text())
        source = audio or splitting.source_of(document, settings.shared_mount_path)
        reachable = source is not None and source.is_file()
        level = html_report.level_per_second(source, settings) if reachable else None
        address = html_report.audio_address(source, output.resolve()) if reachable else None  # where it is written
        text = html_report.page(document, level, address)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except (OSError, ValueError, KeyError, AnalysisError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(
        f"{output} written ({len(text.encode()) / 1024:.0f} kB{'' if reachable else ', mix not found: no player'})",
        err=True,
    )


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
