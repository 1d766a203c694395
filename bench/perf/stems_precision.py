"""Cheaper arithmetic for Spleeter's U-Nets under onnxruntime: int8 and float16 networks against the fp32 export.

Variants of the fp32 export (`masks-f1024.onnx`, 2stems, the default band), each written to `--work`:

- `int8-static`: onnxruntime's static QDQ quantization of every Conv and ConvTranspose, weights int8 per channel,
  activations uint8 with MinMax ranges calibrated on real music of the tune split (segments of the recorded and
  game corpora's tune packages); `--reduce-range` quantizes weights to 7 bits, which onnxruntime asks for on x86
  without VNNI (an 8-bit product pair can overflow the int16 accumulator of AVX2's vpmaddubsw there);
- `int8-dynamic`: onnxruntime's dynamic quantization (Conv to ConvInteger, weights int8 per channel, activation
  ranges taken per call; onnxruntime quantizes no ConvTranspose dynamically);
- `fp16`: every weight and activation in float16, inputs and outputs float32.

Quality, per stem, against what the fp32 network gives on the same audio:

- real music of the test split (recorded and game corpora; no stem truth): `snr` of each stem to the fp32 stem
  (bar: >= 30 dB), and `err_mix`, the energy of that difference relative to the mix (the two stems' errors are
  equal and opposite, since they sum to the mix): an instrumental's vocals stem lies 40-50 dB under the mix,
  so there `snr` is the error seen against a near-silent stem;
- tracks of the synthetic corpus's test seeds rendered with their singer on a bus of its own (`StemRenderer`:
  the same random draws, hence the same track): `sdr` of each stem against the true one, fp32 and variant
  (bar: no more than 0.2 dB below fp32).

Speed: seconds of separation (`OnnxSeparator.separate`, STFT to inverse STFT) per minute of audio on one
excerpt, every variant in this one process, rounds alternating the order, medians reported.

    .venv/bin/python -m bench.perf.stems_precision [--pieces 12] [--seconds 24] [--synthetic 3] [--rounds 5]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from bench.corpus.game import sources as game
from bench.corpus.recorded import sources as recorded
from bench.corpus.synthetic.arrangement import Bus
from bench.corpus.synthetic.dsp import SR as SYNTH_SR
from bench.corpus.synthetic.dsp import convolve_into, highpass, limit_peaks, lowpass, mean_square, time_axis
from bench.corpus.synthetic.plan import plan_mix
from bench.corpus.synthetic.render import TrackRenderer
from offbeat.media import onnx_export
from offbeat.media.onnx_runtime import OnnxSeparator
from offbeat.media.separation import DEFAULT_BAND, model_params

SR = 44100
ROOT = Path(__file__).resolve().parents[2]
VARIANTS = ("int8-static", "int8-dynamic", "fp16")
QUIET_DB = -40.0  # an excerpt quieter than this (RMS, dBFS) is a fade or a pause, not music


# --------------------------------------------------------------------------------------------------------------
# Audio


def load_mix(paths: list[Path]) -> np.ndarray:
    """The sum of `paths` (a song's parts, or one file) as (frames, 2) float32 at 44.1 kHz, peak at most 1."""
    parts = []
    for path in paths:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        audio = np.repeat(audio, 2, axis=1) if audio.shape[1] == 1 else audio[:, :2]
        parts.append(soxr.resample(audio, rate, SR) if rate != SR else audio)
    n = min(len(a) for a in parts)
    mix = sum(a[:n] for a in parts)
    return (mix / max(1.0, float(np.abs(mix).max()))).astype(np.float32)


def real_music(split: str, cache: Path) -> list[tuple[str, list[Path]]]:
    """(name, files to sum) of every piece of `split` in the recorded and game corpora (fetched into `cache`)."""
    songs = recorded.discover_songs(recorded.fetch_packages(cache))
    found = [(s.key, s.stems) for s in songs if s.split == split]
    packages = tuple(p for p in game.PACKAGES if p.split == split)
    pieces = game.discover_pieces(game.fetch_packages(cache, packages), packages)
    return found + [(p.key, [p.path]) for p in pieces]


def spread(items: list, count: int) -> list:
    """`count` of `items` spread evenly over the list (every one when there are fewer)."""
    if count >= len(items):
        return list(items)
    return [items[round(i * (len(items) - 1) / max(1, count - 1))] for i in range(count)]


def excerpt(audio: np.ndarray, seconds: float, where: float = 0.5) -> np.ndarray:
    n = int(seconds * SR)
    middle = int(len(audio) * where)
    return audio[max(0, middle - n // 2) :][:n]


def audible_excerpt(audio: np.ndarray, seconds: float) -> np.ndarray | None:
    """An excerpt around the middle, a third or two thirds of `audio` whose RMS is above QUIET_DB, else None."""
    for where in (0.5, 1 / 3, 2 / 3):
        part = excerpt(audio, seconds, where)
        if len(part) and ratio_db(energy(part) / part.size, 1.0) > QUIET_DB:
            return part
    return None


class StemRenderer(TrackRenderer):
    """A synthetic-corpus track whose singer plays on a bus of its own, with the same random draws as
    `TrackRenderer` (so the same track): the voice gets its own share of the same reverb and the master gain,
    and `accompaniment` is the limited mix less the voice."""

    voice: Bus

    def vocals(self) -> None:
        rest, self.bus = self.bus, Bus(self.n)
        super().vocals()
        self.voice, self.bus = self.bus, rest

    def reverb(self) -> None:  # TrackRenderer.reverb, each bus's send into its own stereo
        r = self.rng
        rt60 = float(r.uniform(1.2, 2.8))
        n_ir = int(rt60 * SYNTH_SR)
        t = time_axis(n_ir)
        pre = int(r.uniform(0.008, 0.03) * SYNTH_SR)
        for c in range(2):
            ir = r.standard_normal(n_ir) * np.exp(-6.91 * t / rt60)
            ir = highpass(lowpass(ir, r.uniform(4000, 8000)), 250)
            ir[:pre] = 0
            ir /= np.sqrt(np.sum(ir**2))
            for bus in (self.bus, self.voice):
                convolve_into(bus.lr[:, c], bus.send, ir.astype(np.float32), 0.6)

    def master(self) -> None:  # TrackRenderer.master on the sum, the voice scaled alike
        lr = self.bus.lr
        lr += self.voice.lr
        rms_db = 10 * math.log10(mean_square(lr) + 1e-20)
        gain = np.float32(10 ** ((float(self.rng.uniform(-15.0, -11.0)) - rms_db) / 20))
        lr *= gain
        self.voice.lr *= gain
        limit_peaks(lr, 0.93)


def synthetic_cases(count: int, seconds: float) -> Iterator[tuple[str, np.ndarray, dict[str, np.ndarray]]]:
    """(name, mix, true stems) of `count` sung tracks of the synthetic corpus's test seeds (odd), each an
    excerpt of `seconds` around the middle of its longest sung span."""
    found = 0
    for seed in range(1, 99, 2):
        for index, plan in enumerate(plan_mix(seed, short=True).tracks):
            if not plan.vocals:
                continue
            renderer = StemRenderer(plan, plan.n_render)
            mix = renderer.render()
            if not renderer.vocal_spans:
                continue
            lo, hi = max(renderer.vocal_spans, key=lambda s: s[1] - s[0])
            a = max(0, int(((lo + hi) / 2 - seconds / 2) * SYNTH_SR))
            voice = renderer.voice.lr[a:][: int(seconds * SYNTH_SR)]
            full = mix[a:][: int(seconds * SYNTH_SR)]
            rate = SYNTH_SR
            stems = {"vocals": voice, "accompaniment": full - voice}
            if rate != SR:
                full, stems = soxr.resample(full, rate, SR), {k: soxr.resample(v, rate, SR) for k, v in stems.items()}
            yield f"synthetic:{seed}/{index}:{plan.style.name}", full, stems
            found += 1
            if found == count:
                return


# --------------------------------------------------------------------------------------------------------------
# Variants


class Patches:
    """onnxruntime's calibration reader over network inputs (it also takes strides of them, to bound memory)."""

    def __init__(self, patches: list[np.ndarray]) -> None:
        self.patches, self.rest = patches, iter(patches)

    def __len__(self) -> int:
        return len(self.patches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.rest = iter(self.patches[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        patch = next(self.rest, None)
        return None if patch is None else {onnx_export.INPUT: patch}


def calibration_patches(fp32: OnnxSeparator, cache: Path, count: int) -> list[np.ndarray]:
    """Network inputs of one segment at a third and at two thirds of `count` tune-split pieces."""
    patches = []
    for _, paths in spread(real_music("tune", cache), count):
        audio = load_mix(paths)
        for where in (1 / 3, 2 / 3):
            patches.append(next(fp32.patches(excerpt(audio, fp32.segment * fp32.hop / SR, where))))
    return patches


def build(name: str, fp32: Path, target: Path, patches: list[np.ndarray], reduce_range: bool) -> None:
    """Write variant `name` of the fp32 network to `target`."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    if name == "int8-static":
        quantize_static(
            str(fp32),
            str(target),
            Patches(patches),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv", "ConvTranspose"],
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            extra_options={"CalibStridedMinMax": 2},  # ranges merged every 2 patches: memory stays ~1 GB
        )
    elif name == "int8-dynamic":
        quantize_dynamic(str(fp32), str(target), op_types_to_quantize=["Conv"], per_channel=True)
    elif name == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        onnx.save(convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True), str(target))
    else:
        raise ValueError(name)


# --------------------------------------------------------------------------------------------------------------
# Figures


def ratio_db(num: float, den: float) -> float:
    return 10 * math.log10(max(num, 1e-30) / max(den, 1e-30))


def energy(x: np.ndarray) -> float:
    return float(np.sum(np.square(x, dtype=np.float64)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pieces", type=int, default=12, help="test-split pieces of real music")
    parser.add_argument("--seconds", type=float, default=24.0, help="excerpt of each piece and synthetic track")
    parser.add_argument("--synthetic", type=int, default=3, help="sung synthetic tracks with true stems")
    parser.add_argument("--calibration", type=int, default=24, help="tune-split pieces (2 segments each)")
    parser.add_argument("--rounds", type=int, default=5, help="speed rounds, alternating the variants' order")
    parser.add_argument("--reduce-range", action="store_true", help="7-bit int8 weights (x86 without VNNI)")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: one per core)")
    parser.add_argument("--cache", type=Path, default=recorded.DEFAULT_CACHE)
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "stems_precision")
    args = parser.parse_args()

    params = model_params("2stems", DEFAULT_BAND)
    fp32_path = onnx_export.onnx_file("2stems", args.models, int(params["F"]))
    fp32 = OnnxSeparator(fp32_path, params, args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    patches = calibration_patches(fp32, args.cache, args.calibration)
    seps: dict[str, OnnxSeparator] = {"fp32": fp32}
    for name in VARIANTS:
        target = args.work / f"{name}{'-rr' if args.reduce_range else ''}.onnx"
        started = time.perf_counter()
        build(name, fp32_path, target, patches, args.reduce_range)
        print(f"{name}: built in {time.perf_counter() - started:.0f} s ({target.stat().st_size / 1e6:.0f} MB)")
        seps[name] = OnnxSeparator(target, params, args.threads)
    del patches

    print(f"\n== real music, test split: snr to the fp32 stem / err_mix (dB), {args.seconds:.0f} s excerpts")
    print(f"{'piece':28s} " + " ".join(f"{n:>27s}" for n in VARIANTS))
    snrs: dict[str, list[tuple[float, ...]]] = {n: [] for n in VARIANTS}
    errs: dict[str, list[float]] = {n: [] for n in VARIANTS}
    for key, paths in spread(real_music("test", args.cache), args.pieces):
        mix = audible_excerpt(load_mix(paths), args.seconds)
        if mix is None:
            print(f"{key[:28]:28s} (no excerpt above {QUIET_DB:.0f} dBFS: skipped)")
            continue
        ref = fp32.separate(mix)
        cells = []
        for name in VARIANTS:
            stems = seps[name].separate(mix)
            snr = tuple(ratio_db(energy(ref[s]), energy(stems[s] - ref[s])) for s in ref)
            err = ratio_db(energy(stems["accompaniment"] - ref["accompaniment"]), energy(mix))
            snrs[name].append(snr)
            errs[name].append(err)
            cells.append(f"{snr[0]:6.1f} {snr[1]:6.1f} / {err:6.1f}")
        print(f"{key[:28]:28s} " + " ".join(f"{c:>27s}" for c in cells), flush=True)
    print(
        f"{'worst (least snr, most err)':28s} "
        + " ".join(
            f"{min(s[0] for s in snrs[n]):6.1f} {min(s[1] for s in snrs[n]):6.1f} / {max(errs[n]):6.1f}".rjust(27)
            for n in VARIANTS
        )
    )

    # The stems sum to the mix, so each variant's error is the same, with opposite signs, in both stems, and its
    # SDR change is the same for both: one column per variant.
    print("\n== synthetic corpus (test seeds), true stems: sdr (dB) vocals, accompaniment; change from fp32")
    print(f"{'track':36s} {'fp32':>13s} " + " ".join(f"{n:>13s}" for n in VARIANTS))
    worst = {n: math.inf for n in VARIANTS}
    for key, mix, truth in synthetic_cases(args.synthetic, args.seconds):
        sdr = {
            name: [ratio_db(energy(truth[s]), energy(stems[s] - truth[s])) for s in truth]
            for name, stems in ((n, sep.separate(mix)) for n, sep in seps.items())
        }
        deltas = {n: [v - f for v, f in zip(sdr[n], sdr["fp32"], strict=True)] for n in VARIANTS}
        for n in VARIANTS:
            worst[n] = min(worst[n], *deltas[n])
        cells = [f"{min(d):+13.2f}" for d in deltas.values()]
        print(f"{key[:36]:36s} {sdr['fp32'][0]:6.2f} {sdr['fp32'][1]:6.2f} " + " ".join(cells))
    print(f"{'worst change':36s} {'':13s} " + " ".join(f"{worst[n]:+13.2f}" for n in VARIANTS), flush=True)

    print(
        f"\n== speed: seconds per minute of audio (median of {args.rounds} rounds, order alternating; "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} before)"
    )
    audio = excerpt(load_mix(real_music("test", args.cache)[0][1]), 60.0)  # 5 model segments
    times: dict[str, list[float]] = {n: [] for n in seps}
    order = list(seps)
    for index in range(args.rounds):
        for name in order if index % 2 == 0 else order[::-1]:
            started = time.perf_counter()
            seps[name].separate(audio)
            times[name].append((time.perf_counter() - started) * 60 * SR / len(audio))
    base = statistics.median(times["fp32"])
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:13s} {med:6.2f} s/min  ({base / med:4.2f}x fp32; runs {', '.join(f'{v:.2f}' for v in values)})")
    print(f"load average {os.getloadavg()[0]:.1f} after")


if __name__ == "__main__":
    main()
