"""Verification of each chart's beat truth against the audio: offsets, drift, pulse, bar phase; cached."""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.corpus.recorded.audio import (
    AN_HOP,
    AN_SR,
    SAMPLE_RATE,
    best_offset,
    detector_latency,
    frame_times,
    grid_score,
    load_audio,
    mel_onsets,
    spectral_flux,
)
from bench.corpus.recorded.sources import Song
from bench.corpus.recorded.tempo import beat_grid

VERIFY_VERSION = 5  # bump when the verification changes, so cached figures are recomputed
_SEARCH_MS = (-60.0, 100.0)  # plausible chart latency; an optimum on the edge means the map does not fit
_LOCAL_WIN_SEC = 20.0
_LOCAL_SEARCH_MS = 40.0


def _chroma_change(mono: np.ndarray, times: np.ndarray, half: float) -> float:
    """Mean distance between the chroma of the beat after and the beat before each time: harmony moves on bars."""
    import librosa

    hop = 512
    # tuning fixed at A440, as the engine's chroma has it: librosa's tuning estimate (piptrack's numba localmax)
    # crashed the process with a segmentation fault on this environment.
    chroma = librosa.feature.chroma_stft(y=mono, sr=AN_SR, n_fft=4096, hop_length=hop, tuning=0.0)
    w = max(1, int(half * AN_SR / hop))
    vals = []
    for t in times:
        i = round(t * AN_SR / hop)
        if i - w >= 0 and i + w <= chroma.shape[1]:
            vals.append(float(np.linalg.norm(chroma[:, i : i + w].mean(1) - chroma[:, i - w : i].mean(1))))
    return float(np.mean(vals)) if vals else 0.0


