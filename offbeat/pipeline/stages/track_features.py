"""track_features: one track's stable BPM, key, LUFS (total and bass), brightness and vocals, measured on its
steady part from slices of the stored audio, stems and envelopes (mapped: one run per track)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import soxr

from offbeat.dsp import features, key_network, levels, phrases, rhythm
from offbeat.dsp.channels import to_mono
from offbeat.pipeline.blocks import blocks
from offbeat.pipeline.stage import Stage
from offbeat.pipeline.views import FrameGrid, Tracks
from offbeat.settings import Settings
from offbeat.storage import Entry, EntryWriter


def params(s: Settings) -> dict[str, Any]:
    if s.commercial_use:  # no key network (non-commercial licence): the chroma key profiles
        return {"threshold_db": s.silence_threshold_db, "commercial_use": True}
    return {"threshold_db": s.silence_threshold_db}


def compute(
    out: EntryWriter,
    params: dict[str, Any],
    track: int,
    segment: Entry,
    envelopes: Entry,
    beats: Entry,
    separate: Entry,
    decode: Entry,
    log: Callable[[str], None],
) -> None:
    """Every feature of one track, read from its slice of the stored audio, stems and envelopes."""
    tracks, grid = Tracks.of(segment), FrameGrid.of(envelopes)
    lo, hi = tracks.steady_part(track)
    sr, ar = decode.attrs["sample_rate"], decode.attrs["analysis_sample_rate"]
    frames = grid.frames_between(lo, hi)
    floor = levels.amplitude(params["threshold_db"])
    values: dict[str, Any] = {"duration_sec": round(tracks.ends[track] - tracks.starts[track], 3)}
    reasons: dict[str, str] = {}

    def measure(names: tuple[str, ...], work: Callable[[], Any]) -> None:
        try:
            result = work()
            values.update(zip(names, result if len(names) > 1 else (result,), strict=True))
        except features.Unmeasurable as exc:
            values.update(dict.fromkeys(names))
            reasons[names[0]] = str(exc)
            log(f"track {track}: {', '.join(names)} not measured: {exc}")

    times = beats["beats"][...]
    measure(("stable_bpm", "bpm_confidence"), lambda: features.stable_bpm(times[(times >= lo) & (times < hi)]))

    def key() -> dict[str, Any]:
        if params.get("commercial_use"):
            found = features.estimate_key(envelopes["chroma"][grid.chroma_between(lo, hi)])
            return {"musical": found.musical, "camelot": found.camelot, "confidence": found.confidence}
        a, b = key_network.excerpt(lo, hi)
        mono = to_mono(decode["stereo"][int(a * sr) : int(b * sr)])
        if sr != key_network.SAMPLE_RATE:
            mono = soxr.resample(mono, sr, key_network.SAMPLE_RATE)
        found = key_network.estimate_key(mono, envelopes["chroma"][grid.chroma_between(lo, hi)])
        return {"musical": found.musical, "camelot": found.camelot, "confidence": found.confidence}

    measure(("key",), key)
    # Full-rate audio is read a chunk at a time: a track may be as long as the mix.
    measure(("loudness_lufs_total",), lambda: features.loudness(blocks(decode["stereo"], lo * sr, hi * sr), sr))
    if "bass" in separate.attrs["stems"]:
        bass = blocks(separate["bass"], lo * sr, hi * sr)
    else:
        bass = features.low_band(blocks(separate["accompaniment"], lo * sr, hi * sr), sr)
    measure(("loudness_lufs_bass",), lambda: features.loudness(bass, sr))
    rms = envelopes["rms"][frames]
    measure(("average_brightness",), lambda: features.brightness(envelopes["centroid"][frames], rms, floor))

    def frame_rms(array: Any) -> np.ndarray:
        """Frame RMS on the envelopes' frame grid (HOP), read whole frames at a time."""
        parts = [levels.frame_rms(x, rhythm.HOP) for x in blocks(array, lo * ar, hi * ar, rhythm.HOP * 1024)]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    measure(
        ("has_vocals", "vocal_energy_rms"),
        lambda: features.vocals(frame_rms(separate["vocals_mono"]), frame_rms(decode["mono"]), floor),
    )
    values.update(_bars(tracks, track, envelopes, beats))
    out.attrs.update(analysis=values, unmeasured=reasons, steady=[lo, hi])


def _bars(tracks: Tracks, track: int, envelopes: Entry, beats: Entry) -> dict[str, Any]:
    """First downbeat, phrase starts and sections over the whole track (its blends included: a DJ cues
    the incoming track from its first bar)."""
    start, end = tracks.starts[track], tracks.ends[track]
    downbeats = beats["downbeats"][...]
    downbeats = downbeats[(downbeats >= start) & (downbeats < end)]
    if len(downbeats) == 0:
        return {"first_downbeat_sec": None, "phrase_starts_sec": None, "sections": None}
    rate = FrameGrid.of(envelopes).frame_rate
    rms = envelopes["rms"][int(start * rate) : int(end * rate)]
    frame_times = start + np.arange(len(rms)) / rate
    times, strength = beats["beats"][...], beats["beat_strength"][...]
    starts = phrases.phrase_starts(downbeats, 8)
    level = phrases.per_phrase(levels.db(rms), frame_times, starts, end)
    drums = phrases.per_phrase(strength, times, starts, end)
    return {
        "first_downbeat_sec": round(float(downbeats[0]), 3),
        "phrase_starts_sec": {
            str(bars): np.round(phrases.phrase_starts(downbeats, bars), 3).tolist() for bars in phrases.PHRASE_BARS
        },
        "sections": [
            {"label": label, "start_time_sec": round(a, 3), "end_time_sec": round(b, 3)}
            for label, a, b in phrases.sections(downbeats, end, level, drums)
        ],
    }


STAGE = Stage("track_features", 5, compute, params, mapped_over="segment")
