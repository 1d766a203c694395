"""Beat grid and tempo curve on synthesized audio with known beats (pure functions, no Prefect)."""

import mir_eval
import numpy as np
import pytest
import soxr

from offbeat import synth
from offbeat.dsp import rhythm
from offbeat.pipeline.blocks import FRAMES_PER_BLOCK, chroma_slice, frame_blocks

SR = 22050


def mono(spec: synth.MixSpec) -> np.ndarray:
    return soxr.resample(synth.render(spec, 0, spec.duration_sec).mean(axis=1), 44100, SR).astype(np.float32)


@pytest.fixture(scope="module")
def tempo_change() -> synth.MixSpec:
    return synth.MixSpec(
        (synth.Section(40, 122.0, 110.0, True), synth.Section(40, 172.0, 146.83, False, vocals=True)),
        lead_silence_sec=3.0,
    )


def test_blockwise_features_equal_a_whole_signal_pass() -> None:
    y = mono(synth.MixSpec((synth.Section(20, 128.0),), lead_silence_sec=1.0))
    y = np.tile(y, 10)  # ~210 s: several blocks of FRAMES_PER_BLOCK frames
    assert rhythm.frame_count(len(y)) > 2 * FRAMES_PER_BLOCK
    blocks = [rhythm.frame_features(samples, SR).sliced(keep) for samples, keep in frame_blocks(y)]
    ctx = rhythm.BLOCK_CONTEXT
    padded = np.pad(y, (ctx * rhythm.HOP, (ctx + 1) * rhythm.HOP + rhythm.N_FFT))
    whole = rhythm.frame_features(padded, SR).sliced(slice(ctx, ctx + rhythm.frame_count(len(y))))
    for name in ("onset", "onset_low", "onset_crack", "rms", "centroid"):
        joined = np.concatenate([getattr(b, name) for b in blocks])
        np.testing.assert_allclose(joined, getattr(whole, name), rtol=1e-4, atol=1e-4, err_msg=name)
    chroma = np.concatenate(
        [rhythm.chroma_frames(samples, SR)[chroma_slice(keep)] for samples, keep in frame_blocks(y)]
    )
    whole_chroma = rhythm.chroma_frames(padded, SR)[ctx // rhythm.CHROMA_STEP :][: len(chroma)]
    assert len(chroma) == -(-rhythm.frame_count(len(y)) // rhythm.CHROMA_STEP)
    np.testing.assert_allclose(chroma, whole_chroma, rtol=1e-4, atol=1e-4)


@pytest.mark.slow  # over 80 s of synthesized audio
@pytest.mark.accuracy
def test_beats_follow_a_known_tempo_curve_through_a_tempo_change(tempo_change: synth.MixSpec) -> None:
    """The drum grid follows the tempo curve of the mix's beat grid; here the curve the synth played."""
    y = mono(tempo_change)
    features = rhythm.frame_features(np.pad(y, (0, rhythm.N_FFT)), SR)
    seconds = int(np.ceil(tempo_change.duration_sec))
    tempo = np.where(np.arange(seconds) < 3 + 40, 122.0, 172.0)
    beats = rhythm.beat_times(features.onset_low, SR, tempo, 3.0, tempo_change.duration_sec)
    reference = np.array(tempo_change.beats())
    assert mir_eval.beat.f_measure(reference, beats, f_measure_threshold=0.07) >= 0.9
    assert beats.min() >= 3.0 - 0.05  # nothing in the leading silence
    curve = rhythm.bpm_from_beats(beats, seconds)
    for lo, hi, bpm in ((8, 38, 122.0), (48, 78, 172.0)):  # each section away from its edges
        assert np.nanmax(np.abs(curve[lo:hi] / bpm - 1)) < 0.02, (bpm, curve[lo:hi])
