"""The analysis stages between the store and the pure audio functions, without Prefect.

Each stage has a version (bump it when its output changes) and the parameters that shape its output;
both go into the entry key with the keys of the entries it reads, so a change recomputes the stage and
whatever depends on it, and nothing else. Flows call `run_stage`, which reads the entry back when it
exists and computes it otherwise.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf
import soxr

from offbeat import __version__, audio, features, rhythm, segmentation, separation
from offbeat.contract import CompletedResult, EngineInfo, GlobalAnalysis, Results, Track, TrackAnalysis
from offbeat.errors import AnalysisError, ErrorCode
from offbeat.settings import Settings
from offbeat.store import ArtifactStore, ChunkAppender, Entry, EntryWriter, entry_key

Progress = Callable[[float], None]


@dataclass(frozen=True)
class StageSpec:
    name: str
    version: int
    upstream: tuple[str, ...]
    params: Callable[[Settings], dict[str, Any]]


def _rhythm_params(s: Settings) -> dict[str, Any]:
    return {
        "n_fft": rhythm.N_FFT, "hop": rhythm.HOP, "chroma": [rhythm.CHROMA_N_FFT, rhythm.CHROMA_HOP],
        "n_mels": rhythm.N_MELS, "low_band_hz": rhythm.LOW_BAND_HZ,
        "bpm": [rhythm.BPM_MIN, rhythm.BPM_MAX, rhythm.BPM_STEP], "prior": rhythm.TEMPO_PRIOR_BPM,
        "jump_cost": rhythm.TEMPO_JUMP_COST, "sublevel": rhythm.SUBLEVEL_DISCOUNT,
        "threshold_db": s.silence_threshold_db,
    }  # fmt: skip


STAGES: dict[str, StageSpec] = {
    spec.name: spec
    for spec in (
        StageSpec(
            "decode",
            2,  # 2: audio stored as 24-bit fixed point
            (),
            lambda s: {
                "sample_rate": s.sample_rate,
                "analysis_sample_rate": s.analysis_sample_rate,
                "block_sec": s.decode_block_sec,
            },
        ),
        StageSpec(
            "trim", 1, ("decode",), lambda s: {"threshold_db": s.silence_threshold_db, "frame": audio.TRIM_FRAME}
        ),
        StageSpec("beats", 2, ("decode", "trim"), _rhythm_params),
        StageSpec(
            "separate",
            2,  # 2: stems stored as 24-bit fixed point
            ("decode",),
            lambda s: {"model": s.spleeter_model, "chunk_segments": chunk_segments(s), "crossfade": crossfade(s)},
        ),
        StageSpec(
            "drum_beats",
            1,
            ("separate", "beats", "trim"),
            lambda s: {**_rhythm_params(s), "hpss": [rhythm.HPSS_KERNEL, rhythm.HPSS_MEL_KERNEL]},
        ),
        StageSpec(
            "segment",
            3,  # 3: stores the novelty curve
            ("beats", "trim"),
            lambda s: {
                "min_track_sec": s.min_track_sec,
                "cue_tolerance": s.cue_snap_tolerance_sec,
                "window": segmentation.NOVELTY_WINDOW_SEC,
                "prominence": segmentation.PEAK_PROMINENCE,
            },
        ),
        StageSpec(
            "track_features",
            1,
            ("segment", "beats", "drum_beats", "separate"),
            lambda s: {
                "vocal": [features.VOCAL_RATIO, features.VOCAL_FRACTION],
                "bass_hz": features.BASS_CUTOFF_HZ,
                "threshold_db": s.silence_threshold_db,
            },
        ),
    )
}


def chunk_segments(settings: Settings) -> int:
    return max(1, round(settings.separation_chunk_sec * settings.sample_rate / separation.SEGMENT))


def crossfade(settings: Settings) -> int:
    return int(settings.separation_crossfade_sec * settings.sample_rate)


# The stages by name, for flow parameters (the Prefect UI offers them as choices); equals STAGES' keys.
StageName = Literal["decode", "trim", "beats", "separate", "drum_beats", "segment", "track_features"]


def dependents(names: set[str]) -> set[str]:
    """The named stages and every stage that reads from them, directly or not."""
    result = set(names)
    changed = True
    while changed:
        changed = False
        for spec in STAGES.values():
            if spec.name not in result and result.intersection(spec.upstream):
                result.add(spec.name)
                changed = True
    return result


@dataclass(frozen=True)
class StageRef:
    """What tasks hand each other: a reference to a stored entry, never the arrays themselves."""

    stage: str
    key: str
    source: str  # content digest of the source file
    cached: bool
    seconds: float
    outputs: dict[str, str] = field(default_factory=dict)  # files a stage wrote outside the store


def combined(name: str, refs: list[StageRef]) -> StageRef:
    """One reference standing for a mapped stage's runs (one per track): its key digests theirs."""
    source = refs[0].source if refs else ""
    key = entry_key(source, name, STAGES[name].version, {}, {str(i): r.key for i, r in enumerate(refs)})
    return StageRef(name, key, source, all(r.cached for r in refs), sum(r.seconds for r in refs))


