"""Tracks inside a mix: boundaries, cue hints and per-track features against exact ground truth."""

from collections.abc import Iterator
from typing import Any

import librosa
import numpy as np
import pyloudnorm
import pytest
from scipy.signal import butter, sosfilt

from offbeat import cue_sheet, synth
from offbeat.dsp import features, keys
from offbeat.settings import get_settings

from .conftest import REPO

S = synth.Section
MIXES = {
    "mix-a": synth.MixSpec(
        (
            S(50, 124, 110.00, True, False, 0.5),
            S(55, 174, 146.83, False, True, 0.3),
            S(45, 86, 98.00, True, True, 0.6),
            S(60, 132, 130.81, False, False, 0.45),
        ),
        lead_silence_sec=2.0,
        crossfades=(12, 16, 10),
        seed=5,
    ),
    "mix-b": synth.MixSpec(
        (
            S(45, 100, 123.47, True, True, 0.35),
            S(60, 140, 164.81, True, False, 0.6),
            S(50, 122, 87.31, False, True, 0.5),
            S(55, 160, 116.54, True, False, 0.25),
        ),
        lead_silence_sec=1.0,
        crossfades=(8, 20, 14),
        seed=9,
    ),
}


def key_name(section: synth.Section) -> str:
    return f"{librosa.hz_to_note(section.root_hz, octave=False, unicode=False)} {'Minor' if section.minor else 'Major'}"


def pitch_class(name: str) -> int:
    return features.PITCHES.index(name.split()[0])


