"""The one settings object: environment variables with the OFFBEAT_ prefix, optionally from `.env`.

Every default works on a fresh machine with no configuration. Relative paths resolve against `OFFBEAT_HOME`,
never against the working directory: `offbeat analyze ~/mix.mp3` run from any folder finds the same models, store
and exports. The home defaults to the checkout when the package runs from one (where `scripts/setup.sh` puts the
models), else to `$XDG_DATA_HOME/offbeat` (`~/.local/share/offbeat`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    """`OFFBEAT_HOME`, else the checkout this package runs from, else the user's data folder."""
    if os.environ.get("OFFBEAT_HOME"):
        return Path(os.environ["OFFBEAT_HOME"]).expanduser().absolute()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "offbeat" / "settings.py").is_file():
        return checkout
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "offbeat"


# A track library's name: part of index record names and cache keys (the setting, a job's field, the commands).
LIBRARY_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="OFFBEAT_",
        env_file=(str(default_home() / ".env"), ".env"),  # the home's, then the working directory's
        extra="ignore",
        env_ignore_empty=True,
    )

    home: Path | None = Field(
        None,
        description="folder relative paths below resolve against (default: the checkout when run from one, "
        "else $XDG_DATA_HOME/offbeat, i.e. ~/.local/share/offbeat); never the working directory",
    )

    # Transport
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis server the job queues live on")
    queue_name: str = Field("audio_analysis_queue", description="list the application pushes jobs to")
    results_queue_name: str = Field("audio_results_queue", description="list results are pushed to")
    worker_concurrency: int = Field(
        1, ge=1, description="jobs one worker analyzes (in the work-pool listener mode: awaits) at once"
    )
    listener_mode: Literal["in-process", "work-pool"] = Field(
        "in-process",
        description="in-process: the listener analyzes each job in its own process; work-pool: each job becomes a "
        "run of OFFBEAT_ANALYSIS_DEPLOYMENT that Prefect hands to a process worker on any host (shared store and "
        "index needed across hosts)",
    )
    analysis_deployment: str = Field(
        "analyze-mix/analysis", description="the deployment each job runs as in the work-pool listener mode"
    )
    run_start_limit_sec: float = Field(
        600.0,
        gt=0,
        description="work-pool mode: a run a worker took (Pending) that has not started after this long is marked "
        "crashed and run again (its worker died before starting it)",
    )
    worker_lease_sec: float = Field(
        30.0, gt=0, description="a worker that has not renewed its lease for this long is gone; its jobs are recovered"
    )
    shutdown_grace_sec: float = Field(
        30.0, ge=0, description="on SIGINT/SIGTERM, how long running jobs may finish before they are handed back"
    )
    redis_retry_max_sec: float = Field(30.0, gt=0, description="longest wait between reconnection attempts to Redis")
    progress_interval_sec: float = Field(
        0.5, gt=0, description="least time between two writes of one job's progress record (a few a second at most)"
    )
    progress_ttl_sec: float = Field(
        86400.0, gt=0, description="how long a job's final progress record stays readable after its result"
    )
    max_delivery_attempts: int = Field(
        3,
        ge=1,
        description="deliveries of one job message that may end unanswered (its worker died) before it is "
        "answered too_many_attempts and moved to the dead-letter list <queue>:dead",
    )

    # Limits on what a producer may send (each refused with its own error, never retried)
    max_message_bytes: int = Field(1_000_000, gt=0, description="longest job message, in bytes (invalid_job)")
    max_cues: int = Field(1000, ge=0, description="most cue_tracks in one job (invalid_job)")
    max_path_chars: int = Field(1024, gt=0, description="longest job path, in characters (invalid_path)")
    max_audio_sec: float = Field(12 * 3600.0, gt=0, description="longest audio analyzed, in seconds (audio_too_long)")
    min_source_rate: int = Field(
        2000, gt=0, description="lowest sample rate of a source file, in Hz (corrupt_audio below it)"
    )
    max_source_rate: int = Field(
        768_000, gt=0, description="highest sample rate of a source file, in Hz (corrupt_audio above it)"
    )

    # Files
    shared_mount_path: Path = Field(Path("shared"), description="root that job paths are resolved under")
    local_exports_path: Path = Field(
        Path("exports"),
        description="where stems and other exports go for files analyzed from outside the shared mount",
    )
    artifact_store: str = Field(
        "artifacts",
        description="Zarr store root: a local path, or an fsspec URL such as s3://bucket/prefix (S3-compatible "
        "object storage; credentials and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL "
        "or ~/.aws, else store_options). A URL store with an empty index_url is for one host only",
    )
    store_options: dict[str, Any] = Field(
        {},
        description='fsspec storage options of a URL artifact_store, as JSON, e.g. {"endpoint_url": '
        '"http://minio:9000", "key": "...", "secret": "..."} for S3; empty: the standard AWS variables',
    )
    artifact_index_path: Path | None = Field(
        None,
        description="diskcache folder for the store index and ledger; default <artifact_store>/index, or "
        "~/.cache/offbeat/index when artifact_store is a URL",
    )
    index_url: str = Field(
        "",
        description="where the store index (commit records, job ledger, entry leases) lives. Empty: a local "
        "diskcache (artifact_index_path), for one host. redis://host:6379/0?prefix=offbeat:index: in Redis, shared "
        "by every host using the same artifact_store (keys <prefix>:*; the prefix parameter is optional)",
    )
    host_name: str = Field("", description="name of this host in the store's records; default: its host name")
    entry_lease_sec: float = Field(
        60.0,
        gt=0,
        description="a process computing a store entry holds its lease, renewed every third of this; others wait "
        "for its commit, and take over once a lease is not renewed for this long (its holder died)",
    )

    # Decoding
    sample_rate: int = Field(44100, description="rate of the stored stereo PCM (Spleeter expects 44.1 kHz)")
    analysis_sample_rate: int = Field(22050, description="rate of the mono analysis copy")
    decode_block_sec: float = Field(10.0, gt=0, description="seconds per streamed block and Zarr chunk")
    ffmpeg_path: str = Field("ffmpeg", description="ffmpeg binary for containers libsndfile cannot read")
    min_audio_sec: float = Field(1.0, ge=0, description="shorter audio is refused as audio_too_short")

    # Beats
    beat_networks: int = Field(
        4,
        ge=1,
        le=8,
        description="how many of madmom's eight downbeat networks are averaged (run batched: per minute of audio "
        "on one core about 1.3 s of features plus 0.6 s with 1, 0.8 s with 4, 1.5 s with 8 networks); beat F on "
        "the tune corpora 0.866 with 1, 0.885 with 4, 0.891 with 8",
    )
    commercial_use: bool = Field(
        False,
        description="true: analyze without madmom's models, whose licence (CC BY-NC-SA 4.0) forbids commercial use; "
        "beats from an onset-strength activation followed by madmom's DBN tracker (BSD code), bars from chord "
        "changes, keys from the chroma key profiles (README: Licences, with its accuracy against the default)",
    )

    # Trimming and segmentation
    silence_threshold_db: float = Field(-60.0, description="frame RMS (dBFS) at or below this is silence")
    min_track_sec: float = Field(40.0, gt=0, description="shortest track the segmenter reports")
    cue_snap_tolerance_sec: float = Field(
        20.0, ge=0, description="a cue hint moves to a detected boundary this close, else stays where it is"
    )

    # Track identification
    library: str = Field(
        "default",
        pattern=LIBRARY_NAME,
        description="the track library (`offbeat library add`) a mix's tracks are identified against; a job's "
        "`library` field names another",
    )
    library_merge_factor: int = Field(
        10,
        ge=2,
        description="segments of a library's search index (one per `library add`) merge when this many of one size "
        "tier (tracks within a factor of this) are recorded: a library holds at most this many less one per tier, "
        "and each track is rewritten about log(tracks)/log(this) times",
    )
    identify_min_confidence: float = Field(
        0.6,
        ge=0,
        le=1,
        description="a track matched with less confidence (0-1) is reported as not identified (null); 0.6 named "
        "no held-out track in bench.accuracy.identification's tune split",
    )

    # Stem separation
    spleeter_model: Literal["2stems", "4stems"] = Field("2stems", description="Spleeter model for stems")
    model_dir: Path = Field(Path("models"), description="folder holding <model>/ checkpoints (MODEL_PATH)")
    model_release_url: str = Field(
        "https://github.com/deezer/spleeter/releases/download/v1.4.0",
        description="where `offbeat models pull 4stems` downloads <model>.tar.gz: spleeter's v1.4.0 release, or a "
        "mirror serving the same files (the published sha256 is checked either way)",
    )
    separation_chunk_sec: float = Field(
        60.0, gt=0, description="audio per Spleeter call, rounded to whole 11.9 s model segments (memory vs speed)"
    )
    separation_backend: Literal["onnx", "tensorflow"] = Field(
        "onnx",
        description="what runs Spleeter's networks. onnx: onnxruntime on the U-Nets exported beside the checkpoint "
        "at install (CUDA where onnxruntime has it, else CPU; 1.75x TensorFlow's speed on CPU, a third less memory); "
        "tensorflow: Spleeter's own graph, the reference, and the fallback (logged) for a model without an export. "
        "The stems are the same within float rounding (over 120 dB SNR)",
    )
    separation_threads: int = Field(
        0,
        ge=0,
        description="threads inside each separation op (onnxruntime or TensorFlow); 0: one per CPU core. Ops run "
        "one at a time",
    )
    separation_crossfade_sec: float = Field(
        1.0,
        ge=0,
        le=11,
        description="cross-fade length at each join between separation chunks (TensorFlow backend; the onnx "
        "backend's chunks join exactly, without one)",
    )
    stem_band: Literal["full", "11khz", "16khz", "16khz-full"] = Field(
        "full",
        description="frequency band of the stems. full: Spleeter's masks up to 11 kHz, extended above by each "
        "frame's mean mask (mask_extension average), so the stems sum back to the mix; 11khz: stock Spleeter, "
        "nothing above 11 kHz in any stem; 16khz: the same weights over 1536 bins (changes the stems below "
        "11 kHz too), nothing above 16.5 kHz; 16khz-full: 16khz extended above like full",
    )
    stem_format: Literal["wav", "flac"] = Field(
        "wav", description="file format of exported stems: wav, or flac (lossless, about half the size)"
    )
    stem_subtype: str = Field(
        "PCM_24", description="libsndfile sample format of exported stems (PCM_24, PCM_16; FLAC takes no FLOAT)"
    )

    @model_validator(mode="after")
    def _anchored(self) -> Settings:
        """Relative paths resolved against the home, so no setting depends on where a command is run."""
        home = (self.home or default_home()).expanduser().absolute()
        self.home = home
        for name in ("shared_mount_path", "local_exports_path", "model_dir", "artifact_index_path"):
            value = getattr(self, name)
            if value is not None and not value.expanduser().is_absolute():
                setattr(self, name, home / value)
            elif value is not None:
                setattr(self, name, value.expanduser())
        if "://" not in self.artifact_store:
            store = Path(self.artifact_store).expanduser()
            self.artifact_store = str(store if store.is_absolute() else home / store)
        return self

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
        "# every default below works on a fresh machine. Relative paths resolve against OFFBEAT_HOME.",
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
