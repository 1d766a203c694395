"""The one settings object: environment variables with the OFFBEAT_ prefix, optionally from `.env`.

Every default works on a fresh machine with no configuration; relative paths are resolved against the
working directory of the process (the repository root in the README's commands).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OFFBEAT_", env_file=".env", extra="ignore", env_ignore_empty=True)

    # Transport
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis server the job queues live on")
    queue_name: str = Field("audio_analysis_queue", description="list the application pushes jobs to")
    results_queue_name: str = Field("audio_results_queue", description="list results are pushed to")
    worker_concurrency: int = Field(1, ge=1, description="jobs one worker analyzes at once")
    worker_lease_sec: float = Field(
        30.0, gt=0, description="a worker that has not renewed its lease for this long is gone; its jobs are recovered"
    )
    shutdown_grace_sec: float = Field(
        30.0, ge=0, description="on SIGINT/SIGTERM, how long running jobs may finish before they are handed back"
    )
    redis_retry_max_sec: float = Field(30.0, gt=0, description="longest wait between reconnection attempts to Redis")

    # Files
    shared_mount_path: Path = Field(Path("shared"), description="root that job paths are resolved under")
    local_exports_path: Path = Field(
        Path("exports"),
        description="where stems and other exports go for files analyzed from outside the shared mount",
    )
    artifact_store: str = Field("artifacts", description="Zarr store root: a local path or an fsspec URL")
    artifact_index_path: Path | None = Field(
        None, description="diskcache folder for the store index and ledger; default <artifact_store>/index"
    )

    # Decoding
    sample_rate: int = Field(44100, description="rate of the stored stereo PCM (Spleeter expects 44.1 kHz)")
    analysis_sample_rate: int = Field(22050, description="rate of the mono analysis copy")
    decode_block_sec: float = Field(10.0, gt=0, description="seconds per streamed block and Zarr chunk")
    ffmpeg_path: str = Field("ffmpeg", description="ffmpeg binary for containers libsndfile cannot read")
    min_audio_sec: float = Field(1.0, ge=0, description="shorter audio is refused as audio_too_short")

    # Trimming and segmentation
    silence_threshold_db: float = Field(-60.0, description="frame RMS (dBFS) at or below this is silence")
    min_track_sec: float = Field(60.0, gt=0, description="shortest track the segmenter reports")
    cue_snap_tolerance_sec: float = Field(
        20.0, ge=0, description="a cue hint moves to a detected boundary this close, else stays where it is"
    )

    # Stem separation
    spleeter_model: Literal["2stems", "4stems"] = Field("2stems", description="Spleeter model for stems")
    model_dir: Path = Field(Path("models"), description="folder holding <model>/ checkpoints (MODEL_PATH)")
    separation_chunk_sec: float = Field(
        60.0, gt=0, description="audio per Spleeter call, rounded to whole 11.9 s model segments (memory vs speed)"
    )
    separation_threads: int = Field(
        0,
        ge=0,
        description="TensorFlow threads inside each separation op; 0: one per CPU core. Ops run one at a time",
    )
    separation_crossfade_sec: float = Field(
        1.0, ge=0, le=11, description="cross-fade length at each join between separation chunks"
    )
    stem_subtype: str = Field("PCM_24", description="libsndfile subtype of exported stem WAV files")

    @property
    def index_path(self) -> Path:
        if self.artifact_index_path is not None:
            return self.artifact_index_path
        if "://" in self.artifact_store:
            return Path.home() / ".cache" / "offbeat" / "index"
        return Path(self.artifact_store) / "index"


def env_example() -> str:
    """The text of `.env.example`: every setting with its meaning and default."""
    lines = [
        "# Settings of The Offbeat Engine. Copy to .env (or export) and change what you need;",
        "# every default below works on a fresh machine. Relative paths resolve against the working directory.",
        "# Empty values are ignored (the default applies). Regenerate with `offbeat config --example`.",
        "",
    ]
    for name, field in Settings.model_fields.items():
        default = "" if field.default is None else field.default
        lines += [f"# {field.description}", f"OFFBEAT_{name.upper()}={default}", ""]
    return "\n".join(lines)


@lru_cache(maxsize=1)
def _from_environment() -> Settings:
    return Settings()


_OVERRIDE: ContextVar[Settings | None] = ContextVar("offbeat_settings_override", default=None)


def get_settings() -> Settings:
    """Settings read once per process (tests that change the environment call `get_settings.cache_clear()`),
    or the override in effect for this run (`overridden`)."""
    return _OVERRIDE.get() or _from_environment()


get_settings.cache_clear = _from_environment.cache_clear  # type: ignore[attr-defined]


@contextmanager
def overridden(**changes: Any) -> Iterator[Settings]:
    """Settings with `changes` for the code run inside, e.g. one flow run's model; Prefect copies the
    context into the task threads it starts, so every stage of that run sees the same settings."""
    changed = get_settings().model_copy(update={k: v for k, v in changes.items() if v is not None})
    token = _OVERRIDE.set(changed)
    try:
        yield changed
    finally:
        _OVERRIDE.reset(token)