def stage_key(
    name: str, source: str, settings: Settings, upstream: Mapping[str, str], inputs: Mapping[str, Any] | None = None
) -> str:
    """The entry key of stage `name` for a source, given its inputs' keys (by stage name)."""
    spec = STAGES[name]
    params = {**spec.params(settings), **(inputs or {})}
    return entry_key(source, name, spec.version, params, {u: upstream[u] for u in spec.upstream})


def current_keys(store: ArtifactStore, source: str, settings: Settings) -> dict[str, str]:
    """The keys a run without cue hints would use now, stage by stage; per-track keys (`track_features:<i>`)
    once the segment entry exists to tell how many tracks there are."""
    keys: dict[str, str] = {}
    for name in ("decode", "trim", "beats", "separate", "drum_beats", "segment"):
        keys[name] = stage_key(name, source, settings, keys, {"cues": []} if name == "segment" else None)
    segment = store.get(keys["segment"])
    for index in range(len(segment.attrs["starts"]) if segment is not None else 0):
        keys[f"track_features:{index}"] = stage_key("track_features", source, settings, keys, {"track": index})
    return keys


def run_stage(
    store: ArtifactStore,
    name: str,
    source: str,
    settings: Settings,
    upstream: Mapping[str, StageRef],
    compute: Callable[[EntryWriter], None],
    *,
    refresh: bool = False,
    inputs: Mapping[str, Any] | None = None,
) -> StageRef:
    """Read the stage's entry back, or compute and commit it (always, when `refresh`).

    `inputs` are job-specific parameters (cue hints, the track index) that shape the output.
    """
    started = time.perf_counter()
    key = stage_key(name, source, settings, {stage: ref.key for stage, ref in upstream.items()}, inputs)
    if refresh:
        store.invalidate(key)
    elif store.get(key) is not None:
        return StageRef(name, key, source, True, time.perf_counter() - started)
    try:
        with store.write(key, name, source=source) as writer:
            compute(writer)
    except AnalysisError as exc:
        exc.stage = exc.stage or name
        raise
    return StageRef(name, key, source, False, time.perf_counter() - started)


def read(store: ArtifactStore, ref: StageRef) -> Entry:
    """The entry behind a reference; losing it between stages is an internal (retryable) fault."""
    entry = store.get(ref.key)
    if entry is None:
        raise AnalysisError(
            ErrorCode.INTERNAL,
            f"stored {ref.stage} output {ref.key} vanished",
            stage=ref.stage,
            retryable=True,
        )
    return entry


# -- decode -----------------------------------------------------------------------------------------


