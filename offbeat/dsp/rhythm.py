"""Rhythm analysis: frame features, chroma, the drum beat grid. Numpy in, numpy out.

Long mixes are handled in blocks of frames with BLOCK_CONTEXT frames of context on each side, so block
results concatenate into the same envelopes a whole-signal pass would give, in memory that does not
grow with the mix.

The mix's beats and tempo come from madmom's network (`offbeat.dsp.beat_activation`, `beat_grid`); the
onset envelopes here describe the sound for track boundaries and follow a known tempo curve through a drums
stem (`beat_times`).
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np

N_FFT = 2048
HOP = 512
N_MELS = 128
SHAPE_BANDS = 32  # mel bands kept per frame (groups of 4) to describe timbre for track boundaries
LOW_BAND_HZ = 200.0
CRACK_BAND_HZ = (1500.0, 5000.0)  # a snare's or clap's crack: above the kick and bass, below the hats' hiss
DB_FLOOR = 1e-4  # mel power floor (-40 dB re 1): keeps near-silence from producing huge log flux
CHROMA_N_FFT, CHROMA_HOP = 8192, 2048
CHROMA_STEP = CHROMA_HOP // HOP  # analysis frames per chroma frame
HPSS_KERNEL = 31  # frames of the median filter along time that keeps the harmonic part
HPSS_MEL_KERNEL = 9  # mel bands of the median filter along frequency that keeps the percussive part
BLOCK_CONTEXT = HPSS_KERNEL // 2 + 1  # frames of context each side that make block results exact
assert BLOCK_CONTEXT % CHROMA_STEP == 0, "blocks must start on the chroma frame grid too"
UPSAMPLE = 4  # tempo and beats work on the onset envelope at 4x the frame rate


@dataclass(frozen=True)
class FrameFeatures:
    """Per-frame features from one STFT (frame i is centred at (i * HOP + N_FFT / 2) / sr)."""

    onset: np.ndarray  # (frames,) spectral flux of log-mel power, all bands
    onset_low: np.ndarray  # (frames,) the same below LOW_BAND_HZ: kick and bass, where dance beats sit
    onset_crack: np.ndarray  # (frames,) the same in CRACK_BAND_HZ: the backbeat's snare or clap (beat phase)
    rms: np.ndarray  # (frames,)
    centroid: np.ndarray  # (frames,) Hz
    bands: np.ndarray  # (frames, SHAPE_BANDS) mel power in groups of adjacent bands: the spectrum's shape

    def sliced(self, keep: slice) -> FrameFeatures:
        return FrameFeatures(*(getattr(self, f)[keep] for f in self.__dataclass_fields__))


def frame_time_offset(sr: int) -> float:
    """Seconds from a frame's start sample to its centre: frame i is at i * HOP / sr + this."""
    return N_FFT / 2 / sr


def chroma_time_offset(sr: int) -> float:
    """Seconds from a chroma frame's start sample to its centre: chroma frame j is at j * CHROMA_HOP / sr + this."""
    return CHROMA_N_FFT / 2 / sr


