"""Beat and bar grids from activations (pure arrays), and madmom's network on synthesized drums."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from offbeat.dsp import bars, beat_activation, beat_grid, rhythm
from offbeat.dsp.beat_activation import FPS


def spikes(times: np.ndarray, frames: int, height: float = 0.9) -> np.ndarray:
    """An activation curve with a peak (3 frames wide) at each time."""
    curve = np.full(frames, 0.01)
    for t in times:
        i = int(np.rint(t * FPS))
        if 1 <= i < frames - 1:
            curve[i - 1 : i + 2] = [height / 3, height, height / 3]
    return curve


def test_tempo_change_between_windows_is_followed() -> None:
    first = np.arange(0.5, 90, 60 / 124)
    second = np.arange(first[-1] + 60 / 174, 180, 60 / 174)
    beats = beat_grid.track_beats(spikes(np.concatenate([first, second]), 180 * FPS))
    early, late = beats[beats < 80], beats[beats > 100]
    assert beat_grid.bpm_of(early) == pytest.approx(124, rel=0.02)
    assert beat_grid.bpm_of(late) == pytest.approx(174, rel=0.02)
    # no beat lost or doubled where windows were joined
    assert np.all(np.diff(beats) > 0.25) and np.all(np.diff(beats) < 0.6)


def test_half_tempo_path_is_doubled_when_the_skipped_beats_are_as_strong() -> None:
    truth = np.arange(1.0, 60, 60 / 190)
    strength = spikes(truth[::2], 60 * FPS, 0.8) + spikes(truth[1::2], 60 * FPS, 0.7)
    beats = beat_grid.track_beats(np.clip(strength, 0, 1))
    assert beat_grid.bpm_of(beats) == pytest.approx(190, rel=0.03)


def breakbeat(bpm: float, seconds: float, sr: int = 22050) -> tuple[np.ndarray, np.ndarray]:
    """(audio, true beats): a kick on every "and", a snare on beats 2 and 4, hats on every eighth: the
    pattern whose loud off-beats pull a beat tracker half a beat off."""
    rng = np.random.default_rng(7)
    period = 60.0 / bpm
    beats = np.arange(0.5, seconds - 1, period)
    audio = np.zeros(int(seconds * sr))
    t = np.arange(int(0.15 * sr)) / sr
    kick = np.sin(2 * np.pi * 55 * t) * np.exp(-t * 25)
    snare = np.convolve(rng.standard_normal(len(t)), np.hanning(5), "same") * np.exp(-t * 30) * 0.5
    hat = np.diff(rng.standard_normal(len(t) + 1)) * np.exp(-t * 80) * 0.15
    for i, beat in enumerate(beats):
        for sound, at in ((hat, beat), (hat, beat + period / 2), (kick, beat + period / 2)):
            start = int(at * sr)
            audio[start : start + len(sound)] += sound[: len(audio) - start]
        if i % 2 == 1:
            start = int(beat * sr)
            audio[start : start + len(snare)] += snare[: len(audio) - start]
    return audio.astype(np.float32), beats


def test_beats_half_a_beat_off_move_to_the_snare() -> None:
    sr = 22050
    audio, truth = breakbeat(170.0, 40.0, sr)
    crack = rhythm.frame_features(np.pad(audio, (0, rhythm.N_FFT)), sr).onset_crack
    fps, offset = sr / rhythm.HOP, rhythm.frame_time_offset(sr)
    off_beats = (truth[1:] + truth[:-1]) / 2
    moved = beat_grid.backbeat_phase(off_beats, crack, fps, offset)
    distance = np.abs(moved[:, None] - truth[None, :]).min(axis=1)
    assert np.mean(distance < 0.03) > 0.95
    # beats already on the snare's phase stay where they are
    assert np.array_equal(beat_grid.backbeat_phase(truth, crack, fps, offset), truth)
    # only the stretch that is off moves: the first half right, the second half off
    half = len(truth) // 2
    mixed = np.concatenate([truth[:half], off_beats[half:]])
    fixed = beat_grid.backbeat_phase(mixed, crack, fps, offset)
    assert np.array_equal(fixed[fixed < truth[half - 20]], truth[truth < truth[half - 20]])
    late = fixed[fixed > truth[half + 20]]
    assert np.abs(late[:, None] - truth[None, :]).min(axis=1).max() < 0.03


def test_a_stretch_half_a_beat_off_between_two_that_agree_is_put_back_on_the_grid() -> None:
    period = 60 / 133
    truth = 0.3 + period * np.arange(200)
    wandered = truth.copy()
    wandered[60:90] += period / 2  # the tracker followed the off-beats for 30 beats
    wandered[59] += period / 4  # and took a beat to get there
    bridged = beat_grid.bridged(wandered)
    assert len(bridged) == len(truth)
    assert np.abs(bridged - truth).max() < 1e-6
    # steady beats stay exactly as they are
    assert np.array_equal(beat_grid.bridged(truth), truth)


def test_a_new_track_at_another_phase_or_tempo_is_not_bridged() -> None:
    period = 60 / 128
    first = 0.2 + period * np.arange(80)
    # a new track at the same tempo, half a beat later, to the end of the beats: no anchor after it agrees
    later = first[-1] + 1.5 * period + period * np.arange(80)
    assert np.array_equal(beat_grid.bridged(np.concatenate([first, later])), np.concatenate([first, later]))
    # a track at another tempo between two at one tempo, the last 28.4 beats after the first: not its phase
    faster = first[-1] + (60 / 140) * np.arange(1, 31)
    back = faster[-1] + period * np.arange(1, 81)
    beats = np.concatenate([first, faster, back])
    assert np.array_equal(beat_grid.bridged(beats), beats)


def test_bar_positions_follow_downbeats_and_a_phase_jump() -> None:
    n = 64
    downbeat = np.full(n, 0.05)
    downbeat[0:32:4] = 0.8  # bars start on beat 0 ...
    downbeat[34:64:4] = 0.8  # ... and on beat 34 after the next track comes in
    position, meter = bars.bar_positions(downbeat)
    assert set(np.flatnonzero(position == 1)) == set(range(0, 32, 4)) | set(range(34, 64, 4))
    assert np.all(meter == 4)


def test_chord_changes_on_bar_lines_set_the_bar_phase_where_the_downbeat_network_is_unsure() -> None:
    period, rate = 0.5, 10.0  # beats every half second, chroma frames every tenth of one
    beats = 0.25 + period * np.arange(96)
    times = np.arange(int(beats[-1] * rate) + 5) / rate
    chords = [(0, 4, 7), (9, 0, 4), (5, 9, 0), (7, 11, 2)]  # C, Am, F, G, a bar each, bars from beat 2
    bar = np.floor((times - beats[2]) / (4 * period)).astype(int) % len(chords)
    chroma = np.full((len(times), 12), 0.05)
    for i, chord in enumerate(chords):
        chroma[np.ix_(bar == i, chord)] = 1.0
    changes = bars.chord_changes(bars.chroma_at_beats(chroma, times, beats))
    assert set(np.flatnonzero(changes > 1.0)) <= set(range(2, 96, 4))
    # the network hesitates: every beat a little likely to start a bar, the one before the bar line a little more
    downbeat = np.full(96, 0.3)
    downbeat[1::4] = 0.35
    unsure, _ = bars.bar_positions(downbeat)
    assert set(np.flatnonzero(unsure == 1)) == set(range(1, 96, 4))
    position, meter = bars.bar_positions(downbeat, changes)
    assert set(np.flatnonzero(position == 1)) == set(range(2, 96, 4))
    assert np.all(meter == 4)


def test_three_four_is_recognized() -> None:
    downbeat = np.full(48, 0.05)
    downbeat[::3] = 0.7
    position, meter = bars.bar_positions(downbeat)
    assert np.all(meter == 3) and np.all(position[::3] == 1)


def groove(seconds: float, bpm: float) -> np.ndarray:
    """A kick/snare/hat groove with a bass note on each bar's first beat, 44.1 kHz mono."""
    sr, period = beat_activation.SAMPLE_RATE, 60 / bpm
    t = np.arange(int(sr * 0.25)) / sr
    kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-t * 30)) * t) * np.exp(-t * 12)
    rng = np.random.default_rng(0)
    snare = rng.standard_normal(len(t)) * np.exp(-t * 25) * 0.5
    hat = rng.standard_normal(len(t)) * np.exp(-t * 80) * 0.15
    x = np.zeros(int(sr * seconds))
    for k in range(int(seconds / period * 2)):
        at = int(k * period / 2 * sr) + sr // 2
        if at + len(t) >= len(x):
            break
        x[at : at + len(t)] += hat
        if k % 2 == 0:
            x[at : at + len(t)] += kick if (k // 2) % 2 == 0 else snare
    bass = 0.2 * np.sin(2 * np.pi * 55 * np.arange(len(x)) / sr) * ((np.arange(len(x)) / sr) % (4 * period) < period)
    return (x + bass).astype(np.float32)


@pytest.mark.accuracy
@pytest.mark.slow
def test_network_marks_the_beats_of_a_drum_pattern() -> None:
    """madmom's network on a synthesized kick/snare/hat groove at 128 BPM: beats at 128, downbeats on 1."""
    bpm = 128.0
    x = groove(40.0, bpm)
    act = beat_activation.activations(x)
    assert act.shape == (beat_activation.frame_count(len(x)), 2)
    beats = beat_grid.track_beats(beat_grid.beat_strength(act))
    assert beat_grid.bpm_of(beats) == pytest.approx(bpm, rel=0.03)
    # The fast setting (one network) hears the same tempo, from activations of its own.
    one = beat_activation.activations(x, networks=1)
    assert one.shape == act.shape and not np.allclose(one, act)
    assert beat_grid.bpm_of(beat_grid.track_beats(beat_grid.beat_strength(one))) == pytest.approx(bpm, rel=0.03)
    with pytest.raises(ValueError, match="networks"):
        beat_activation.activations(x[: beat_activation.SAMPLE_RATE], networks=9)


@pytest.mark.slow
def test_batched_networks_equal_madmoms_own() -> None:
    """The batched forward pass against madmom's ensemble on the same features: equal up to float32 rounding,
    which the recurrence amplifies in places (madmom's own float32 and float64 runs differ as much)."""
    beat_activation.import_madmom()  # through its shim, whichever test runs first
    from madmom.audio.signal import Signal
    from madmom.ml.nn import NeuralNetworkEnsemble
    from madmom.models import DOWNBEATS_BLSTM

    from offbeat.dsp import blstm

    pre, ensemble = beat_activation._processors(3)
    features = np.asarray(pre(Signal(groove(20.0, 140.0), sample_rate=beat_activation.SAMPLE_RATE)))
    theirs = np.asarray(NeuralNetworkEnsemble.load(DOWNBEATS_BLSTM[:3])(features))
    ours = blstm.activate(ensemble, features[None])[0]
    assert ours.shape == theirs.shape == (len(features), 3)
    assert np.abs(ours - theirs).mean() < 1e-3 and np.abs(ours - theirs).max() < 0.05
    # Two blocks in one batch: each is its own sequence, as if run alone.
    halves = features[: len(features) // 2 * 2].reshape(2, -1, features.shape[1])
    both = blstm.activate(ensemble, halves)
    assert np.allclose(both[1], blstm.activate(ensemble, halves[1:])[0], atol=1e-5)


@pytest.mark.slow
def test_spans_give_each_block_its_own_activations(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks batched in spans (features computed once per span) against each block computed alone from its own
    audio, as before spans: the same frames up to float32 rounding and a block's outermost context features now
    being those of its neighbouring audio rather than of a signal edge (on music the recurrence amplifies both, to
    a few hundredths in the first seconds of some blocks). Spans of several blocks, a short last block run on its
    own, and progress after each block."""
    monkeypatch.setattr(beat_activation, "BLOCK_FRAMES", 6 * FPS)
    monkeypatch.setattr(beat_activation, "BATCH_BLOCKS", 3)
    x = groove(32.0, 126.0)  # two spans of three blocks, the last block 2 s

    def read(a: int, b: int) -> np.ndarray:
        return np.pad(x, (max(0, -a), max(0, b - len(x))))[a + max(0, -a) : b + max(0, -a)]

    progress: list[float] = []
    blocks = list(beat_activation.blocked_activations(read, len(x), progress.append, networks=2))
    frames, size = beat_activation.frame_count(len(x)), 6 * FPS
    assert [len(b) for b in blocks] == [size] * 5 + [frames - 5 * size]
    assert progress == pytest.approx([min(1.0, size * (i + 1) / frames) for i in range(6)])
    ctx, hop = beat_activation.CONTEXT_FRAMES, beat_activation.HOP
    alone = [
        beat_activation.activations(read((first - ctx) * hop, (min(frames, first + size) + ctx) * hop), 2)[
            ctx : ctx + min(size, frames - first)
        ]
        for first in range(0, frames, size)
    ]
    for got, own in zip(blocks, alone, strict=True):
        diff = np.abs(got - own)
        assert diff.mean() < 1e-5 and diff.max() < 1e-3


@pytest.mark.slow
def test_features_in_pieces_equal_the_whole_block() -> None:
    """madmom's features computed a piece at a time (with audio margins) are the whole block's, frame for frame
    (up to float32 rounding: the FFT's result may differ in the last bit with the input's alignment in memory)."""
    from madmom.audio.signal import Signal

    pre, _ = beat_activation._processors(1)
    x = groove(beat_activation.FEATURE_PIECE_FRAMES / beat_activation.FPS * 2.3, 131.0)
    whole = np.asarray(pre(Signal(x, sample_rate=beat_activation.SAMPLE_RATE)))
    pieces = beat_activation._features(pre, x)
    assert pieces.shape == whole.shape == (beat_activation.frame_count(len(x)), whole.shape[1])
    np.testing.assert_allclose(pieces, whole, rtol=0, atol=1e-5)


def a_minor_progression() -> np.ndarray:
    """Synthesized A minor harmony (Am, Dm, E, Am triads of sawtooth-like tones), 24 s."""
    sr = beat_activation.SAMPLE_RATE
    t = np.arange(sr * 2) / sr
    chords = [(57, 60, 64), (50, 57, 62, 65), (52, 56, 59, 64), (45, 57, 60, 64)]
    parts = []
    for _ in range(3):
        for chord in chords:
            tone = sum(
                sum(np.sin(2 * np.pi * 440 * 2 ** ((n - 69) / 12) * h * t) / h for h in range(1, 6)) for n in chord
            )
            parts.append(tone * np.exp(-t * 0.7))
    return (0.1 * np.concatenate(parts)).astype(np.float32)


@pytest.mark.accuracy
@pytest.mark.slow
def test_key_network_hears_a_minor_chord_progression() -> None:
    from offbeat.dsp import key_network

    audio = a_minor_progression()
    key = key_network.estimate_key(audio, rhythm.chroma_frames(audio, beat_activation.SAMPLE_RATE))
    assert key.musical == "A Minor" and key.camelot == "8A"


def chroma_of(*pitch_classes: int) -> np.ndarray:
    """Chroma frames in which the given pitch classes sound, the first one twice as strongly (the tonic)."""
    frame = np.full(12, 0.05)
    frame[list(pitch_classes)] = 1.0
    frame[pitch_classes[0]] = 2.0
    return np.tile(frame, (20, 1))


def network(best: tuple[int, int], relative: tuple[int, int], share: float) -> np.ndarray:
    """Key probabilities (rows major, minor; columns C..B): `best` most likely, `relative` at `share` of it."""
    p = np.full((2, 12), 0.01)
    p[best] = 0.8
    p[relative] = 0.8 * share
    return p


def test_the_chroma_profile_tells_a_key_from_its_relative_where_the_network_hesitates() -> None:
    from offbeat.dsp import key_network

    a_minor = chroma_of(9, 0, 4)  # A C E, A strongest
    c_major = chroma_of(0, 4, 7)  # C E G, C strongest
    hesitant = network((0, 0), (1, 9), 0.5)  # C major first, A minor at half its probability
    assert key_network.decide(hesitant, a_minor).musical == "A Minor"
    assert key_network.decide(hesitant, c_major).musical == "C Major"
    assert key_network.decide(network((1, 9), (0, 0), 0.5), c_major).musical == "C Major"
    sure = network((0, 0), (1, 9), key_network.RELATIVE_SHARE / 2)
    assert key_network.decide(sure, a_minor).musical == "C Major"  # the network has ruled the relative key out
    assert key_network.decide(hesitant, np.ones((20, 12))).musical == "C Major"  # flat chroma has no say
    unsure = np.full((2, 12), 1 / 24)
    assert key_network.decide(unsure, a_minor).musical == "A Minor"  # under MIN_CONFIDENCE the profile decides


@pytest.mark.slow
def test_batched_convolutions_equal_madmoms_own() -> None:
    """Every convolutional layer of the key network, and its whole output, as madmom computes them itself."""
    from offbeat.dsp import convolution, key_network

    batched = key_network._processor()  # imports madmom through its shim first
    from madmom.audio.signal import Signal
    from madmom.features.key import CNNKeyRecognitionProcessor
    from madmom.ml.nn import NeuralNetwork
    from madmom.ml.nn.layers import ConvolutionalLayer

    (network,) = key_network._networks(batched, NeuralNetwork)
    layers = [layer for layer in network.layers if isinstance(layer, ConvolutionalLayer)]
    assert len(layers) == 9 and all(isinstance(layer.activate, functools.partial) for layer in layers)
    rng = np.random.default_rng(5)
    for layer in layers:
        x = rng.normal(size=(23, 17, layer.weights.shape[0])).astype(np.float32)
        np.testing.assert_allclose(convolution.activate(layer, x), ConvolutionalLayer.activate(layer, x), atol=1e-4)
    audio = a_minor_progression()
    ours, madmoms = (np.asarray(p(Signal(audio, sample_rate=44100))) for p in (batched, CNNKeyRecognitionProcessor()))
    assert ours.shape == madmoms.shape == (1, 24)
    np.testing.assert_allclose(ours, madmoms, atol=1e-5)


def test_blocked_stft_equals_madmoms_own() -> None:
    """madmom's STFT, as `import_madmom` installs it (frames in blocks), against madmom's per-frame loop: frame
    sizes of the beat and key networks, whole signals and slices of frames (their origin moves)."""
    beat_activation.import_madmom()
    import madmom.audio.stft as madmom_stft
    from madmom.audio.signal import FramedSignal, Signal

    assert madmom_stft.stft is not madmom_stft.madmom_stft  # installed once, the original kept
    x = (0.1 * np.random.default_rng(2).normal(size=44100 * 3)).astype(np.float32)
    for size, fps in ((1024, 100), (4096, 100), (8192, 5)):
        frames = FramedSignal(Signal(x, sample_rate=44100), frame_size=size, fps=fps)
        window = np.hanning(size).astype(np.float32)
        for part in (frames, frames[3 : len(frames) - 2]):
            ours, theirs = madmom_stft.stft(part, window), madmom_stft.madmom_stft(part, window)
            assert ours.shape == theirs.shape == (len(part), size // 2) and ours.dtype == theirs.dtype
            np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6 * float(np.abs(theirs).max()))
