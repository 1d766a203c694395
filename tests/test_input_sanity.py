"""Input sanity (issue 14, cases 4 and 7): audio that cannot be real is refused with its own code, a truncated
file is analyzed with a warning, and limits are settings. Real files, decoded by the real decode stage, read
through the opened-file path the flow uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from offbeat.contract import Job
from offbeat.dsp import silence
from offbeat.errors import AnalysisError, ErrorCode
from offbeat.paths import open_job_source
from offbeat.pipeline import registry
from offbeat.pipeline.assemble import warnings
from offbeat.pipeline.runner import Run
from offbeat.settings import Settings
from offbeat.storage import ArtifactStore, Entry

from .audio_files import write_samples, write_wav


def tone(seconds: float, rate: int = 44100) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.stack([0.3 * np.sin(2 * np.pi * 440 * t)] * 2, axis=1).astype(np.float32)


def decode(tmp_path: Path, name: str, settings: Settings | None = None) -> dict[str, object]:
    """The decode entry's attributes, the file opened as a job would open it."""
    source = open_job_source(Job(job_id=1, relative_path=name), tmp_path)
    try:
        run = Run(ArtifactStore(tmp_path / "artifacts", tmp_path / "index"), settings or Settings(), source.path)
        ref = run.stage("decode", {})
        return dict(run.store.get(ref.key).attrs)  # type: ignore[union-attr]
    finally:
        source.close()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_samples_that_are_not_numbers_are_corrupt_audio(tmp_path: Path, bad: float) -> None:
    data = tone(3.0)
    data[50_000:50_010] = bad
    write_samples(tmp_path / "nan.wav", data, 44100, subtype="FLOAT")
    with pytest.raises(AnalysisError) as caught:
        decode(tmp_path, "nan.wav")
    assert caught.value.code is ErrorCode.CORRUPT_AUDIO and "not numbers" in caught.value.message


@pytest.mark.parametrize("rate", [1, 100, 1_000_000])
def test_impossible_sample_rates_are_refused(tmp_path: Path, rate: int) -> None:
    write_samples(tmp_path / "odd.wav", tone(1.0, 1000)[:600], rate)  # 600 frames at 1 Hz: a "600 s" mix
    with pytest.raises(AnalysisError) as caught:
        decode(tmp_path, "odd.wav")
    assert caught.value.code is ErrorCode.CORRUPT_AUDIO and f"{rate} Hz" in caught.value.message


def test_audio_over_the_length_limit_is_refused(tmp_path: Path) -> None:
    write_samples(tmp_path / "long.wav", tone(5.0), 44100)
    with pytest.raises(AnalysisError) as caught:
        decode(tmp_path, "long.wav", Settings(max_audio_sec=4.0))
    assert caught.value.code is ErrorCode.AUDIO_TOO_LONG and not caught.value.retryable
    assert decode(tmp_path, "long.wav", Settings(max_audio_sec=6.0))["duration_sec"] == pytest.approx(5.0)


