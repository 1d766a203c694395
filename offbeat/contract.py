"""The wire contract with the web application (DESIGN.md §1): jobs in, one result out per job.

Field names of the first version are kept; later fields are added beside them, never renamed.
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

from offbeat.errors import AnalysisError, ErrorCode

# Job ids must survive a round trip through JavaScript numbers in the web application.
MAX_JOB_ID = 2**53 - 1
NO_JOB_ID = -1  # result of a run that has no job: unreadable job, or `offbeat analyze`

Seconds = Annotated[StrictFloat | StrictInt, Field(ge=0)]


class CueTrack(BaseModel):
    model_config = ConfigDict(extra="ignore")

    title: StrictStr
    start_time_sec: Seconds


class Job(BaseModel):
    """A job pushed by the application; exactly one of `relative_path` / `file_path` names the mix."""

    model_config = ConfigDict(extra="ignore")

    job_id: Annotated[StrictInt, Field(ge=0, le=MAX_JOB_ID)]
    relative_path: StrictStr | None = Field(None, description="path under the shared mount")
    file_path: StrictStr | None = Field(None, description="legacy absolute path, only inside the mount")
    cue_tracks: list[CueTrack] | None = Field(None, description="hints for track boundaries and titles")

    @model_validator(mode="after")
    def _one_path(self) -> Job:
        if (self.relative_path is None) == (self.file_path is None):
            raise ValueError("exactly one of relative_path or file_path is required")
        return self


class KeyInfo(BaseModel):
    musical: str
    camelot: str
    confidence: float


class TrackAnalysis(BaseModel):
    """Per-track features; a feature that could not be computed is null, never a made-up number."""

    duration_sec: float
    stable_bpm: float | None = None
    bpm_confidence: float | None = None
    key: KeyInfo | None = None
    loudness_lufs_total: float | None = None
    loudness_lufs_bass: float | None = None
    average_brightness: float | None = None
    has_vocals: bool | None = None
    vocal_energy_rms: float | None = None


class Track(BaseModel):
    track_id: int
    title: str | None = None
    start_time_sec: float
    end_time_sec: float
    transition_in: list[float] | None = Field(None, description="[start, end] of the blend into this track")
    transition_out: list[float] | None = Field(None, description="[start, end] of the blend into the next")
    analysis: TrackAnalysis


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
    bpm_curve: list[float | None] | None = Field(
        None, description="BPM for each second of the file; null for seconds of silence"
    )
    stems: dict[str, str] | None = Field(
        None, description="stem name -> WAV path, relative to the shared mount (absolute for files outside it)"
    )


class Results(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    global_: GlobalAnalysis = Field(alias="global")
    tracks: list[Track] = Field(default_factory=list)


class EngineInfo(BaseModel):
    version: str
    analysis_id: str = Field(description="digest of every stage's cache key: equal ids, equal results")
    timings_sec: dict[str, float] = Field(description="wall seconds per stage, store look-ups included")
    cached_stages: list[str] = Field(default_factory=list, description="stages read back from the store")


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


def parse_job(raw: str | bytes) -> Job:
    """Parse a job message, turning every defect into an `invalid_job` error a person can read."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnalysisError(ErrorCode.INVALID_JOB, f"job is not valid JSON: {exc}", stage="intake") from exc
    return validate_job(data)


def validate_job(data: Any) -> Job:
    """A job from decoded JSON (a message, or the flow's `job` parameter), with readable `invalid_job` errors."""
    if isinstance(data, Job):
        return data
    if not isinstance(data, dict):
        raise AnalysisError(
            ErrorCode.INVALID_JOB, f"job must be a JSON object, got {type(data).__name__}", stage="intake"
        )
    try:
        return Job.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'job'}: {err['msg']}" for err in exc.errors())
        raise AnalysisError(ErrorCode.INVALID_JOB, f"invalid job: {problems}", stage="intake") from exc


def job_id_of(raw: str | bytes) -> int:
    """Best-effort job id of a message that failed validation, so its failed result can be matched."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return NO_JOB_ID
    job_id = data.get("job_id") if isinstance(data, dict) else None
    if isinstance(job_id, int) and not isinstance(job_id, bool) and 0 <= job_id <= MAX_JOB_ID:
        return job_id
    return NO_JOB_ID


def json_schemas() -> dict[str, Any]:
    """JSON Schemas the application can validate against: the job and the result (either status)."""
    from pydantic import TypeAdapter

    return {
        "job": Job.model_json_schema(),
        "result": TypeAdapter(Result).json_schema(by_alias=True),
    }