def verify_song(song: Song, audio: np.ndarray, latency: dict[str, float]) -> dict[str, Any]:
    """Measure how the chart's beat grid sits on the audio; decide whether the map is trusted.

    Figures (all on the charted span): ``offset_ms`` (calibrated best constant shift of the grid), the same from
    a second detector (``offset_mel_ms``), ``local_*`` (best shift in 20 s windows: spread and drift show a
    wrong tempo), ``contrast`` (onset strength on the grid minus its mean over all phases, in std units),
    ``hit25`` (share of beats with one of the two strongest onsets per beat within 25 ms) against
    ``hit25_shifted`` (the same grid moved by a sixteenth note), ``offbeat_*`` (is the half-beat phase stronger,
    i.e. could the grid sit on the off-beats), and the bar-phase evidence for the downbeats.
    """
    import soxr
    from scipy import signal

    mono = soxr.resample(audio.mean(axis=1), SAMPLE_RATE, AN_SR).astype(np.float32)
    flux = spectral_flux(mono)
    low = spectral_flux(mono, 1024, (0.0, 200.0))  # kick band: longer window for frequency resolution
    mel = mel_onsets(mono)
    beats0, down0, meter = beat_grid(song.tmap, song.duration)
    beats0, down0 = beats0 + song.delay_sec, down0 + song.delay_sec
    lo_t, hi_t = song.charted_span()
    sel = (beats0 >= lo_t) & (beats0 <= hi_t - 0.1)
    beats = beats0[sel]
    period = float(np.median(np.diff(beats)))
    lo, hi = _SEARCH_MS[0] / 1000, _SEARCH_MS[1] / 1000
    raw, _ = best_offset(flux, beats, lo, hi)
    raw_mel, _ = best_offset(mel, beats, lo, hi)
    offset = raw - latency["flux"]
    offset_mel = raw_mel - latency["mel"]
    on_edge = min(raw - lo, hi - raw) < 0.002
    phases = np.arange(0.0, period, 0.002)
    all_phase = np.array([grid_score(flux, beats + raw + p) for p in phases])
    peak = grid_score(flux, beats + raw)
    contrast = peak - float(all_phase.mean())

    local_off, local_t = [], []
    for w0 in np.arange(lo_t, hi_t - _LOCAL_WIN_SEC / 2, _LOCAL_WIN_SEC):
        bb = beats[(beats >= w0) & (beats < w0 + _LOCAL_WIN_SEC)]
        if len(bb) < 8:
            continue
        o, sc = best_offset(flux, bb, raw - _LOCAL_SEARCH_MS / 1000, raw + _LOCAL_SEARCH_MS / 1000, 0.001)
        if sc.max() - np.median(sc) < 0.3:  # no clear pulse in this window (break, fade): no evidence either way
            continue
        local_off.append((o - raw) * 1000)
        local_t.append(w0 + _LOCAL_WIN_SEC / 2)
    dev = np.abs(np.array(local_off)) if local_off else np.array([np.inf])
    drift = float(np.polyfit(local_t, local_off, 1)[0] * (hi_t - lo_t)) if len(local_off) >= 3 else math.inf

    # The strongest flux peaks, at most two per beat (scipy rather than librosa.onset.onset_detect, whose numba
    # peak picker crashed with SIGSEGV here), moved by the detector latency, are the audible onsets.
    peaks, _ = signal.find_peaks(flux, distance=max(1, round(0.5 * period * AN_SR / AN_HOP)))
    onsets = frame_times(len(flux))[peaks] - latency["flux"]

    def hit(times: np.ndarray, tol: float = 0.025) -> float:
        idx = np.clip(np.searchsorted(onsets, times), 1, len(onsets) - 1)
        d = np.minimum(np.abs(onsets[idx] - times), np.abs(onsets[idx - 1] - times))
        return float((d <= tol).mean())

    truth = beats + offset
    shifted = [
        max(grid_score(env, beats + raw + period / 2 + d) for d in np.arange(-0.02, 0.0205, 0.001))
        for env in (flux, low)
    ]
    on_beat = [
        grid_score(flux, beats + raw),
        max(grid_score(low, beats + raw + d) for d in np.arange(-0.02, 0.0205, 0.001)),
    ]
    offbeat_wins = shifted[0] > on_beat[0] and shifted[1] > on_beat[1]

    downs = down0[(down0 >= lo_t) & (down0 <= hi_t)] + offset
    chroma_by_phase = [_chroma_change(mono, downs + p * period, period) for p in range(meter)]
    low_by_phase = [grid_score(low, downs + raw - offset + p * period) for p in range(meter)]
    downbeat_ok = int(np.argmax(chroma_by_phase)) == 0 or int(np.argmax(low_by_phase)) == 0

    reasons = []
    if on_edge:
        reasons.append("offset at the edge of the search range")
    if abs(offset - offset_mel) > 0.012:
        reasons.append("detectors disagree on the offset")
    if contrast < 0.3:
        reasons.append("weak pulse on the grid")
    if np.percentile(dev, 90) > 20 or abs(drift) > 20:
        reasons.append("grid drifts against the audio (tempo does not fit)")
    if hit(truth) < 1.5 * hit(truth + period / 4) + 0.05:
        reasons.append("onsets no closer to the grid than to a shifted grid")
    if offbeat_wins:
        reasons.append("off-beats stronger than beats in both full and kick band")
    return {
        "version": VERIFY_VERSION,
        "ok": not reasons,
        "reasons": reasons,
        "offset_ms": round(offset * 1000, 1),
        "offset_mel_ms": round(offset_mel * 1000, 1),
        "contrast": round(contrast, 2),
        "local_windows": len(local_off),
        "local_p90_ms": round(float(np.percentile(dev, 90)), 1),
        "local_drift_ms": round(drift, 1),
        "hit25": round(hit(truth), 3),
        "hit25_shifted": round(hit(truth + period / 4), 3),
        "offbeat_full": [round(on_beat[0], 2), round(shifted[0], 2)],
        "offbeat_kick": [round(on_beat[1], 2), round(shifted[1], 2)],
        "downbeat_ok": bool(downbeat_ok),
        "chroma_by_phase": [round(v, 3) for v in chroma_by_phase],
        "kick_by_phase": [round(v, 2) for v in low_by_phase],
    }


def _song_fingerprint(song: Song) -> str:
    h = hashlib.sha256()
    for path in [song.folder / "notes.mid", song.folder / "song.ini", *song.stems]:
        if path.exists():
            h.update(path.name.encode())
            h.update(str(path.stat().st_size).encode())
    h.update((song.folder / "notes.mid").read_bytes())
    return h.hexdigest()[:16]


def verify_all(songs: list[Song], cache: Path) -> dict[str, float]:
    """Verify every song once (figures cached in the cache dir, keyed by content and version)."""
    path = cache / "verify.json"
    stored: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    latency = stored.get("_latency")
    if not latency or stored.get("_version") != VERIFY_VERSION:
        print("calibrating onset detectors on a synthetic kit ...", file=sys.stderr)
        latency = detector_latency()
        stored = {"_version": VERIFY_VERSION, "_latency": latency}
    for song in songs:
        fp = _song_fingerprint(song)
        entry = stored.get(song.key)
        if not entry or entry.get("fingerprint") != fp or entry.get("version") != VERIFY_VERSION:
            print(f"verifying {song.key} ...", file=sys.stderr)
            entry = verify_song(song, load_audio(song), latency) | {"fingerprint": fp}
            stored[song.key] = entry
            path.write_text(json.dumps(stored, indent=1) + "\n")
        song.verify = entry
    path.write_text(json.dumps(stored, indent=1) + "\n")
    return latency