def test_a_truncated_mp3_completes_with_a_warning(tmp_path: Path) -> None:
    sf.write(str(tmp_path / "full.mp3"), tone(20.0), 44100, format="MP3")
    whole = (tmp_path / "full.mp3").read_bytes()
    (tmp_path / "cut.mp3").write_bytes(whole[: len(whole) // 5])
    assert decode(tmp_path, "full.mp3")["warnings"] == []
    attrs = decode(tmp_path, "cut.mp3")
    assert attrs["duration_sec"] < 6.0
    (warning,) = attrs["warnings"]  # type: ignore[misc]
    assert "shorter than its header says" in warning and "20.0 s declared" in warning


def test_trim_gates_separation() -> None:
    """Case 8: `separate` waits for `trim` (without reading it, so the stems keep their key), so silent audio
    (refused by trim) is never separated: the flow submits a step only once its inputs and `after` are done."""
    separate = registry.STAGES["separate"]
    assert "trim" in separate.after and "trim" not in separate.inputs
    assert "separate" not in registry.dependents({"trim"})
    with pytest.raises(ValueError, match="waits for"):
        registry.check_graph((registry.STAGES["decode"], separate))


def entries(
    tmp_path: Path, name: str, names: tuple[str, ...] = ("decode", "trim"), cues: list[tuple[str, float]] | None = None
) -> dict[str, Entry]:
    """The entries of the stages `names` (in graph order, no separation), the file opened as a job opens it."""
    source = open_job_source(Job(job_id=1, relative_path=name), tmp_path)
    try:
        run = Run(ArtifactStore(tmp_path / "artifacts", tmp_path / "index"), Settings(), source.path, cues=cues)
        refs = {}
        for stage in names:
            refs[stage] = run.stage(stage, refs)
        found = {stage: run.store.get(ref.key) for stage, ref in refs.items()}
        return {stage: entry for stage, entry in found.items() if entry is not None}
    finally:
        source.close()


SR = 44100
NOISE = np.random.default_rng(3).standard_normal((4 * SR, 2))


def _offset_switching_on() -> np.ndarray:
    data = np.zeros((4 * SR, 2))
    data[2 * SR :] = 0.4
    return data


@pytest.mark.parametrize(
    ("what", "data"),
    [
        ("digital silence", np.zeros((4 * SR, 2))),
        ("a DC offset", np.full((4 * SR, 2), 0.5)),
        ("a constant at negative full scale", np.full((4 * SR, 2), -1.0)),
        ("an offset with inaudible noise on it", 0.3 + 1e-4 * NOISE),  # the noise is at -80 dBFS
        ("an offset switching on halfway (one click)", _offset_switching_on()),
    ],
)
def test_audio_with_no_sound_in_it_is_silent_audio(tmp_path: Path, what: str, data: np.ndarray) -> None:
    """10 s of DC offset used to come back as a 66 BPM track in F minor with vocals: levels are now taken after a
    high-pass below hearing, and a click is no music."""
    write_samples(tmp_path / "nothing.wav", data.astype(np.float32), SR, subtype="FLOAT")
    with pytest.raises(AnalysisError) as caught:
        entries(tmp_path, "nothing.wav")
    assert caught.value.code is ErrorCode.SILENT_AUDIO and caught.value.stage == "trim", what


def test_music_on_an_offset_and_the_synthetic_mix_are_not_silent(tmp_path: Path) -> None:
    """The high-pass takes the offset, not the music: a tone on a DC offset and the engine's synthetic mix (the
    demo's and the tests' audio) keep their bounds, with no warning."""
    write_samples(tmp_path / "offset.wav", tone(3.0) + np.float32(0.2), SR, subtype="FLOAT")
    trim = entries(tmp_path, "offset.wav")["trim"].attrs
    assert (trim["trimmed_start_sec"], trim["trimmed_end_sec"]) == (0.0, 0.0) and trim["warnings"] == []
    write_wav(tmp_path / "mix.wav", seconds=6.0, lead=1.5, tail=1.0)
    trim = entries(tmp_path, "mix.wav")["trim"].attrs
    assert trim["trimmed_start_sec"] == pytest.approx(1.5, abs=0.05)
    assert trim["trimmed_end_sec"] == pytest.approx(1.0, abs=0.05)
    assert trim["warnings"] == []


@pytest.mark.parametrize(("gain", "warned"), [(100.0, True), (10.0, True), (1.0, False), (1.5, False)])
def test_audio_over_full_scale_is_measured_with_a_warning(tmp_path: Path, gain: float, warned: bool) -> None:
    """A float WAV far over full scale is analyzed as it is (its loudness is what its samples measure) and the
    result says so; a peak within OVER_SCALE_DB of full scale (a loud master's overs) is no news."""
    write_samples(tmp_path / "loud.wav", tone(3.0) * np.float32(gain / 0.3), SR, subtype="FLOAT")
    found = entries(tmp_path, "loud.wav")
    said = warnings(found | {"segment": found["decode"]})  # decode's and trim's warnings, as the result has them
    assert bool(said) is warned
    if warned:
        (warning,) = said
        level = 20 * np.log10(gain)
        assert "far over full scale" in warning and f"{level:+.1f} dBFS" in warning
        assert level > silence.OVER_SCALE_DB
        peak = float(np.abs(found["decode"]["stereo"][...]).max())
        assert peak == pytest.approx(gain, rel=1e-3)  # stored as it is, not clipped or wrapped


@pytest.mark.parametrize("peak", [256.0, 1000.0, -1e6])
def test_audio_beyond_what_the_store_holds_is_corrupt_audio(tmp_path: Path, peak: float) -> None:
    """Samples from +48 dBFS up wrapped around in the store's 24-bit audio and came back as +48 LUFS noise with
    vocals and 99 % of the stems clipped: refused instead, before anything is stored."""
    data = tone(3.0)
    data[40_000:40_004] = peak
    write_samples(tmp_path / "huge.wav", data, SR, subtype="FLOAT")
    with pytest.raises(AnalysisError) as caught:
        entries(tmp_path, "huge.wav")
    assert caught.value.code is ErrorCode.CORRUPT_AUDIO and caught.value.stage == "decode"
    assert "dBFS" in caught.value.message and "at most 256x full scale" in caught.value.message


def test_cues_outside_the_music_are_dropped_with_a_warning(tmp_path: Path) -> None:
    """Cues past the end of the music (and before its start) start no track, and the result says which; the
    titles of the cues kept stay with their tracks."""
    write_wav(tmp_path / "mix.wav", seconds=8.0, lead=1.0, tail=0.5)
    names = registry.needed_by("segment")
    cues = [("A", 0.0), ("early", 0.5), ("B", 5.0), ("C", 30.0), ("D", 45.0)]
    found = entries(tmp_path, "mix.wav", names, cues)
    segment = found["segment"].attrs
    assert segment["titles"] == ["A", "B"]
    assert len(segment["starts"]) == 2 and segment["starts"][1] == pytest.approx(5.0, abs=0.01)
    assert warnings(found) == segment["warnings"]
    late, early = segment["warnings"]
    assert late.startswith("2 cues ('C' at 30.0 s, 'D' at 45.0 s) start past the end of the music (9.0 s)")
    assert early.startswith("1 cue ('early' at 0.5 s) starts before the music starts (1.0 s)")
    inside = entries(tmp_path, "mix.wav", names, [("A", 0.0), ("B", 5.0)])
    assert inside["segment"].attrs["warnings"] == [] and inside["segment"].attrs["titles"] == ["A", "B"]


def test_a_file_rewritten_while_it_is_decoded_stores_nothing(tmp_path: Path) -> None:
    """The file is rewritten (other audio, longer) after decode's first block, from decode's own progress callback:
    the decode fails, retryable, with nothing stored under the digest of the first content; the first content,
    back, and the second decode as they are."""
    first, second = tone(6.0), -0.5 * tone(8.0)
    path = write_samples(tmp_path / "mix.wav", first, SR)
    original = path.read_bytes()
    rewritten = write_samples(tmp_path / "other.wav", second, SR).read_bytes()
    store = ArtifactStore(tmp_path / "artifacts", tmp_path / "index")
    settings = Settings(decode_block_sec=1.0)
    done: list[float] = []

    def rewrite(fraction: float) -> None:
        if not done:
            path.write_bytes(rewritten)  # the same inode, written over while the decoder holds it open
        done.append(fraction)

    run = Run(store, settings, path, progress=lambda name: rewrite)
    with pytest.raises(AnalysisError) as caught:
        run.stage("decode", {})
    assert done and done[0] < 0.5  # rewritten after the first block of six, not after the end
    assert caught.value.code is ErrorCode.INTERNAL and caught.value.retryable
    assert "mix.wav changed while it was read" in caught.value.message
    assert [r for r in store.entries() if r["stage"] == "decode"] == []

    for content, samples in ((original, first), (rewritten, second)):
        path.write_bytes(content)
        ref = Run(store, settings, path).stage("decode", {})
        stereo = store.get(ref.key)["stereo"][...]  # type: ignore[index]
        assert stereo.shape == samples.shape and np.allclose(stereo, samples, atol=1e-4)  # 16-bit


def test_the_over_full_scale_warning_gives_the_peak_of_the_channels(tmp_path: Path) -> None:
    """Channels in part opposite: the mono fold peaks lower than the samples do (it said 189.9 for 200.0); the
    warning gives the samples' peak."""
    t = np.arange(3 * SR) / SR
    left = 200.0 * np.sin(2 * np.pi * 440 * t)
    data = np.stack([left, -0.9 * left + 20.0 * np.sin(2 * np.pi * 660 * t)], axis=1).astype(np.float32)
    write_samples(tmp_path / "wide.wav", data, SR, subtype="FLOAT")
    found = entries(tmp_path, "wide.wav")
    assert float(np.abs(found["decode"]["mono"][...]).max()) < 100  # the fold really is lower
    (warning,) = found["trim"].attrs["warnings"]
    assert "samples reach 200 (+46.0 dBFS" in warning
    from dataclasses import replace

    from offbeat.pipeline.stages.trim import stereo_peak

    older = replace(found["decode"], attrs={k: v for k, v in found["decode"].attrs.items() if k != "peak"})
    assert stereo_peak(older) == pytest.approx(200.0, rel=1e-4) == stereo_peak(found["decode"])  # read from stereo


def test_a_flac_whose_header_claims_twelve_hours_says_what_is_wrong(tmp_path: Path) -> None:
    """A 3 s FLAC whose STREAMINFO declares 12 h (within OFFBEAT_MAX_AUDIO_SEC): libsndfile fails with "Internal
    psf_fseek() failed"; the message says what the header declared and where decoding stopped."""
    sf.write(str(tmp_path / "short.flac"), tone(3.0), SR)
    raw = bytearray((tmp_path / "short.flac").read_bytes())
    at = 8 + 10  # STREAMINFO's bytes 10-17: rate (20 bits), channels (3), bits (5), total samples (36)
    packed = int.from_bytes(raw[at : at + 8], "big")
    packed = packed & ~((1 << 36) - 1) | 12 * 3600 * SR
    raw[at : at + 8] = packed.to_bytes(8, "big")
    (tmp_path / "claims.flac").write_bytes(bytes(raw))
    assert sf.info(str(tmp_path / "claims.flac")).duration == 12 * 3600
    with pytest.raises(AnalysisError) as caught:
        decode(tmp_path, "claims.flac")
    assert caught.value.code is ErrorCode.CORRUPT_AUDIO and not caught.value.retryable
    assert caught.value.message.startswith(
        "claims.flac is damaged or truncated: its header declares 12.0 h of audio (in a file of "
    )
    assert "decoding failed 0.0 s in" in caught.value.message
