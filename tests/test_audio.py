import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile as sf
import soxr

from offbeat.dsp import channels as chans
from offbeat.dsp import silence
from offbeat.errors import AnalysisError, ErrorCode
from offbeat.media import decode as dec

from .audio_files import write_samples, write_wav

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def decode_all(path: Path, ffmpeg: str = "ffmpeg") -> tuple[dec.SourceInfo, np.ndarray, np.ndarray]:
    info = dec.probe(path, ffmpeg)
    blocks = list(dec.decode_blocks(path, info, sample_rate=44100, analysis_rate=22050, block_sec=1.0, ffmpeg=ffmpeg))
    return info, np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks])


def tone(seconds: float, rate: int, channels: int, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.stack([0.5 * np.sin(2 * np.pi * hz * (c + 1) * t) for c in range(channels)], axis=1)


@pytest.mark.parametrize(
    ("suffix", "subtype", "rate", "channels"),
    [
        (".wav", "PCM_16", 44100, 2),
        (".wav", "PCM_24", 48000, 1),
        (".wav", "PCM_32", 22050, 2),
        (".wav", "FLOAT", 96000, 2),
        (".wav", "PCM_U8", 8000, 1),
        (".wav", "PCM_16", 48000, 6),
        (".flac", "PCM_16", 44100, 2),
        (".ogg", "VORBIS", 44100, 2),
        (".mp3", "MPEG_LAYER_III", 44100, 2),
    ],
)
def test_decodes_formats_rates_and_layouts(tmp_path: Path, suffix: str, subtype: str, rate: int, channels: int) -> None:
    source = tone(2.5, rate, channels)
    path = write_samples(tmp_path / f"x{suffix}", source, rate, subtype)
    info, stereo, mono = decode_all(path)
    assert info.decoder == "libsndfile" and info.sample_rate == rate and info.channels == channels
    assert stereo.dtype == np.float32 and stereo.shape[1] == 2
    # Length preserved at the new rates (MP3 adds a little encoder padding).
    slack = 2000 if suffix == ".mp3" else 2
    assert abs(len(stereo) - 2.5 * 44100) <= slack
    assert abs(len(mono) - 2.5 * 22050) <= slack / 2
    # Content preserved: compare to the reference resampled independently (skip codec delay at the edges).
    expected = soxr.resample(chans.to_stereo(source.astype(np.float32)), rate, 44100)
    mid = slice(22050, 66150)
    if suffix in (".wav", ".flac"):
        tolerance = 0.02 if subtype == "PCM_U8" else 1e-3
        assert np.max(np.abs(stereo[mid] - expected[mid])) < tolerance
    else:  # lossy codecs: the energy survives
        assert abs(np.std(stereo[mid]) - np.std(expected[mid])) < 0.05


def test_m4a_goes_through_ffmpeg(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "x.wav", seconds=3.0, lead=0.5, tail=0.0)
    m4a = tmp_path / "x.m4a"
    subprocess.run([FFMPEG, "-v", "error", "-i", str(wav), "-c:a", "aac", str(m4a)], check=True)
    with pytest.raises(AnalysisError) as caught:
        dec.probe(m4a, "no-such-ffmpeg")
    assert caught.value.code is ErrorCode.UNSUPPORTED_AUDIO and "ffmpeg" in caught.value.message
    info, stereo, _ = decode_all(m4a, FFMPEG)
    assert info.decoder == "ffmpeg" and info.sample_rate == 44100
    assert abs(len(stereo) / 44100 - 3.5) < 0.1


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda p: p, ErrorCode.FILE_NOT_FOUND),
        (lambda p: (p.mkdir(), p)[1], ErrorCode.INVALID_PATH),
        (lambda p: (p.write_bytes(b""), p)[1], ErrorCode.UNSUPPORTED_AUDIO),
        (lambda p: (p.write_bytes(b"%PDF-1.4 not audio at all" * 100), p)[1], ErrorCode.UNSUPPORTED_AUDIO),
        (lambda p: (p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt "), p)[1], ErrorCode.CORRUPT_AUDIO),
    ],
)
def test_bad_files_get_their_error_code(tmp_path: Path, make, code: ErrorCode) -> None:
    path = make(tmp_path / "input.wav")
    with pytest.raises(AnalysisError) as caught:
        dec.probe(path, FFMPEG)
    assert caught.value.code is code
    assert "input.wav" in caught.value.message


def test_truncated_wav_is_corrupt(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "full.wav", seconds=4.0)
    raw = path.read_bytes()
    (tmp_path / "cut.wav").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(AnalysisError) as caught:
        dec.probe(tmp_path / "cut.wav")
    assert caught.value.code is ErrorCode.CORRUPT_AUDIO and "truncated" in caught.value.message


def test_silence_bounds_find_leading_and_trailing_silence() -> None:
    rate = 22050
    signal = np.concatenate([np.zeros(int(1.5 * rate)), 0.3 * np.ones(3 * rate), np.zeros(int(0.75 * rate))])
    levels = silence.frame_levels_db(signal.astype(np.float32))
    start, end = silence.silence_bounds(levels, -60.0, silence.TRIM_FRAME / rate, len(signal) / rate)
    assert start == pytest.approx(1.5, abs=0.025)
    assert end == pytest.approx(0.75, abs=0.025)
    assert silence.silence_bounds(silence.frame_levels_db(np.zeros(rate, np.float32)), -60.0, 0.02, 1.0) is None


def test_libsndfile_channel_folding() -> None:
    six = np.arange(12, dtype=np.float32).reshape(2, 6)
    np.testing.assert_array_equal(chans.to_stereo(six), [[2, 3], [8, 9]])
    np.testing.assert_array_equal(chans.to_stereo(np.ones((3, 1), np.float32)), np.ones((3, 2)))


def test_sf_reads_what_we_write(tmp_path: Path) -> None:
    # Guards the test helpers themselves: the synthetic mix has the requested length and silence.
    path = write_wav(tmp_path / "m.wav", seconds=2.0, lead=1.0, tail=0.5)
    data, rate = sf.read(str(path))
    assert len(data) == int(3.5 * rate)
    assert np.max(np.abs(data[: int(0.99 * rate)])) == 0