def compute_decode(writer: EntryWriter, path: Path, settings: Settings, progress: Progress | None = None) -> None:
    """Stream the file into 44.1 kHz stereo and analysis-rate mono arrays, one chunk at a time."""
    info = audio.probe(path, settings.ffmpeg_path)
    if info.duration_sec is not None:
        check_duration(info.duration_sec, settings)
    sr, ar = settings.sample_rate, settings.analysis_sample_rate
    stereo = writer.create_array(
        "stereo", shape=(0, 2), dtype="float32", chunks=(int(settings.decode_block_sec * sr), 2), audio=True
    )
    mono = writer.create_array(
        "mono", shape=(0,), dtype="float32", chunks=(int(settings.decode_block_sec * ar),), audio=True
    )
    stereo_out, mono_out = ChunkAppender(stereo), ChunkAppender(mono)
    expected = info.frames * sr / info.sample_rate if info.frames else None
    done = 0
    for stereo_block, mono_block in audio.decode_blocks(
        path,
        info,
        sample_rate=sr,
        analysis_rate=ar,
        block_sec=settings.decode_block_sec,
        ffmpeg=settings.ffmpeg_path,
    ):
        stereo_out.append(stereo_block)
        mono_out.append(mono_block)
        done += len(stereo_block)
        if progress is not None and expected:
            progress(min(1.0, done / expected))
    stereo_out.close()
    mono_out.close()
    duration = stereo.shape[0] / sr
    check_duration(duration, settings)
    writer.attrs.update(source=info.as_dict(), duration_sec=duration, sample_rate=sr, analysis_sample_rate=ar)


def check_duration(duration_sec: float, settings: Settings) -> None:
    if duration_sec < settings.min_audio_sec:
        raise AnalysisError(
            ErrorCode.AUDIO_TOO_SHORT,
            f"audio is {duration_sec:.2f} s long; at least {settings.min_audio_sec:g} s is needed",
            stage="decode",
        )


# -- trim -------------------------------------------------------------------------------------------


def compute_trim(writer: EntryWriter, decoded: Entry, settings: Settings) -> None:
    """Leading and trailing silence, from frame levels of the mono copy read in bounded blocks."""
    mono = decoded["mono"]
    rate = decoded.attrs["analysis_sample_rate"]
    step = audio.TRIM_FRAME * 4096  # ~95 s per read at 22.05 kHz, a whole number of frames
    levels = np.concatenate(
        [audio.frame_levels_db(mono[i : i + step], audio.TRIM_FRAME) for i in range(0, mono.shape[0], step)]
        or [np.zeros(0, np.float32)]
    )
    bounds = audio.silence_bounds(
        levels, settings.silence_threshold_db, audio.TRIM_FRAME / rate, decoded.attrs["duration_sec"]
    )
    if bounds is None:
        raise AnalysisError(
            ErrorCode.SILENT_AUDIO,
            f"the audio is silent: no part rises above {settings.silence_threshold_db:g} dBFS",
            stage="trim",
        )
    writer.attrs.update(trimmed_start_sec=bounds[0], trimmed_end_sec=bounds[1])


# -- assemble ---------------------------------------------------------------------------------------


def assemble(
    job_id: int, refs: Mapping[str, StageRef], entries: Mapping[str, Entry], tracks: list[Entry]
) -> CompletedResult:
    """The completed result document from the stage entries; timestamps in original-file seconds."""
    segment = entries["segment"].attrs
    decoded, trimmed = entries["decode"], entries["trim"]
    analysis_id = entry_key(
        refs["decode"].source, "analysis", 1, {}, {name: ref.key for name, ref in sorted(refs.items())}
    )
    curve = entries["beats"]["bpm_curve"][...]
    return CompletedResult(
        job_id=job_id,
        results=Results(
            global_=GlobalAnalysis(
                duration_sec=round(decoded.attrs["duration_sec"], 3),
                trimmed_start_sec=trimmed.attrs["trimmed_start_sec"],
                trimmed_end_sec=trimmed.attrs["trimmed_end_sec"],
                global_beat_grid_timestamps=np.round(entries["beats"]["beats"][...], 3).tolist(),
                global_drum_beat_grid_timestamps=np.round(entries["drum_beats"]["beats"][...], 3).tolist(),
                bpm_curve=[None if np.isnan(v) else round(float(v), 2) for v in curve],
                stems=refs["export_stems"].outputs,
            ),
            tracks=[
                Track(
                    track_id=i,
                    title=segment["titles"][i],
                    start_time_sec=segment["starts"][i],
                    end_time_sec=segment["ends"][i],
                    transition_in=_window(segment, i - 1),
                    transition_out=_window(segment, i),
                    analysis=TrackAnalysis(**track.attrs["analysis"]),
                )
                for i, track in enumerate(tracks)
            ],
        ),
        engine=EngineInfo(
            version=__version__,
            analysis_id=analysis_id,
            timings_sec={name: round(ref.seconds, 4) for name, ref in refs.items()},
            cached_stages=[name for name, ref in refs.items() if ref.cached],
        ),
    )


