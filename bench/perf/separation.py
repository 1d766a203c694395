"""Separation speed and memory of each backend (onnxruntime, TensorFlow) on the same generated mix.

Each backend runs in a fresh process (so peak resident memory is its own: TensorFlow is never imported by the
onnx run), loads the model, warms up on 1 s, then separates the mix chunk by chunk as the separate stage does
(`OFFBEAT_SEPARATION_CHUNK_SEC`, 1 s cross-fades). Printed per backend: model load seconds, separation seconds,
seconds of audio separated per second, and the process's peak resident memory; then the SNR of the onnx stems
against TensorFlow's (the reference).

    .venv/bin/python -m bench.perf.separation [--seconds 300] [--threads 0]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def one_backend(backend: str, mix_path: Path, out_path: Path, threads: int) -> None:
    """Child process: separate the mix with `backend`, save the stems, print one JSON line of figures."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from offbeat.media import separation
    from offbeat.settings import get_settings

    settings = get_settings()
    mix = np.load(mix_path)
    start = time.perf_counter()
    separation.separate(np.zeros((44100, 2), np.float32), "2stems", settings.model_dir, threads, backend=backend)
    loaded = time.perf_counter() - start
    start = time.perf_counter()
    blocks = list(
        separation.separate_chunked(
            lambda a, b: mix[a:b],
            len(mix),
            "2stems",
            settings.model_dir,
            chunk_segments=separation.segments_per_chunk(settings.separation_chunk_sec, settings.sample_rate),
            crossfade=44100,
            threads=threads,
            backend=backend,
        )
    )
    seconds = time.perf_counter() - start
    np.savez(out_path, **{name: np.concatenate([b[name] for b in blocks]) for name in blocks[0]})
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = {"backend": backend, "load_s": round(loaded, 1), "separate_s": round(seconds, 1)}
    figures |= {"x_realtime": round(len(mix) / 44100 / seconds, 2), "peak_mb": round(peak_mb)}
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--threads", type=int, default=0, help="OFFBEAT_SEPARATION_THREADS (0: one per core)")
    parser.add_argument("--child", nargs=3, metavar=("BACKEND", "MIX", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        one_backend(args.child[0], Path(args.child[1]), Path(args.child[2]), args.threads)
        return
    from offbeat import synth

    spec = synth.MixSpec(
        tuple(synth.Section(60, 120.0 + 4 * i, vocals=i % 2 == 0) for i in range(int(args.seconds // 60) or 1)),
        seed=7,
    )
    with tempfile.TemporaryDirectory() as tmp:
        mix_path = Path(tmp) / "mix.npy"
        np.save(mix_path, synth.render(spec, 0, min(args.seconds, spec.duration_sec)))
        stems = {}
        for backend in ("onnx", "tensorflow"):
            out = Path(tmp) / f"{backend}.npz"
            child = ["--threads", str(args.threads), "--child", backend, str(mix_path), str(out)]
            done = subprocess.run(
                [sys.executable, "-m", "bench.perf.separation", *child], capture_output=True, text=True, cwd=ROOT
            )
            if done.returncode != 0:
                sys.exit(f"{backend} failed:\n{done.stderr[-3000:]}")
            print(done.stdout.strip().splitlines()[-1], flush=True)
            stems[backend] = dict(np.load(out))
        for name, reference in stems["tensorflow"].items():
            ref = reference.astype(np.float64)
            error = np.sum((ref - stems["onnx"][name]) ** 2)
            print(f"{name}: onnx vs tensorflow {10 * np.log10(np.sum(ref**2) / max(error, 1e-300)):.1f} dB SNR")


if __name__ == "__main__":
    main()
