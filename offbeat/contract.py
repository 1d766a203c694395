"""The wire contract with the web application (README.md, "Wire contract"): jobs in, one result out per job.

Field names of the first version are kept; later fields are added beside them, never renamed. What the result
says of each track is in `offbeat.track_result` (imported here: the contract is read from this module).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from offbeat import cue_sheet
from offbeat.errors import AnalysisError, ErrorCode, bounded
from offbeat.settings import LIBRARY_NAME
from offbeat.track_result import (  # noqa: F401  (re-exported: the contract is read from this module)
    Identified,
    KeyInfo,
    Section,
    Track,
    TrackAnalysis,
    Transition,
)

# Job ids must survive a round trip through JavaScript numbers in the web application.
MAX_JOB_ID = 2**53 - 1
NO_JOB_ID = -1  # result of a run that has no job: unreadable job, or `offbeat analyze`

# The bound on each member of the union, not on the union: pydantic writes a bound on a union as `"ge": 0` beside
# its `anyOf`, which no JSON Schema validator knows, so the printed schema let negative cue times through.
Seconds = Annotated[StrictFloat, Field(ge=0)] | Annotated[StrictInt, Field(ge=0)]

# Text with no lone surrogate (`"\ud800"` in JSON): what `_check_text` refuses, for the schema's validators.
# Written for ECMA-262 (JSON Schema's pattern dialect) and Python's re alike; only the printed schema carries it
# (`_whole_text`): pydantic's own regex engine cannot name surrogates, and `_check_text` enforces it here.
WHOLE_TEXT = "^[^\\ud800-\\udfff]*$"

# The printed job schema's dialect. Draft 4 is the one whose "integer" is a number written without a fraction:
# the engine refuses `"job_id": 7.0` (a float once parsed), which later drafts call an integer.
JOB_SCHEMA_DIALECT = "http://json-schema.org/draft-04/schema#"

# "Exactly one of relative_path / file_path" for the schema: one, and only one, of the two is there as a string
# (a field that is null counts as absent, as in `Job._one_path`).
ONE_PATH = {
    "oneOf": [{"required": [name], "properties": {name: {"type": "string"}}} for name in ("relative_path", "file_path")]
}

# "At most one of cue_tracks / cue_sheet" for the schema: not both there with values (null counts as absent, as in
# `Job._one_cue_source`).
ONE_CUE_SOURCE = {
    "not": {
        "required": ["cue_tracks", "cue_sheet"],
        "properties": {"cue_tracks": {"type": "array"}, "cue_sheet": {"type": "string"}},
    }
}


def _whole_text(schema: dict[str, Any]) -> None:
    """Give the string member(s) of a field's JSON Schema the WHOLE_TEXT pattern."""
    for member in schema.get("anyOf", [schema]):
        if member.get("type") == "string":
            member["pattern"] = WHOLE_TEXT


class CueTrack(BaseModel):
    model_config = ConfigDict(extra="ignore")

    title: StrictStr = Field(json_schema_extra=_whole_text)
    start_time_sec: Seconds