def _window(segment: Mapping[str, Any], boundary: int) -> list[float] | None:
    """[start, end] of the transition at boundary `boundary` (between tracks boundary and boundary + 1)."""
    if not 0 <= boundary < len(segment["transition_starts"]):
        return None
    return [segment["transition_starts"][boundary], segment["transition_ends"][boundary]]


# -- blocks -----------------------------------------------------------------------------------------

FRAMES_PER_BLOCK = 4096  # ~95 s of analysis frames per block


def read_padded(array: Any, start: int, stop: int) -> np.ndarray:
    """array[start:stop] along the first axis, zero-filled where the range leaves the array."""
    n = array.shape[0]
    data = array[max(0, start) : max(0, min(n, stop))]
    before, after = max(0, -start), max(0, stop - max(n, start))
    if before or after:
        data = np.pad(data, [(before, after)] + [(0, 0)] * (data.ndim - 1))
    return data


def blocks(array: Any, start: float, stop: float, step: int | None = None) -> Iterator[np.ndarray]:
    """array[int(start):int(stop)] `step` items (default: one stored chunk) at a time."""
    step = step or array.chunks[0]
    for first in range(int(start), int(stop), step):
        yield array[first : min(int(stop), first + step)]


def frame_blocks(array: Any) -> Iterator[tuple[np.ndarray, slice]]:
    """(samples, keep) per block of analysis frames: the samples cover the block's frames plus
    BLOCK_CONTEXT frames each side, and `keep` picks the block's own frames from the result."""
    total = rhythm.frame_count(array.shape[0])
    ctx = rhythm.BLOCK_CONTEXT
    for first in range(0, total, FRAMES_PER_BLOCK):
        last = min(total, first + FRAMES_PER_BLOCK)
        samples = read_padded(array, (first - ctx) * rhythm.HOP, (last + ctx - 1) * rhythm.HOP + rhythm.N_FFT)
        yield samples, slice(ctx, ctx + last - first)