def frame_count(samples: int) -> int:
    """Frames covering `samples` (the signal is zero-padded at the end to fill the last frames)."""
    return -(-samples // HOP)


def power_spectrogram(block: np.ndarray) -> np.ndarray:
    """|STFT|^2 of frames starting every HOP samples; the block must hold (frames - 1) * HOP + N_FFT samples."""
    return np.abs(librosa.stft(block, n_fft=N_FFT, hop_length=HOP, center=False)) ** 2


def mel_power(power: np.ndarray, sr: int) -> np.ndarray:
    return librosa.feature.melspectrogram(S=power, sr=sr, n_mels=N_MELS)


def onset_envelopes(mel: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(all-band, low-band, crack-band) spectral flux of log-mel power; frame 0 has no predecessor and gets 0.

    A fixed dB reference and floor (no per-call top_db) keep block-wise results equal to whole ones.
    """
    mel_db = librosa.power_to_db(mel, ref=1.0, amin=DB_FLOOR, top_db=None)
    centres = _mel_centres(sr)
    crack = (centres >= CRACK_BAND_HZ[0]) & (centres < CRACK_BAND_HZ[1])
    return _flux(mel_db), _flux(mel_db[_low_bands(sr)]), _flux(mel_db[crack])


def _mel_centres(sr: int) -> np.ndarray:
    """Centre frequency (Hz) of each of the N_MELS bands, lowest first."""
    return librosa.mel_frequencies(n_mels=N_MELS + 2, fmax=sr / 2)[1:-1]


def _low_bands(sr: int) -> np.ndarray:
    """Mask of the mel bands centred below LOW_BAND_HZ (the lowest bands come first)."""
    return _mel_centres(sr) < LOW_BAND_HZ


def _flux(mel_db: np.ndarray) -> np.ndarray:
    """Mean rise of log power per frame; frame 0 has no predecessor and gets 0."""
    return np.maximum(0.0, np.diff(mel_db, axis=1, prepend=mel_db[:, :1])).mean(axis=0).astype(np.float32)


def frame_features(block: np.ndarray, sr: int) -> FrameFeatures:
    """Every feature of the block's frames from one STFT. Callers working in blocks pass some frames of
    context on each side and keep the middle, which then equals a whole-signal pass."""
    power = power_spectrogram(block)
    mel = mel_power(power, sr)
    onset, onset_low, onset_crack = onset_envelopes(mel, sr)
    bands = mel.reshape(SHAPE_BANDS, N_MELS // SHAPE_BANDS, -1).mean(axis=1).T
    rms = np.sqrt(power.sum(axis=0) * 2 / N_FFT**2 / 0.375)  # Hann power sum -> signal RMS
    centroid = librosa.feature.spectral_centroid(S=np.sqrt(power), sr=sr, n_fft=N_FFT)[0]
    return FrameFeatures(
        onset, onset_low, onset_crack, rms.astype(np.float32), centroid.astype(np.float32), bands.astype(np.float32)
    )


def chroma_frames(block: np.ndarray, sr: int) -> np.ndarray:
    """(frames, 12) chroma every CHROMA_HOP samples from a long-window STFT.

    Semitones are a few hertz apart in the bass, finer than N_FFT's 10.8 Hz bins: a 8192-sample window
    (2.7 Hz) tells a major from a minor third there. Frame j covers block[j * CHROMA_HOP :][:CHROMA_N_FFT].
    """
    power = np.abs(librosa.stft(block, n_fft=CHROMA_N_FFT, hop_length=CHROMA_HOP, center=False)) ** 2
    return librosa.feature.chroma_stft(S=power, sr=sr, n_fft=CHROMA_N_FFT, tuning=0.0).T.astype(np.float32)


def percussive_onset(block: np.ndarray, sr: int) -> np.ndarray:
    """Low-band onset envelope of the percussive part, for a drum beat grid when the separation model has no
    drums stem. Harmonic/percussive separation by median filtering runs on the mel bands the low-band
    envelope is built from (plus the filter's reach above them), not on 1025 STFT bins: far cheaper."""
    mel = mel_power(power_spectrogram(block), sr)
    bands = int(np.count_nonzero(_low_bands(sr))) + HPSS_MEL_KERNEL // 2
    _, percussive = librosa.decompose.hpss(mel[:bands], kernel_size=(HPSS_KERNEL, HPSS_MEL_KERNEL))
    return _flux(librosa.power_to_db(percussive, ref=1.0, amin=DB_FLOOR, top_db=None)[_low_bands(sr)[:bands]])


def upsample(envelope: np.ndarray) -> np.ndarray:
    """The envelope at UPSAMPLE times the frame rate (linear), for sub-frame tempo and beat resolution."""
    n = len(envelope)
    return np.interp(np.arange(n * UPSAMPLE) / UPSAMPLE, np.arange(n), envelope).astype(np.float32)


def track_beats(envelope: np.ndarray, fps: float, bpm_per_frame: np.ndarray) -> np.ndarray:
    """Beat positions (frames of `envelope`) following a time-varying tempo (librosa's dynamic programme).

    Leading and trailing beats are not trimmed here: the caller knows where the silence is.
    """
    _, beats = librosa.beat.beat_track(
        onset_envelope=envelope.astype(np.float64),
        sr=fps * HOP,
        hop_length=HOP,
        bpm=bpm_per_frame,
        trim=False,
        units="frames",
    )
    return np.asarray(beats, dtype=np.int64)


def bpm_from_beats(times: np.ndarray, seconds: int, window_sec: float = 4.0) -> np.ndarray:
    """Per-second BPM from the median inter-beat interval within `window_sec` of each second (NaN where
    fewer than two intervals are that close: silence, or no beat)."""
    curve = np.full(seconds, np.nan, dtype=np.float32)
    if len(times) < 3:
        return curve
    intervals = np.diff(times)
    mids = (times[1:] + times[:-1]) / 2
    centres = np.arange(seconds) + 0.5
    lo = np.searchsorted(mids, centres - window_sec)
    hi = np.searchsorted(mids, centres + window_sec)
    for second in np.flatnonzero(hi - lo >= 2):
        curve[second] = 60.0 / np.median(intervals[lo[second] : hi[second]])
    return curve


def drum_onset(block: np.ndarray, sr: int) -> np.ndarray:
    """Low-band onset envelope of a drums stem."""
    return onset_envelopes(mel_power(power_spectrogram(block), sr), sr)[1]


def beat_times(
    onset_low: np.ndarray, sr: int, tempo_per_second: np.ndarray, start_sec: float, end_sec: float
) -> np.ndarray:
    """Beat times (seconds) that follow the tempo curve through an onset envelope at the frame rate,
    kept between `start_sec` and `end_sec` (the music, without leading and trailing silence)."""
    envelope = upsample(onset_low)
    fps = sr / HOP * UPSAMPLE
    second_of_frame = np.minimum((np.arange(len(envelope)) / fps).astype(int), len(tempo_per_second) - 1)
    frames = track_beats(envelope, fps, tempo_per_second[second_of_frame].astype(np.float64))
    times = frames / fps + frame_time_offset(sr)
    return times[(times >= start_sec - HOP / sr) & (times <= end_sec)]
