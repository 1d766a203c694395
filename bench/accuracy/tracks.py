"""Accuracy of track boundaries and per-track features on random generated mixes with exact ground truth.

Each mix has 4 tracks of 40-60 s, 8-20 s crossfades, tempi 80-175 BPM, random keys, levels and vocals.
Prints boundary F-measure (+-10 s of the crossfade middle), stable BPM within 2 %, key exact and up to a
fifth/relative, LUFS error against the isolated source track, and vocal detection accuracy.

    .venv/bin/python -m bench.accuracy.tracks --mixes 5
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import librosa
import numpy as np

from offbeat import synth
from offbeat.dsp import features, keys


def random_mix(rng: np.random.Generator, seed: int) -> synth.MixSpec:
    sections = tuple(
        synth.Section(
            seconds=float(rng.uniform(40, 60)),
            bpm=float(rng.uniform(80, 175)),
            root_hz=float(librosa.midi_to_hz(rng.integers(43, 55))),  # G2..F#3
            minor=bool(rng.integers(2)),
            vocals=bool(rng.integers(2)),
            gain=float(rng.uniform(0.25, 0.6)),
        )
        for _ in range(4)
    )
    fades = tuple(float(f) for f in rng.uniform(8, 20, 3))
    return synth.MixSpec(sections, lead_silence_sec=float(rng.uniform(0.5, 3)), crossfades=fades, seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mixes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--verbose", action="store_true", help="print every track: truth and result")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="offbeat-accuracy-"))
    os.environ.update(
        OFFBEAT_ARTIFACT_STORE=str(work / "artifacts"),
        OFFBEAT_SHARED_MOUNT_PATH=str(work / "shared"),
        OFFBEAT_MIN_TRACK_SEC="30",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    from flows.analyze import analyze_mix

    rng = np.random.default_rng(args.seed)
    hits = found_n = true_n = 0
    bpm_ok, key_exact, key_close, vocals_ok, lufs_err = [], [], [], [], []
    for index in range(args.mixes):
        spec = random_mix(rng, args.seed + index)
        synth.write_mix(spec, work / "shared" / f"mix{index}.wav")
        doc = analyze_mix(job={"job_id": index, "relative_path": f"mix{index}.wav"}, return_state=True)
        tracks = doc.result(raise_on_failure=False)["results"]["tracks"]
        found = np.array([t["start_time_sec"] for t in tracks[1:]])
        used: set[int] = set()
        for boundary in spec.boundaries():
            near = [i for i in np.flatnonzero(np.abs(found - boundary) <= 10) if i not in used]
            if near:
                used.add(near[0])
                hits += 1
        found_n, true_n = found_n + len(found), true_n + len(spec.boundaries())
        for i, (section, (lo, hi)) in enumerate(zip(spec.sections, spec.spans(), strict=True)):
            got = next(t for t in tracks if t["start_time_sec"] <= (lo + hi) / 2 < t["end_time_sec"])["analysis"]
            bpm_ok.append(got["stable_bpm"] is not None and abs(got["stable_bpm"] / section.bpm - 1) <= 0.02)
            tonic = round(librosa.hz_to_midi(section.root_hz)) % 12
            want = keys.camelot(tonic, section.minor)
            have = got["key"]["camelot"] if got["key"] else "0X"
            key_exact.append(have == want)
            same_number = int(have[:-1]) == int(want[:-1])
            neighbour = have[-1] == want[-1] and (int(have[:-1]) - int(want[:-1])) % 12 in (1, 11)
            key_close.append(have == want or same_number or neighbour)
            vocals_ok.append(got["has_vocals"] == section.vocals)
            alone = features.loudness(spec.render_section(i, lo, hi - lo, faded=False), spec.sample_rate)
            lufs_err.append(abs(got["loudness_lufs_total"] - alone))
            if args.verbose:
                print(
                    f"mix {index} track {i}: bpm {section.bpm:.1f}->{got['stable_bpm']}, key {want}->{have}, "
                    f"lufs {alone:.2f}->{got['loudness_lufs_total']}, vocals {section.vocals}->{got['has_vocals']}, "
                    f"span {lo:.1f}-{hi:.1f}"
                )
    precision, recall = hits / max(found_n, 1), hits / true_n
    f_measure = 2 * precision * recall / max(precision + recall, 1e-9)
    print(f"mixes: {args.mixes}, tracks: {len(bpm_ok)}, boundaries: {true_n}")
    print(f"boundary F-measure (+-10 s): {f_measure:.3f} (precision {precision:.3f}, recall {recall:.3f})")
    print(f"stable BPM within 2 %: {np.mean(bpm_ok):.1%}")
    print(f"key exact: {np.mean(key_exact):.1%}; up to a fifth/relative: {np.mean(key_close):.1%}")
    print(f"LUFS error vs isolated source track: mean {np.mean(lufs_err):.2f} LU, max {np.max(lufs_err):.2f} LU")
    print(f"has_vocals right: {np.mean(vocals_ok):.1%}")


if __name__ == "__main__":
    main()