class Job(BaseModel):
    """A job pushed by the application; exactly one of `relative_path` / `file_path` names the mix."""

    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"$schema": JOB_SCHEMA_DIALECT, **ONE_PATH, **ONE_CUE_SOURCE}
    )

    job_id: Annotated[StrictInt, Field(ge=0, le=MAX_JOB_ID, description="written without a fraction: 7, not 7.0")]
    relative_path: StrictStr | None = Field(
        None, description="path under the shared mount", json_schema_extra=_whole_text
    )
    file_path: StrictStr | None = Field(
        None, description="legacy absolute path, only inside the mount", json_schema_extra=_whole_text
    )
    cue_tracks: list[CueTrack] | None = Field(None, description="hints for track boundaries and titles")
    cue_sheet: StrictStr | None = Field(
        None,
        description="the same hints as a CUE sheet's text instead of cue_tracks (not both): each TRACK's INDEX 01 "
        "(mm:ss:ff, 75 frames a second) and TITLE (else 'Track N'); a malformed sheet, or one starting a track past "
        "the end of the audio, is refused (invalid_job)",
        json_schema_extra=_whole_text,
    )

    library: StrictStr | None = Field(
        None,
        description="the track library to identify tracks against (default OFFBEAT_LIBRARY): letters, digits, '_', "
        "'.' and '-', at most 64",
        pattern=LIBRARY_NAME,
    )

    split: Literal["flac", "wav", "ogg", "mp3"] | None = Field(
        None,
        description="also write each track as its own tagged file in this format, with a CUE sheet and an M3U "
        "playlist, in <name>.tracks/ beside the mix (listed in the result's `results.split`)",
    )
    split_at: Literal["boundary", "middle"] | None = Field(
        None, description="where `split` cuts: each track's boundary (the default), or the middle of its transition"
    )

    @model_validator(mode="after")
    def _one_path(self) -> Job:
        if (self.relative_path is None) == (self.file_path is None):
            raise ValueError("exactly one of relative_path or file_path is required")
        return self

    @model_validator(mode="after")
    def _one_cue_source(self) -> Job:
        if self.cue_tracks is not None and self.cue_sheet is not None:
            raise ValueError("give cue_tracks or cue_sheet, not both")
        return self


class GlobalAnalysis(BaseModel):
    """Whole-mix facts. Timestamps are seconds from the start of the original file.

    Fields of stages this engine version does not run yet are null rather than empty, so that a
    consumer never mistakes "not computed" for "no beats".
    """

    duration_sec: float
    trimmed_start_sec: float = Field(description="leading silence; also where the audio starts")
    trimmed_end_sec: float = Field(description="trailing silence removed from the end")
    global_beat_grid_timestamps: list[float] | None = None
    global_drum_beat_grid_timestamps: list[float] | None = None
    global_downbeat_timestamps: list[float] | None = Field(None, description="bar lines (first beat of each bar)")
    beats_per_bar: list[int] | None = Field(None, description="meter (3 or 4) at each beat of the beat grid")
    bpm_curve: list[float | None] | None = Field(
        None, description="BPM for each second of the file; null for seconds of silence"
    )
    stems: dict[str, str] | None = Field(
        None, description="stem name -> WAV path, relative to the shared mount (absolute for files outside it)"
    )


class SplitFiles(BaseModel):
    """The files `split` wrote, as paths relative to the shared mount (absolute outside it)."""

    format: str
    cut_at: str
    folder: str
    tracks: list[str] = Field(description="one file per track, in track order")
    cue_sheet: str
    playlist: str = Field(description="M3U (UTF-8) of the track files")