def chroma_slice(keep: slice) -> slice:
    """The chroma frames of a block whose analysis frames are `keep` (blocks start on the chroma grid)."""
    first = keep.start // rhythm.CHROMA_STEP
    return slice(first, first + -(-(keep.stop - keep.start) // rhythm.CHROMA_STEP))


def _music_bounds(decoded: Entry, trimmed: Entry) -> tuple[float, float]:
    duration = decoded.attrs["duration_sec"]
    return trimmed.attrs["trimmed_start_sec"], duration - trimmed.attrs["trimmed_end_sec"]


# -- beats ------------------------------------------------------------------------------------------


def compute_beats(
    writer: EntryWriter, decoded: Entry, trimmed: Entry, settings: Settings, progress: Progress | None = None
) -> None:
    """Frame envelopes (one STFT pass, stored for later stages), tempo curve, beat grid and BPM curve."""
    mono, sr = decoded["mono"], decoded.attrs["analysis_sample_rate"]
    chunk = 1 << 16
    out = {
        name: ChunkAppender(writer.create_array(name, shape=(0, *tail), dtype="float32", chunks=(chunk, *tail)))
        for name, tail in (("onset", ()), ("onset_low", ()), ("rms", ()), ("centroid", ()), ("chroma", (12,)))
    }
    total = rhythm.frame_count(mono.shape[0])
    for done, (samples, keep) in enumerate(frame_blocks(mono), start=1):
        features = rhythm.frame_features(samples, sr).sliced(keep)
        for name in features.__dataclass_fields__:
            out[name].append(getattr(features, name))
        out["chroma"].append(rhythm.chroma_frames(samples, sr)[chroma_slice(keep)])
        if progress is not None:
            progress(min(1.0, done * FRAMES_PER_BLOCK / total))
    for appender in out.values():
        appender.close()

    onset_low = writer.array("onset_low")[...]
    rms_db = 20 * np.log10(np.maximum(writer.array("rms")[...], 1e-10))
    fps = sr / rhythm.HOP
    seconds = int(np.ceil(decoded.attrs["duration_sec"]))
    frame_second = np.minimum((np.arange(len(rms_db)) / fps).astype(int), seconds - 1)
    loudest = np.full(seconds, -np.inf)
    np.maximum.at(loudest, frame_second, rms_db)
    voiced = loudest > settings.silence_threshold_db
    salience = rhythm.tempo_salience(rhythm.upsample(onset_low), fps * rhythm.UPSAMPLE)[:seconds]
    tempo = rhythm.tempo_curve(salience, voiced)
    start, end = _music_bounds(decoded, trimmed)
    beats = rhythm.beat_times(onset_low, sr, tempo, start, end)
    curve = rhythm.bpm_from_beats(beats, seconds)
    curve[~voiced] = np.nan
    writer.put_array("tempo", tempo.astype(np.float32))
    writer.put_array("beats", beats.astype(np.float64))
    writer.put_array("bpm_curve", curve)
    writer.attrs.update(
        frame_rate=fps,
        frame_offset_sec=rhythm.frame_time_offset(sr),
        frames=total,
        chroma_rate=fps / rhythm.CHROMA_STEP,
    )


# -- separate ---------------------------------------------------------------------------------------


def compute_separate(writer: EntryWriter, decoded: Entry, settings: Settings, progress: Progress | None = None) -> None:
    """Stems of the 44.1 kHz stereo audio (and an analysis-rate mono copy of each), chunk by chunk."""
    stereo = decoded["stereo"]
    sr, ar = decoded.attrs["sample_rate"], decoded.attrs["analysis_sample_rate"]
    model = settings.spleeter_model
    names = separation.STEMS[model]
    block = int(settings.decode_block_sec * sr)
    full = {
        n: ChunkAppender(writer.create_array(n, shape=(0, 2), dtype="float32", chunks=(block, 2), audio=True))
        for n in names
    }
    mono_chunk = int(settings.decode_block_sec * ar)
    mono = {
        n: ChunkAppender(
            writer.create_array(f"{n}_mono", shape=(0,), dtype="float32", chunks=(mono_chunk,), audio=True)
        )
        for n in names
    }
    resamplers = {n: soxr.ResampleStream(sr, ar, 1, dtype="float32", quality="HQ") for n in names}
    for stems in separation.separate_chunked(
        lambda a, b: stereo[a:b],
        stereo.shape[0],
        model,
        settings.model_dir,
        chunk_segments=chunk_segments(settings),
        crossfade=crossfade(settings),
        threads=settings.separation_threads,
        progress=progress,
    ):
        for name, data in stems.items():
            full[name].append(data)
            mono[name].append(resamplers[name].resample_chunk(audio.to_mono(data)))
    for name in names:
        full[name].close()
        mono[name].append(resamplers[name].resample_chunk(np.zeros(0, np.float32), last=True))
        mono[name].close()
    writer.attrs.update(model=model, stems=list(names), sample_rate=sr, analysis_sample_rate=ar)


# -- drum beats -------------------------------------------------------------------------------------


def compute_drum_beats(
    writer: EntryWriter, stems: Entry, beats: Entry, decoded: Entry, trimmed: Entry, settings: Settings
) -> None:
    """Beat grid of the drums: the drums stem where the model has one, else the percussive part of the
    accompaniment. It follows the global tempo curve, so both grids agree on the metrical level."""
    sr = stems.attrs["analysis_sample_rate"]
    if "drums" in stems.attrs["stems"]:
        stem, onset_of, source = "drums", rhythm.drum_onset, "drums stem"
    else:
        stem, onset_of, source = "accompaniment", rhythm.percussive_onset, "percussive part of the accompaniment"
    array = stems[f"{stem}_mono"]
    envelope = np.concatenate([onset_of(samples, sr)[keep] for samples, keep in frame_blocks(array)])
    start, end = _music_bounds(decoded, trimmed)
    times = rhythm.beat_times(envelope, sr, beats["tempo"][...], start, end)
    writer.put_array("beats", times.astype(np.float64))
    writer.attrs.update(source=source)


# -- export -----------------------------------------------------------------------------------------


def export_stems(
    store: ArtifactStore, stems: Entry, folder: Path, settings: Settings, *, rewrite: bool = False
) -> tuple[dict[str, Path], bool]:
    """Write each stem as a WAV file in `folder`, atomically; returns the files and whether all were reused.

    Unless `rewrite`, files that already hold this entry's stems (same entry key, size and modification
    time as when written) are left alone."""
    folder.mkdir(parents=True, exist_ok=True)
    sr = stems.attrs["sample_rate"]
    written: dict[str, Path] = {}
    reused = True
    for name in stems.attrs["stems"]:
        path = folder / f"{name}.wav"
        memo = f"export:{path.resolve()}"
        record = store.index.get(memo)
        if record is not None and path.exists() and not rewrite:
            stat = path.stat()
            if record == {"entry": stems.key, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}:
                written[name] = path
                continue
        reused = False
        tmp = folder / f".{name}.{uuid.uuid4().hex[:8]}.wav.tmp"
        try:
            array = stems[name]
            with sf.SoundFile(
                str(tmp), "w", samplerate=sr, channels=2, subtype=settings.stem_subtype, format="WAV"
            ) as fh:
                step = array.chunks[0]
                for first in range(0, array.shape[0], step):
                    fh.write(np.clip(array[first : first + step], -1.0, 1.0))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        stat = path.stat()
        store.index.set(memo, {"entry": stems.key, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
        written[name] = path
    return written, reused


# -- segment ----------------------------------------------------------------------------------------


def compute_segment(
    writer: EntryWriter,
    beats: Entry,
    decoded: Entry,
    trimmed: Entry,
    settings: Settings,
    cues: list[tuple[str, float]] | None = None,
) -> None:
    """Track boundaries from novelty; with cue hints, one track per cue, snapped to nearby boundaries."""
    rate = beats.attrs["frame_rate"]
    seconds = beats["tempo"].shape[0]
    chroma = segmentation.per_second(beats["chroma"][...], beats.attrs["chroma_rate"], seconds)
    centroid, rms, onset = (
        segmentation.per_second(beats[n][...], rate, seconds)[:, 0] for n in ("centroid", "rms", "onset")
    )
    described = segmentation.describe(chroma, centroid, rms, onset, beats["tempo"][...])
    start, end = _music_bounds(decoded, trimmed)
    curve = segmentation.novelty(described, segmentation.novelty_window(settings.min_track_sec))
    writer.put_array("novelty", curve.astype(np.float32))
    found, left, right = segmentation.find_boundaries(curve, start, end, settings.min_track_sec)
    titles: list[str | None]
    if cues:
        ordered = sorted(cues, key=lambda cue: cue[1])
        times = np.array([t for _, t in ordered[1:]], dtype=float)  # the first cue starts the music
        bounds = segmentation.snap_cues(times, found, settings.cue_snap_tolerance_sec)
        # A snapped cue takes its boundary's transition window; one kept as given has none (zero width).
        match = {float(b): (float(lo), float(hi)) for b, lo, hi in zip(found, left, right, strict=True)}
        windows = np.array([match.get(float(b), (b, b)) for b in bounds]).reshape(-1, 2)
        segments = segmentation.segments_from_boundaries(bounds, (windows[:, 0], windows[:, 1]), start, end)
        titles = [title for title, _ in ordered][: len(segments.starts)]
    else:
        segments = segmentation.segments_from_boundaries(found, (left, right), start, end)
        titles = [None] * len(segments.starts)
    writer.attrs.update(
        starts=np.round(segments.starts, 3).tolist(),
        ends=np.round(segments.ends, 3).tolist(),
        transition_starts=np.round(segments.transition_starts, 3).tolist(),
        transition_ends=np.round(segments.transition_ends, 3).tolist(),
        titles=titles,
        detected_boundaries=np.round(found, 3).tolist(),
    )


def steady_part(segment: Entry, index: int) -> tuple[float, float]:
    """A track's span without the transitions into and out of it (the whole span when that leaves < 10 s)."""
    attrs = segment.attrs
    start, end = attrs["starts"][index], attrs["ends"][index]
    lo = attrs["transition_ends"][index - 1] if index > 0 else start
    hi = attrs["transition_starts"][index] if index < len(attrs["ends"]) - 1 else end
    return (lo, hi) if hi - lo >= 10.0 else (start, end)


# -- track features ---------------------------------------------------------------------------------


def compute_track_features(
    writer: EntryWriter,
    index: int,
    segment: Entry,
    beats: Entry,
    drums: Entry,
    stems: Entry,
    decoded: Entry,
    settings: Settings,
    log: Callable[[str], None],
) -> None:
    """Every feature of one track, read from its slice of the stored audio, stems and envelopes."""
    lo, hi = steady_part(segment, index)
    sr, ar, rate = decoded.attrs["sample_rate"], decoded.attrs["analysis_sample_rate"], beats.attrs["frame_rate"]
    frames = slice(int(lo * rate), int(hi * rate))
    floor = 10 ** (settings.silence_threshold_db / 20)
    values: dict[str, Any] = {"duration_sec": round(segment.attrs["ends"][index] - segment.attrs["starts"][index], 3)}
    reasons: dict[str, str] = {}

    def measure(names: tuple[str, ...], work: Callable[[], Any]) -> None:
        try:
            result = work()
            values.update(zip(names, result if len(names) > 1 else (result,), strict=True))
        except features.Unmeasurable as exc:
            values.update(dict.fromkeys(names))
            reasons[names[0]] = str(exc)
            log(f"track {index}: {', '.join(names)} not measured: {exc}")

    drum_times = drums["beats"][...]
    tempo = beats["tempo"][int(lo) : max(int(lo) + 1, int(hi))]
    measure(
        ("stable_bpm", "bpm_confidence"),
        lambda: features.stable_bpm(drum_times[(drum_times >= lo) & (drum_times < hi)], float(np.median(tempo))),
    )

    def key() -> dict[str, Any]:
        chroma_rate = beats.attrs["chroma_rate"]
        found = features.estimate_key(beats["chroma"][int(lo * chroma_rate) : int(hi * chroma_rate)])
        return {"musical": found.musical, "camelot": found.camelot, "confidence": found.confidence}

    measure(("key",), key)
    # Full-rate audio is read a chunk at a time: a track may be as long as the mix.
    measure(("loudness_lufs_total",), lambda: features.loudness(blocks(decoded["stereo"], lo * sr, hi * sr), sr))
    if "bass" in stems.attrs["stems"]:
        bass = blocks(stems["bass"], lo * sr, hi * sr)
    else:
        bass = features.low_band(blocks(stems["accompaniment"], lo * sr, hi * sr), sr)
    measure(("loudness_lufs_bass",), lambda: features.loudness(bass, sr))
    rms = beats["rms"][frames]
    measure(("average_brightness",), lambda: features.brightness(beats["centroid"][frames], rms, floor))

    def frame_rms(array: Any) -> np.ndarray:
        parts = []
        for x in blocks(array, lo * ar, hi * ar, rhythm.HOP * 1024):  # whole frames per read
            x = np.pad(x, (0, -len(x) % rhythm.HOP))
            parts.append(np.sqrt(np.mean(x.reshape(-1, rhythm.HOP) ** 2, axis=1)))
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    measure(
        ("has_vocals", "vocal_energy_rms"),
        lambda: features.vocals(frame_rms(stems["vocals_mono"]), frame_rms(decoded["mono"]), floor),
    )
    writer.attrs.update(analysis=values, unmeasured=reasons, steady=[lo, hi])