@pytest.fixture(scope="module")
def analyzed(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("tracks")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OFFBEAT_ARTIFACT_STORE", str(root / "artifacts"))
        mp.setenv("OFFBEAT_SHARED_MOUNT_PATH", str(root / "shared"))
        mp.setenv("OFFBEAT_MODEL_DIR", str(REPO / "models"))
        mp.setenv("OFFBEAT_MIN_TRACK_SEC", "30")
        get_settings.cache_clear()
        from flows.analyze import analyze_mix

        docs = {}
        for job_id, (name, spec) in enumerate(MIXES.items()):
            synth.write_mix(spec, root / "shared" / f"{name}.flac")
            docs[name] = analyze_mix(job={"job_id": job_id, "relative_path": f"{name}.flac"}, return_state=True)
            docs[name] = docs[name].result(raise_on_failure=False)
            assert docs[name]["status"] == "completed", docs[name]
        yield {"docs": docs, "root": root, "analyze": analyze_mix}
    get_settings.cache_clear()


def pairs(analyzed: dict[str, Any]) -> list[tuple[synth.MixSpec, int, dict[str, Any]]]:
    """(mix, section index, reported track) for each true track, matched by the track holding its middle."""
    out = []
    for name, spec in MIXES.items():
        tracks = analyzed["docs"][name]["results"]["tracks"]
        for i, (lo, hi) in enumerate(spec.spans()):
            middle = (lo + hi) / 2
            track = next(t for t in tracks if t["start_time_sec"] <= middle < t["end_time_sec"])
            out.append((spec, i, track))
    return out


@pytest.mark.accuracy
@pytest.mark.slow
def test_boundaries_within_ten_seconds_of_the_crossfade_middle(analyzed: dict[str, Any]) -> None:
    hits = found_total = true_total = 0
    for name, spec in MIXES.items():
        tracks = analyzed["docs"][name]["results"]["tracks"]
        found = np.array([t["start_time_sec"] for t in tracks[1:]])
        truth = np.array(spec.boundaries())
        used: set[int] = set()
        for boundary in truth:
            near = [i for i in np.flatnonzero(np.abs(found - boundary) <= 10) if i not in used]
            if near:
                used.add(near[0])
                hits += 1
        found_total += len(found)
        true_total += len(truth)
        assert tracks[0]["start_time_sec"] == pytest.approx(spec.lead_silence_sec, abs=0.05)
        assert tracks[-1]["end_time_sec"] == pytest.approx(spec.duration_sec, abs=0.1)
        assert tracks[0]["start_confidence"] is None
        assert tracks[0]["transition"] is None
        for track in tracks[1:]:  # each detected boundary lies inside its reported transition window
            lo, hi = track["transition_in"]
            assert lo <= track["start_time_sec"] <= hi
            assert 0.0 <= track["start_confidence"] <= 1.0
            described = track["transition"]  # the same window, described
            assert [described["start_time_sec"], described["end_time_sec"]] == [lo, hi]
            assert described["kind"] in ("cut", "blend", "bass_swap", "filter")
            assert described["length_beats"] is None or described["length_beats"] > 0
            assert set(described) >= {"length_bars", "beatmatched", "tempo_ratio", "key_relation"}
    precision, recall = hits / max(found_total, 1), hits / true_total
    f_measure = 2 * precision * recall / max(precision + recall, 1e-9)
    assert f_measure >= 0.8, (precision, recall)


@pytest.mark.accuracy
@pytest.mark.slow
def test_stable_bpm_without_octave_errors(analyzed: dict[str, Any]) -> None:
    results = [(t["analysis"]["stable_bpm"], spec.sections[i].bpm) for spec, i, t in pairs(analyzed)]
    right = [bpm is not None and abs(bpm / truth - 1) <= 0.02 for bpm, truth in results]
    assert np.mean(right) >= 0.9, results


@pytest.mark.accuracy
@pytest.mark.slow
def test_keys(analyzed: dict[str, Any]) -> None:
    exact = close = 0
    results = []
    for spec, i, track in pairs(analyzed):
        truth, key = key_name(spec.sections[i]), track["analysis"]["key"]
        results.append((truth, key and key["musical"]))
        if key is None:
            continue
        exact += key["musical"] == truth
        # Up to a fifth or the relative key: Camelot neighbours (same number, or +-1 with the same letter).
        want, got = keys.camelot(pitch_class(truth), "Minor" in truth), key["camelot"]
        n_want, n_got = int(want[:-1]), int(got[:-1])
        close += (want == got) or (n_want == n_got) or (want[-1] == got[-1] and (n_want - n_got) % 12 in (1, 11))
        assert got == keys.camelot(pitch_class(key["musical"]), "Minor" in key["musical"])
    total = len(results)
    assert exact / total >= 0.75, results
    assert close / total >= 0.9, results


@pytest.mark.accuracy
@pytest.mark.slow
def test_loudness_matches_the_isolated_track(analyzed: dict[str, Any]) -> None:
    for spec, i, track in pairs(analyzed):
        lo, hi = spec.spans()[i]
        alone = spec.render_section(i, lo, hi - lo, faded=False)  # the source track, before the DJ's fades
        reference = pyloudnorm.Meter(spec.sample_rate).integrated_loudness(alone.astype(np.float64))
        assert track["analysis"]["loudness_lufs_total"] == pytest.approx(reference, abs=1.0)
        assert track["analysis"]["loudness_lufs_bass"] < track["analysis"]["loudness_lufs_total"]


@pytest.mark.accuracy
@pytest.mark.slow
def test_vocals(analyzed: dict[str, Any]) -> None:
    results = [(t["analysis"]["has_vocals"], spec.sections[i].vocals) for spec, i, t in pairs(analyzed)]
    assert np.mean([got == truth for got, truth in results]) >= 0.9, results
    for spec, i, track in pairs(analyzed):
        assert track["analysis"]["average_brightness"] > 0
        if spec.sections[i].vocals:
            assert track["analysis"]["vocal_energy_rms"] > 0.002


@pytest.mark.slow
def test_cue_hints_snap_and_carry_titles(analyzed: dict[str, Any]) -> None:
    spec = MIXES["mix-a"]
    detected = [t["start_time_sec"] for t in analyzed["docs"]["mix-a"]["results"]["tracks"][1:]]
    cues = [
        {"title": "Opener", "start_time_sec": 0.0},
        {"title": "Second", "start_time_sec": detected[0] - 7.0},  # near a boundary: snaps to it
        {"title": "Third", "start_time_sec": detected[1] + 5.0},
        {"title": "Late", "start_time_sec": detected[2] + 35.0},  # nothing detected this close: kept
    ]
    doc = analyzed["analyze"](job={"job_id": 9, "relative_path": "mix-a.flac", "cue_tracks": cues}, return_state=True)
    doc = doc.result(raise_on_failure=False)
    tracks = doc["results"]["tracks"]
    assert [t["title"] for t in tracks] == ["Opener", "Second", "Third", "Late"]
    assert [t["start_time_sec"] for t in tracks] == [
        pytest.approx(spec.lead_silence_sec, abs=0.05),
        detected[0],
        detected[1],
        detected[2] + 35.0,
    ]
    found = analyzed["docs"]["mix-a"]["results"]["tracks"]
    # Snapped cues carry the confidence of the boundary they lie on; the kept one was not found, so has none.
    assert [t["start_confidence"] for t in tracks[1:]] == [*(t["start_confidence"] for t in found[1:3]), None]
    assert {"decode", "beats", "separate"} <= set(doc["engine"]["cached_stages"])
    assert "segment" not in doc["engine"]["cached_stages"]


@pytest.mark.slow
def test_a_cue_sheet_gives_the_tracks_of_the_same_cue_tracks(analyzed: dict[str, Any]) -> None:
    """A job's CUE sheet becomes the very cue hints of the job with the same `cue_tracks` (same tracks, titles and
    `segment` entry); the result's own sheet reads back to its tracks within a frame, with the hints' performers;
    a sheet starting a track past the end of the audio is an invalid job, refused before any work."""
    detected = [t["start_time_sec"] for t in analyzed["docs"]["mix-a"]["results"]["tracks"][1:]]
    named = [
        ("Opener", 0.0, "Artist 1"),
        ("Second", detected[0] - 7.0, None),
        ("Third", detected[1] + 5.0, "Artist 3"),
        ("Late", detected[2] + 35.0, "Artist 4"),
    ]
    hints = cue_sheet.CueSheet(
        tuple(cue_sheet.SheetTrack(i + 1, start, title, who) for i, (title, start, who) in enumerate(named)),
        title="Mix A",
        performer="DJ Test",
        file="mix-a.flac",
    )
    text = 'REM COMMENT "ignored"\nCATALOG 1234567890123\n' + cue_sheet.render(hints)
    cues = [{"title": title, "start_time_sec": start} for title, start in cue_sheet.parse(text).cues()]

    def run(job_id: int, **hint: Any) -> dict[str, Any]:
        job = {"job_id": job_id, "relative_path": "mix-a.flac", **hint}
        return analyzed["analyze"](job=job, return_state=True).result(raise_on_failure=False)  # type: ignore[no-any-return]

    by_cues, by_sheet = run(21, cue_tracks=cues), run(22, cue_sheet=text)
    assert by_sheet["status"] == "completed", by_sheet
    tracks = by_sheet["results"]["tracks"]
    assert tracks == by_cues["results"]["tracks"]
    assert [t["title"] for t in tracks] == ["Opener", "Second", "Third", "Late"]
    assert "segment" in by_sheet["engine"]["cached_stages"]  # the cue_tracks job's entry: the same hints

    written = cue_sheet.parse(by_sheet["results"]["cue_sheet"])
    assert (written.title, written.performer, written.file) == ("Mix A", "DJ Test", "mix-a.flac")
    assert [(t.title, t.performer) for t in written.tracks] == [(title, who) for title, _, who in named]
    starts = [t["start_time_sec"] for t in tracks]
    assert [t.start_sec for t in written.tracks] == pytest.approx(starts, abs=1 / cue_sheet.FRAMES_PER_SECOND)

    duration = by_sheet["results"]["global"]["duration_sec"]
    longer = cue_sheet.CueSheet((*hints.tracks, cue_sheet.SheetTrack(5, duration + 30.0, "Not here")))
    failed = run(23, cue_sheet=cue_sheet.render(longer))
    assert (failed["status"], failed["error_code"], failed["stage"]) == ("failed", "invalid_job", "intake")
    assert "TRACK 05 starts at" in failed["error"] and "past the end of the audio" in failed["error"]


CAMELOT = {
    "C Major": "8B",
    "G Major": "9B",
    "D Major": "10B",
    "A Major": "11B",
    "E Major": "12B",
    "B Major": "1B",
    "F# Major": "2B",
    "C# Major": "3B",
    "G# Major": "4B",
    "D# Major": "5B",
    "A# Major": "6B",
    "F Major": "7B",
    "A Minor": "8A",
    "E Minor": "9A",
    "B Minor": "10A",
    "F# Minor": "11A",
    "C# Minor": "12A",
    "G# Minor": "1A",
    "D# Minor": "2A",
    "A# Minor": "3A",
    "F Minor": "4A",
    "C Minor": "5A",
    "G Minor": "6A",
    "D Minor": "7A",
}


def test_camelot_code_of_every_key() -> None:
    for name, code in CAMELOT.items():
        key = features.Key(pitch_class(name), "Minor" in name, 1.0)
        assert key.musical == name and key.camelot == code


def test_streamed_loudness_equals_pyloudnorm() -> None:
    """Block by block, with the filter state carried, the integrated loudness is pyloudnorm's, whatever the
    block size; so is the bass band filtered block by block."""
    sr, rng = 44100, np.random.default_rng(3)
    n = 37 * sr // 10 * 10  # whole 100 ms steps: pyloudnorm then gates exactly the same blocks
    signal = (rng.standard_normal((n, 2)) * np.linspace(0.005, 0.4, n)[:, None]).astype(np.float32)
    signal[: n // 4] *= 1e-4  # a quiet start the gates must drop
    reference = pyloudnorm.Meter(sr).integrated_loudness(signal.astype(np.float64))
    for step in (n, 44100, 12345):
        pieces = (signal[i : i + step] for i in range(0, n, step))
        assert features.loudness(pieces, sr) == pytest.approx(round(reference, 2), abs=1e-9)
    bass = np.concatenate(list(features.low_band((signal[i : i + 5000] for i in range(0, n, 5000)), sr)))
    whole = sosfilt(butter(4, features.BASS_CUTOFF_HZ, btype="low", fs=sr, output="sos"), signal, axis=0)
    np.testing.assert_allclose(bass, whole, atol=1e-6)


def test_unmeasurable_features_say_why() -> None:
    with pytest.raises(features.Unmeasurable, match="beats"):
        features.stable_bpm(np.array([1.0, 1.5]))
    with pytest.raises(features.Unmeasurable, match="silent"):
        features.loudness(np.zeros((44100, 2)), 44100)
    with pytest.raises(features.Unmeasurable):
        features.estimate_key(np.zeros((10, 12)))