class Results(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    global_: GlobalAnalysis = Field(alias="global")
    tracks: list[Track] = Field(default_factory=list)
    cue_sheet: str | None = Field(
        None,
        description="the tracks as a CUE sheet: FILE names the audio file; per track TITLE (the cue hint's, else "
        "'Track N'), PERFORMER where a CUE sheet given as hints named one, INDEX 01 (mm:ss:ff, 75 frames a second)",
    )
    split: SplitFiles | None = Field(
        None, description="the track files, when the job asked for them (`split`)", exclude_if=lambda v: v is None
    )


class EngineInfo(BaseModel):
    version: str
    analysis_id: str = Field(description="digest of every stage's cache key: equal ids, equal results")
    timings_sec: dict[str, float] = Field(description="wall seconds per stage, store look-ups included")
    cached_stages: list[str] = Field(default_factory=list, description="stages read back from the store")
    warnings: list[str] = Field(
        default_factory=list, description="what a person should know about this result (e.g. a truncated file)"
    )


class CompletedResult(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    job_id: int
    status: Literal["completed"] = "completed"
    results: Results
    engine: EngineInfo


class FailedResult(BaseModel):
    job_id: int
    status: Literal["failed"] = "failed"
    error: str
    error_code: ErrorCode
    stage: str | None = None
    retryable: bool = False

    @classmethod
    def from_error(cls, job_id: int, exc: BaseException, stage: str | None = None) -> FailedResult:
        """The one constructor of failed results: an AnalysisError as it is, anything else as a retryable
        internal error (a bug or an environment fault) attributed to `stage`."""
        error = as_analysis_error(exc, stage)
        return cls(
            job_id=job_id, error=error.message, error_code=error.code, stage=error.stage, retryable=error.retryable
        )


class StageProgress(BaseModel):
    stage: str
    fraction: float = Field(ge=0, le=1, description="share of this stage done (a mapped stage: its runs done)")


class Progress(BaseModel):
    """Where a job is, kept at `<queue>:progress:<job_id>` and published on `<queue>:progress` (README.md,
    "Progress"): one record, replaced as the job advances, marked `final` in the step that publishes its result."""

    job_id: int
    state: Literal["running", "completed", "failed"]
    final: bool = Field(description="the result is published; nothing follows this record")
    stage: str | None = Field(description="the running stage with the most work (null when none runs)")
    stage_fraction: float | None = Field(None, ge=0, le=1, description="share of `stage` done")
    running: list[StageProgress] = Field(default_factory=list, description="every stage running now")
    stages_done: list[str] = Field(default_factory=list, description="finished stages, in the order they finished")
    fraction: float = Field(ge=0, le=1, description="share of the whole analysis done, by each stage's typical cost")
    eta_sec: float | None = Field(None, ge=0, description="estimated seconds left (null until it can be told)")
    started_at: str = Field(description="when the analysis started (ISO 8601, UTC)")
    updated_at: str = Field(description="when this record was written (ISO 8601, UTC)")
    elapsed_sec: float = Field(ge=0)
    sequence: int = Field(ge=0, description="counts the records of one run: a record with a lower one is older")
    error_code: ErrorCode | None = Field(None, description="a failed result's error_code (final records)")
    analysis_id: str | None = Field(None, description="a completed result's engine.analysis_id (final records)")


def as_analysis_error(exc: BaseException, stage: str | None = None) -> AnalysisError:
    """`exc` as an AnalysisError: itself, or an internal (retryable) one naming `stage` and the fault."""
    if isinstance(exc, AnalysisError):
        return exc
    where = f" in {stage}" if stage else ""
    return AnalysisError(ErrorCode.INTERNAL, f"internal error{where}: {exc}", stage=stage, retryable=True)


Result = Annotated[CompletedResult | FailedResult, Field(discriminator="status")]


def dump_result(result: CompletedResult | FailedResult) -> dict[str, Any]:
    """The JSON-ready document, with the wire names (`global`, not `global_`)."""
    return result.model_dump(mode="json", by_alias=True)


def parse_job(raw: str | bytes, *, max_bytes: int | None = None, max_cues: int | None = None) -> Job:
    """Parse a job message, turning every defect into an `invalid_job` error a person can read.

    Any exception while parsing is a defect of the message (3000 nested brackets raise RecursionError in the
    JSON parser, a huge number MemoryError): a message must never kill the thread that reads it. `max_bytes`,
    `max_cues`: the documented limits (OFFBEAT_MAX_MESSAGE_BYTES, OFFBEAT_MAX_CUES), refused before parsing.
    """
    if max_bytes is not None and len(raw) > max_bytes:
        raise AnalysisError(
            ErrorCode.INVALID_JOB, f"job message is {len(raw)} bytes; at most {max_bytes} are accepted", stage="intake"
        )
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnalysisError(ErrorCode.INVALID_JOB, f"job is not valid JSON: {exc}", stage="intake") from exc
    except Exception as exc:  # RecursionError, MemoryError, ValueError (digit limits): still the message's fault
        raise AnalysisError(
            ErrorCode.INVALID_JOB, f"job cannot be parsed ({type(exc).__name__}: {exc})", stage="intake"
        ) from exc
    return validate_job(data, max_cues=max_cues)


def validate_job(data: Any, *, max_cues: int | None = None) -> Job:
    """A job from decoded JSON (a message, or the flow's `job` parameter), with readable `invalid_job` errors."""
    if isinstance(data, Job):
        return data
    if not isinstance(data, dict):
        raise AnalysisError(
            ErrorCode.INVALID_JOB, f"job must be a JSON object, got {type(data).__name__}", stage="intake"
        )
    cues = data.get("cue_tracks")
    if max_cues is not None and isinstance(cues, list) and len(cues) > max_cues:
        raise AnalysisError(
            ErrorCode.INVALID_JOB, f"job has {len(cues)} cue_tracks; at most {max_cues} are accepted", stage="intake"
        )
    try:
        job = Job.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        problems = "; ".join(
            f"{'.'.join(bounded(p, 40) for p in err['loc']) or 'job'}: {err['msg']}" for err in errors[:5]
        )
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise AnalysisError(ErrorCode.INVALID_JOB, f"invalid job: {problems}{more}", stage="intake") from exc
    except Exception as exc:  # deep nesting inside a field: the message's fault too
        raise AnalysisError(
            ErrorCode.INVALID_JOB, f"job cannot be validated ({type(exc).__name__})", stage="intake"
        ) from exc
    _check_text(job)
    if job.cue_sheet is not None:
        cue_sheet.parse(job.cue_sheet, max_tracks=max_cues)  # refused here, before any work: CueSheetError
    return job


def _check_text(job: Job) -> None:
    """JSON may carry lone surrogates (`"\\ud800"`), which no file name and no UTF-8 document can hold: refuse
    them here, before the job is stored, logged or serialized anywhere."""
    for code, field, text in [
        (ErrorCode.INVALID_PATH, "path", job.relative_path or job.file_path or ""),
        *[(ErrorCode.INVALID_JOB, f"cue_tracks.{i}.title", cue.title) for i, cue in enumerate(job.cue_tracks or [])],
        (ErrorCode.INVALID_JOB, "cue_sheet", job.cue_sheet or ""),
    ]:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise AnalysisError(
                code, f"{field} is not valid text (a lone surrogate): {bounded(text)}", stage="intake"
            ) from exc


def job_id_of(raw: str | bytes) -> int:
    """Best-effort job id of a message that failed validation, so its failed result can be matched."""
    try:
        data = json.loads(raw)
    except Exception:  # whatever broke the parse, the id is simply unknown
        return NO_JOB_ID
    job_id = data.get("job_id") if isinstance(data, dict) else None
    if isinstance(job_id, int) and not isinstance(job_id, bool) and 0 <= job_id <= MAX_JOB_ID:
        return job_id
    return NO_JOB_ID


def json_schemas(max_cues: int | None = None) -> dict[str, Any]:
    """JSON Schemas the application can validate against: the job, the result (either status) and a job's progress.

    The job schema refuses what `parse_job` refuses, as far as a schema can say it (not the message's size in
    bytes, nor a `cue_sheet`'s grammar or its number of tracks): `max_cues` (default: this engine's
    OFFBEAT_MAX_CUES) bounds `cue_tracks`, as the worker does.
    """
    from pydantic import TypeAdapter

    from offbeat.settings import get_settings

    job = Job.model_json_schema()
    for member in job["properties"]["cue_tracks"]["anyOf"]:
        if member.get("type") == "array":
            member["maxItems"] = get_settings().max_cues if max_cues is None else max_cues
    return {
        "job": job,
        "result": TypeAdapter(Result).json_schema(by_alias=True),
        "progress": Progress.model_json_schema(),
    }
