"""Which stem band to ship: Spleeter's stock 2stems (masks zero above 11 kHz) against its own full-band options.

For each band of `offbeat.media.separation.BANDS` this separates the same audio and prints, per stem:

- `low_vs_stock`: SNR (dB) of the stem against the stock (`11khz`) stem below 10 kHz: the separation that
  the network was trained for must not change (inf: identical);
- `low_sdr`: SDR (dB) against the true stem below 10 kHz (synthetic mixes only, where the truth is known);
- `hf_sdr`: the same above 11.5 kHz, i.e. whether the high band went to the right stem;
- `hf_share`: the stem's share of the high-band energy of the mix (truth's share in brackets);
- `resid_hf` / `resid_top`: energy of mix - sum(stems) above 11.5 kHz / above 17 kHz, dB relative to the
  mix's energy there (-inf: the stems sum back exactly);
- `x_realtime`: audio seconds separated per second (warm model).

Inputs: a synthetic mix with a known voice and beat (the hats carry the high band), the same with a bright
voice (sibilance and air above 11 kHz that belong to the vocals stem), and, when the recorded corpus cache
is there, real songs (no stem truth: only the stock comparison and the residual).

    .venv/bin/python -m bench.accuracy.stems_band [--seconds 30] [--songs 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from scipy import signal

from offbeat import synth
from offbeat.media import separation

SR = 44100
MODELS = Path(__file__).resolve().parents[2] / "models"
SONGS = Path(__file__).resolve().parents[2] / ".corpus-cache" / "extract"


def band_energy(x: np.ndarray, lo: float, hi: float) -> float:
    """Energy of a (frames, 2) signal between lo and hi Hz (STFT, 2048-sample Hann frames)."""
    freqs, _, z = signal.stft(x.T, SR, nperseg=2048)
    keep = (freqs >= lo) & (freqs < hi)
    return float(np.sum(np.abs(z[:, keep]) ** 2))


def ratio_db(num: float, den: float) -> float:
    return float(10 * np.log10(max(num, 1e-30) / max(den, 1e-30)))


def bright_voice(voice: np.ndarray, seed: int = 3) -> np.ndarray:
    """Sibilance and air for a voice: noise above 6 kHz following the voice's own envelope, 12 dB under it."""
    rng = np.random.default_rng(seed)
    env = np.abs(signal.hilbert(voice[:, 0]))
    env = np.convolve(env, np.ones(441) / 441, mode="same")
    sos = signal.butter(4, 6000, "highpass", fs=SR, output="sos")
    noise = signal.sosfilt(sos, rng.standard_normal(len(voice))) * env * 0.5
    return np.stack([noise, noise * 0.9], axis=1).astype(np.float32)


def cases(seconds: float, songs: int) -> list[tuple[str, np.ndarray, dict[str, np.ndarray] | None]]:
    spec = synth.MixSpec((synth.Section(seconds, 124.0, vocals=True),), seed=5)
    beat_spec = synth.MixSpec((synth.Section(seconds, 124.0, vocals=False),), seed=5)
    mix, beat = synth.render(spec, 0, seconds), synth.render(beat_spec, 0, seconds)
    voice = mix - beat
    bright = voice + bright_voice(voice)
    found = [
        ("synthetic", mix, {"vocals": voice, "accompaniment": beat}),
        ("synthetic-bright-voice", beat + bright, {"vocals": bright, "accompaniment": beat}),
    ]
    for folder in sorted(SONGS.glob("*/usr/share/games/fretsonfire/data/songs/*/*/"))[:songs]:
        parts = [sf.read(str(p), dtype="float32", always_2d=True) for p in sorted(folder.glob("*.ogg"))]
        length = min(len(a) for a, _ in parts)
        audio = sum(a[:length] for a, _ in parts)
        rate = parts[0][1]
        if rate != SR:
            audio = soxr.resample(audio, rate, SR)
        middle = len(audio) // 2
        audio = audio[max(0, middle - int(seconds * SR) // 2) :][: int(seconds * SR)]
        found.append((f"song:{folder.name}", (audio / max(1.0, np.abs(audio).max())).astype(np.float32), None))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--songs", type=int, default=2)
    args = parser.parse_args()
    for band in separation.BANDS:  # build every graph first, so timings are warm
        separation.separate(np.zeros((SR, 2), np.float32), "2stems", MODELS, band=band)
    for name, mix, truth in cases(args.seconds, args.songs):
        print(f"\n== {name} ({len(mix) / SR:.0f} s)")
        stock = separation.separate(mix, "2stems", MODELS, band="11khz")
        for band in separation.BANDS:
            started = time.perf_counter()
            stems = separation.separate(mix, "2stems", MODELS, band=band)
            speed = len(mix) / SR / (time.perf_counter() - started)
            resid = mix - sum(stems.values())
            hf_mix = band_energy(mix, 11500, SR)
            line = [
                f"{band:>11}",
                f"resid_hf {ratio_db(band_energy(resid, 11500, SR), hf_mix):7.1f}",
                f"resid_top {ratio_db(band_energy(resid, 17000, SR), band_energy(mix, 17000, SR)):7.1f}",
                f"x_realtime {speed:5.1f}",
            ]
            for stem, audio in stems.items():
                low = ratio_db(band_energy(stock[stem], 0, 10000), band_energy(audio - stock[stem], 0, 10000))
                parts = [f"low_vs_stock {low:6.1f}"]
                share = band_energy(audio, 11500, SR) / max(hf_mix, 1e-30)
                if truth is not None:
                    ref = truth[stem]
                    low_sdr = ratio_db(band_energy(ref, 0, 10000), band_energy(audio - ref, 0, 10000))
                    hf_sdr = ratio_db(band_energy(ref, 11500, SR), band_energy(audio - ref, 11500, SR))
                    true_share = band_energy(ref, 11500, SR) / max(hf_mix, 1e-30)
                    parts += [f"low_sdr {low_sdr:5.1f}", f"hf_sdr {hf_sdr:6.1f}"]
                    parts.append(f"hf_share {share:.2f} ({true_share:.2f})")
                else:
                    parts.append(f"hf_share {share:.2f}")
                line.append(f"{stem}: " + " ".join(parts))
            print(" | ".join(line))


if __name__ == "__main__":
    main()
