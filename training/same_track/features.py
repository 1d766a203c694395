"""Log-mel spectrograms of every track (`offbeat.dsp.same_track.log_mel`, the function the engine's inference
reads), computed once per track into a cache of ``.npz`` files beside the packages. A run stopped halfway keeps
what it wrote and the next one computes only the rest; a changed feature definition (FEATURE_VERSION, or the
mel constants) gets new files.

Usage: ``python -m training.same_track.features [--cache DIR]``
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from offbeat.dsp import same_track as st
from training.same_track import sources

FEATURE_VERSION = 1
MAX_TRACK_SEC = 480.0  # only the first 8 minutes of a longer file: its length adds little the first part lacks


def decode(files: tuple[Path, ...], max_sec: float = MAX_TRACK_SEC) -> np.ndarray:
    """The files summed (a song's stems) as one mono signal at the analysis rate, at most `max_sec` long."""
    total: np.ndarray | None = None
    for path in files:
        with sf.SoundFile(str(path)) as fh:
            x = fh.read(frames=int(max_sec * fh.samplerate), dtype="float32", always_2d=True).mean(axis=1)
            sr = fh.samplerate
        if sr != st.SAMPLE_RATE:
            x = soxr.resample(x, sr, st.SAMPLE_RATE, quality="HQ").astype(np.float32)
        if total is None:
            total = x
        else:
            n = max(len(total), len(x))
            total = np.pad(total, (0, n - len(total))) + np.pad(x, (0, n - len(x)))
    return total if total is not None else np.zeros(0, np.float32)


def cache_path(cache: Path, track: sources.Track) -> Path:
    """Where a track's spectrogram lies: named by its key and everything that defines the features."""
    spec = f"{track.key}|{FEATURE_VERSION}|{st.SAMPLE_RATE}|{st.N_FFT}|{st.HOP}|{st.N_MELS}|{st.FMAX}|{MAX_TRACK_SEC}"
    return cache / "same-track-mel" / f"{hashlib.sha1(spec.encode()).hexdigest()[:16]}.npz"


def compute(cache: Path, track: sources.Track) -> Path:
    """The track's (N_MELS, frames) dB spectrogram as float16, written once (atomically: a stopped run leaves
    no half file)."""
    path = cache_path(cache, track)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    mel = st.log_mel(decode(track.files)).astype(np.float16)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, mel=mel, key=track.key, split=track.split, package=track.package)
    tmp.replace(path)
    return path


def load(cache: Path, tracks: list[sources.Track]) -> list[np.ndarray]:
    """Each track's cached spectrogram, in order (all must have been computed)."""
    return [np.load(cache_path(cache, t))["mel"] for t in tracks]


def compute_all(cache: Path, tracks: list[sources.Track], log=print) -> None:  # type: ignore[no-untyped-def]
    """Compute every missing spectrogram, saying how far it got."""
    todo = [t for t in tracks if not cache_path(cache, t).exists()]
    start = time.monotonic()
    for i, track in enumerate(todo, 1):
        compute(cache, track)
        if i % 10 == 0 or i == len(todo):
            log(f"features: {i}/{len(todo)} computed ({time.monotonic() - start:.0f} s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.same_track.features", description=__doc__)
    parser.add_argument("--cache", type=Path, default=sources.DEFAULT_CACHE)
    args = parser.parse_args(argv)
    tracks = sources.tracks(sources.fetch(args.cache))
    compute_all(args.cache, tracks, log=lambda m: print(m, file=sys.stderr, flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
