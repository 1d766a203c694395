"""A library of real and synthetic tracks for the identification benches, decoded once to mono at 11.025 kHz.

Real: the game soundtrack pieces (`bench.corpus.game`) and the recorded songs (`bench.corpus.recorded`, stems
summed). Synthetic: the tracks of `bench.corpus.synthetic` short mixes (45-110 s each), one track per TrackPlan,
even plan seeds in the ``tune`` split and odd ones in ``test``. Every track's audio is cached as a .npy file under
``.bench-store/identification/audio`` and read back memory-mapped, so a rerun decodes nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SR = 11025  # Hz of the cached audio: the fingerprints work at 8 kHz, so this keeps everything up to 5.5 kHz
REPO = Path(__file__).resolve().parents[2]
STORE = REPO / ".bench-store" / "identification"  # in the checkout, wherever the bench is started from
CORPUS_CACHE = REPO / ".corpus-cache"  # the game and recorded corpora's download cache (their --cache default)


@dataclass(frozen=True)
class Track:
    key: str  # "game/<piece key>", "recorded/<song key>" or "synth/<plan seed>/<track index>"
    kind: str  # "game", "recorded" or "synth"
    split: str  # "tune" or "test"
    work: str  # tracks with the same work are versions of one piece (a remaster): identifying either is right
    seconds: float

    @property
    def path(self) -> Path:
        return STORE / "audio" / (self.key.replace("/", "__").replace(" ", "_") + ".npy")

    def audio(self) -> np.ndarray:
        return np.load(self.path, mmap_mode="r")


def _mono(x: np.ndarray, sr: int) -> np.ndarray:
    import soxr

    if x.ndim == 2:
        x = x.mean(axis=1)
    return soxr.resample(np.ascontiguousarray(x, dtype=np.float32), sr, SR).astype(np.float32)


def _save(path: Path, y: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, y)
    tmp.replace(path)


def real_tracks(log=print) -> list[Track]:
    """The game pieces and recorded songs, decoding any that are not cached yet."""
    import soundfile as sf

    from bench.corpus.game import sources as g
    from bench.corpus.recorded import audio as ra
    from bench.corpus.recorded import sources as r

    out: list[Track] = []
    for p in g.discover_pieces(g.fetch_packages(CORPUS_CACHE)):
        t = Track(f"game/{p.key}", "game", p.split, "game/" + g._SAME_WORK.get(p.key, p.key), p.file_sec)
        if not t.path.exists():
            t0 = time.time()
            x, sr = sf.read(str(p.path), dtype="float32", always_2d=True)
            _save(t.path, _mono(x, sr))
            log(f"decoded {t.key} ({p.file_sec:.0f} s) in {time.time() - t0:.1f} s")
        out.append(t)
    for s in r.discover_songs(r.fetch_packages(CORPUS_CACHE)):
        t = Track(f"recorded/{s.key}", "recorded", s.split, f"recorded/{s.key}", s.duration)
        if not t.path.exists():
            t0 = time.time()
            _save(t.path, _mono(ra.load_audio(s), ra.SAMPLE_RATE))
            log(f"decoded {t.key} ({s.duration:.0f} s) in {time.time() - t0:.1f} s")
        out.append(t)
    return out


def synthetic_tracks(count: int, log=print) -> list[Track]:
    """The first `count` tracks of short synthetic mixes by plan seed (0, 1, 2, ...), rendering any not cached."""
    from bench.corpus.synthetic.dsp import SR as SYNTH_SR
    from bench.corpus.synthetic.plan import plan_mix
    from bench.corpus.synthetic.render import TrackRenderer

    out: list[Track] = []
    seed = 0
    while len(out) < count:
        plan = plan_mix(seed, short=True)
        for i, tp in enumerate(plan.tracks[: count - len(out)]):
            key = f"synth/{seed}/{i}"
            t = Track(key, "synth", "tune" if seed % 2 == 0 else "test", key, tp.n_render / SYNTH_SR)
            if not t.path.exists():
                t0 = time.time()
                _save(t.path, _mono(TrackRenderer(tp, tp.n_render).render(), SYNTH_SR))
                log(f"rendered {key} ({t.seconds:.0f} s) in {time.time() - t0:.1f} s")
            out.append(t)
        seed += 1
    return out


if __name__ == "__main__":
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    tracks = real_tracks() + synthetic_tracks(n)
    print(len(tracks), "tracks,", round(sum(t.seconds for t in tracks) / 3600, 2), "hours")
