#!/usr/bin/env python3
"""The separation network on a GPU: how fast one exported Spleeter U-Net (ONNX) runs there, and whether it agrees
with onnxruntime on the CPU. For a machine that has torch with CUDA but no onnxruntime-gpu (the engine itself uses
onnxruntime's CUDA provider where it is installed); self-contained, so it runs on a bare GPU machine.

usage: python -m bench.perf.separation_gpu MODEL.onnx SUMMARY.json [--seconds 300] [--reps 5] [--wheel ONNX2TORCH.whl]
                                                               [--budget 170]

Needs numpy, onnx, onnxruntime (CPU-only is fine); torch (with CUDA) and onnx2torch are optional: onnx2torch is
imported from an installed package, else from a wheel (--wheel, or whl/onnx2torch-*.whl beside this script);
torchvision is stubbed when missing (onnx2torch imports it for ops this model does not use).

Input: random magnitudes shaped like the spectrogram patches of `--seconds` of 44.1 kHz stereo audio
(300 s: 26 segments of 512 frames x 1024 bins x 2 channels, 109 MB). Steps, each skipped cleanly when its
requirements are missing or the time budget (default 170 s) is spent:
  1. onnxruntime CPUExecutionProvider (reference outputs; all cores)
  2. onnxruntime CUDAExecutionProvider, when get_available_providers() lists it
  3. onnx2torch conversion (asymmetric ConvTranspose pads rewritten as symmetric pads + Slice first, checked
     against the original on onnxruntime), then torch on CUDA in fp32 (TF32 off), plus TF32 on for comparison;
     without CUDA, torch on CPU on one segment (to test the conversion path only)
Prints one line per result and writes everything to SUMMARY.json.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import statistics
import sys
import time
import traceback
import types
import warnings

import numpy as np

# onnx2torch 1.5.15's Slice indexes with a list (a deprecation warning in torch >= 2.9; the result is checked
# against onnxruntime below, so a change of meaning would show as a large difference, not pass silently)
warnings.filterwarnings("ignore", message="Using a non-tuple sequence for multidimensional indexing")

T0 = time.perf_counter()
SUMMARY: dict = {"ok": False, "steps": {}}


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:6.1f}s] {msg}", flush=True)


def left(budget: float) -> float:
    return budget - (time.perf_counter() - T0)


def skipped(steps: dict, step: str, label: str, reason: str) -> None:
    """Record and print a step that did not run, and why."""
    steps[step] = {"ok": False, "skipped": reason}
    log(f"{label}: skipped ({reason})")


def segments_for(seconds: float, sr: int = 44100, frame_length: int = 4096, hop: int = 1024, T: int = 512) -> int:
    frames = -(-(int(seconds * sr) + frame_length) // hop)  # Spleeter: a frame of zeros, then stft(pad_end=True)
    return -(-frames // T)


def max_abs(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(max(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64))) for x, y in zip(a, b, strict=True)))


def timed(fn, reps: int, budget: float, sync=lambda: None) -> list[float]:
    times = []
    for _ in range(reps):
        if times and left(budget) < 3 * max(times) + 5:
            break
        sync()
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return times


def ort_session(ort, model_bytes: bytes, providers, threads: int = 0):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    return ort.InferenceSession(model_bytes, so, providers=providers)


def symmetric_convtranspose(model):
    """onnx2torch refuses ConvTranspose with pads [b0, b1, e0, e1] where b != e (tf2onnx writes [1,1,2,2] for
    TF's SAME padding). With e = b + 1 the same output is ConvTranspose with pads [b, b, b, b] (one row and
    column longer at the end) followed by a Slice dropping the last row and column. Returns (model, count)."""
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    nodes, count = [], 0
    for node in graph.node:
        pads = next((list(helper.get_attribute_value(a)) for a in node.attribute if a.name == "pads"), None)
        if node.op_type != "ConvTranspose" or pads is None or len(pads) != 4 or pads[:2] == pads[2:]:
            nodes.append(node)
            continue
        if [e - b for b, e in zip(pads[:2], pads[2:], strict=True)] != [1, 1]:
            raise NotImplementedError(f"ConvTranspose {node.name} pads {pads}")
        count += 1
        for a in node.attribute:
            if a.name == "pads":
                a.ints[:] = pads[:2] * 2
        out = node.output[0]
        tmp = f"{out}__sym"
        node.output[0] = tmp
        names = [f"{tmp}_{k}" for k in ("starts", "ends", "axes")]
        for name, value in zip(names, ([0, 0], [-1, -1], [2, 3]), strict=True):
            graph.initializer.append(numpy_helper.from_array(np.array(value, np.int64), name))
        nodes.append(node)
        nodes.append(helper.make_node("Slice", [tmp, *names], [out], name=f"{node.name}__crop"))
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    return model, count


def import_onnx2torch(wheel: str | None):
    if "torchvision" not in sys.modules:
        try:
            import torchvision  # noqa: F401
        except Exception:  # onnx2torch imports it at load time for nms / roi_align only
            tv = types.ModuleType("torchvision")
            tv.ops = types.ModuleType("torchvision.ops")
            tv.ops.roi_align = tv.ops.nms = tv.ops.batched_nms = None
            sys.modules["torchvision"], sys.modules["torchvision.ops"] = tv, tv.ops
            SUMMARY["torchvision"] = "stubbed"
    try:
        import onnx2torch

        return onnx2torch, "installed"
    except ImportError:
        pass
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [wheel] if wheel else []
    candidates += sorted(glob.glob(os.path.join(here, "whl", "onnx2torch-*.whl")))
    candidates += sorted(glob.glob(os.path.join(here, "onnx2torch-*.whl")))
    for path in candidates:
        if path and os.path.exists(path):
            sys.path.insert(0, path)  # a wheel is a zip: importable as it is
            import onnx2torch

            return onnx2torch, path
    raise ImportError("onnx2torch not installed and no wheel found (--wheel)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("summary")
    ap.add_argument("--seconds", type=float, default=300.0, help="audio length the input batch stands for")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--wheel", default=None, help="onnx2torch wheel, when the package is not installed")
    ap.add_argument("--budget", type=float, default=170.0, help="seconds; later steps are skipped past it")
    args = ap.parse_args()
    budget = args.budget

    import onnx
    import onnxruntime as ort

    providers = ort.get_available_providers()
    SUMMARY.update(
        python=platform.python_version(),
        numpy=np.__version__,
        onnx=onnx.__version__,
        onnxruntime=ort.__version__,
        providers=providers,
        cpu_count=os.cpu_count(),
        model=os.path.abspath(args.model),
        model_mb=round(os.path.getsize(args.model) / 1e6, 1),
    )
    log(f"python {SUMMARY['python']}, numpy {np.__version__}, onnx {onnx.__version__}, onnxruntime {ort.__version__}")
    log(f"onnxruntime.get_available_providers(): {providers}")

    torch = None
    try:
        import torch

        SUMMARY.update(torch=torch.__version__, cuda_available=torch.cuda.is_available(), torch_cuda=torch.version.cuda)
        if torch.cuda.is_available():
            SUMMARY["gpu"] = torch.cuda.get_device_name(0)
        log(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()} {SUMMARY.get('gpu', '')}")
    except ImportError as exc:
        SUMMARY["torch"] = None
        log(f"torch: not installed ({exc}); torch steps will be skipped")
    if hasattr(ort, "preload_dlls") and torch is not None and "CUDAExecutionProvider" in providers:
        try:
            ort.preload_dlls()  # CUDA/cuDNN libraries from the torch install, for onnxruntime-gpu
        except Exception as exc:
            log(f"onnxruntime.preload_dlls() failed: {exc}")

    model = onnx.load(args.model)
    model_bytes = model.SerializeToString()
    inp = model.graph.input[0]
    dims = [d.dim_value or None for d in inp.type.tensor_type.shape.dim]
    batch = segments_for(args.seconds)
    shape = (batch, *dims[1:])
    rng = np.random.default_rng(0)
    x = (np.abs(rng.standard_normal(shape, dtype=np.float32)) * 2.0).astype(np.float32)
    SUMMARY.update(
        input_name=inp.name, input_shape=list(shape), input_mb=round(x.nbytes / 1e6, 1), audio_seconds=args.seconds
    )
    log(f"input {inp.name} {list(shape)} float32 ({x.nbytes / 1e6:.0f} MB) for {args.seconds:.0f} s of audio")
    out_names = [o.name for o in model.graph.output]

    # 1. onnxruntime CPU: the reference
    steps = SUMMARY["steps"]
    ref = None
    try:
        t = time.perf_counter()
        cpu = ort_session(ort, model_bytes, ["CPUExecutionProvider"])
        load = time.perf_counter() - t
        cpu.run(out_names, {inp.name: x[:1]})  # warm-up on one segment
        t = time.perf_counter()
        ref = cpu.run(out_names, {inp.name: x})
        run = time.perf_counter() - t
        steps["ort_cpu"] = {
            "ok": True,
            "load_s": round(load, 2),
            "run_s": round(run, 3),
            "x_realtime": round(args.seconds / run, 1),
            "threads": "all",
        }
        log(
            f"onnxruntime CPU: {run:.2f} s for the batch ({args.seconds / run:.1f}x realtime), "
            f"outputs {[list(r.shape) for r in ref]}"
        )
    except Exception as exc:
        steps["ort_cpu"] = {"ok": False, "error": repr(exc)}
        log(f"onnxruntime CPU FAILED: {exc!r}")

    # 2. onnxruntime CUDA
    if "CUDAExecutionProvider" not in providers:
        skipped(
            steps,
            "ort_cuda",
            "onnxruntime CUDA",
            "CUDAExecutionProvider not in get_available_providers() "
            "(CPU-only onnxruntime wheel; onnxruntime-gpu provides it)",
        )
    elif left(budget) < 30:
        skipped(steps, "ort_cuda", "onnxruntime CUDA", "time budget")
    else:
        try:
            t = time.perf_counter()
            sess = ort_session(ort, model_bytes, [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"])
            load = time.perf_counter() - t
            active = sess.get_providers()
            if "CUDAExecutionProvider" not in active:
                raise RuntimeError(f"session fell back to {active}")
            t = time.perf_counter()
            out = sess.run(out_names, {inp.name: x})  # first run: cuDNN algorithm search
            first = time.perf_counter() - t
            times = timed(lambda: sess.run(out_names, {inp.name: x}), args.reps, budget)
            med = statistics.median(times)
            res = {
                "ok": True,
                "providers": active,
                "load_s": round(load, 2),
                "first_run_s": round(first, 3),
                "run_s": [round(v, 4) for v in times],
                "median_s": round(med, 4),
                "x_realtime": round(args.seconds / med, 1),
                "includes_host_copies": True,
            }
            if ref is not None:
                res["max_abs_diff_vs_ort_cpu"] = max_abs(out, ref)
            steps["ort_cuda"] = res
            log(
                f"onnxruntime CUDA: median {med:.4f} s over {len(times)} runs ({args.seconds / med:.0f}x realtime, "
                f"host copies included), first run {first:.2f} s, "
                f"max abs diff vs CPU {res.get('max_abs_diff_vs_ort_cpu')}"
            )
        except Exception as exc:
            steps["ort_cuda"] = {"ok": False, "error": repr(exc)}
            log(f"onnxruntime CUDA FAILED: {exc!r}")

    # 3. onnx2torch -> torch
    if torch is None:
        skipped(steps, "torch", "torch", "torch not installed")
    elif left(budget) < 30:
        skipped(steps, "torch", "torch", "time budget")
    else:
        try:
            onnx2torch, source = import_onnx2torch(args.wheel)
            try:
                from importlib.metadata import version

                o2t_version = version("onnx2torch")
            except Exception:
                o2t_version = "?"
            log(f"onnx2torch {o2t_version} from {source}")
            patched, count = symmetric_convtranspose(onnx.load_from_string(model_bytes))
            res = {"onnx2torch": o2t_version, "onnx2torch_from": source, "convtranspose_rewritten": count}
            # the rewrite must not change the model: check on onnxruntime CPU, one segment
            one = x[:1]
            ref_one = [r[:1] for r in ref] if ref is not None else cpu.run(out_names, {inp.name: one})
            psess = ort_session(ort, patched.SerializeToString(), ["CPUExecutionProvider"])
            res["rewrite_max_abs_diff"] = max_abs(psess.run(out_names, {inp.name: one}), ref_one)
            log(
                f"ConvTranspose pads rewritten on {count} nodes; max abs diff vs original on onnxruntime CPU: "
                f"{res['rewrite_max_abs_diff']:.2e}"
            )
            t = time.perf_counter()
            net = onnx2torch.convert(patched).eval()
            res["convert_s"] = round(time.perf_counter() - t, 2)
            cuda = torch.cuda.is_available()
            dev = torch.device("cuda" if cuda else "cpu")
            net = net.to(dev)
            if cuda:
                torch.backends.cudnn.benchmark = True
                torch.backends.cudnn.allow_tf32 = False
                torch.backends.cuda.matmul.allow_tf32 = False
                sync = torch.cuda.synchronize
                xin, refs = x, ref
            else:  # conversion test only: one segment on the CPU
                sync = lambda: None  # noqa: E731
                xin, refs = one, ref_one
            res["device"] = str(dev) + (
                f" ({SUMMARY.get('gpu')})" if cuda else " (no CUDA: one segment, conversion test)"
            )
            with torch.inference_mode():
                xt = torch.from_numpy(xin).to(dev)

                def fwd():
                    return net(xt)

                def fwd_host():
                    outs = net(torch.from_numpy(xin).to(dev))
                    if isinstance(outs, torch.Tensor):  # a one-output model returns the tensor itself
                        outs = [outs]
                    return [o.cpu().numpy() for o in outs]

                t = time.perf_counter()
                outs = fwd_host()  # first run (cuDNN benchmark search)
                res["first_run_s"] = round(time.perf_counter() - t, 3)
                if refs is not None:
                    res["fp32_max_abs_diff_vs_ort_cpu"] = max_abs(outs, refs)
                if cuda:
                    torch.cuda.reset_peak_memory_stats()
                times = timed(fwd, args.reps, budget, sync)
                med = statistics.median(times)
                res.update(
                    fp32_run_s=[round(v, 4) for v in times],
                    fp32_median_s=round(med, 4),
                    fp32_x_realtime=round(len(xin) / len(x) * args.seconds / med, 1),
                )
                htimes = timed(fwd_host, max(1, args.reps // 2), budget, sync)
                if htimes:
                    res["fp32_with_host_copies_median_s"] = round(statistics.median(htimes), 4)
                if cuda:
                    res["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 1e6)
                log(
                    f"torch {dev} fp32: median {med:.4f} s over {len(times)} runs "
                    f"({res['fp32_x_realtime']:.0f}x realtime, input on device), with host copies "
                    f"{res.get('fp32_with_host_copies_median_s')} s, first run {res['first_run_s']} s, "
                    f"max abs diff vs onnxruntime CPU {res.get('fp32_max_abs_diff_vs_ort_cpu', float('nan')):.2e}"
                    + (f", peak GPU memory {res['peak_gpu_mb']} MB" if cuda else "")
                )
                if cuda and left(budget) > 20:
                    torch.backends.cudnn.allow_tf32 = True
                    torch.backends.cuda.matmul.allow_tf32 = True
                    outs = fwd_host()
                    if refs is not None:
                        res["tf32_max_abs_diff_vs_ort_cpu"] = max_abs(outs, refs)
                    times = timed(fwd, args.reps, budget, sync)
                    res.update(
                        tf32_median_s=round(statistics.median(times), 4),
                        tf32_x_realtime=round(args.seconds / statistics.median(times), 1),
                    )
                    log(
                        f"torch cuda TF32: median {res['tf32_median_s']:.4f} s "
                        f"({res['tf32_x_realtime']:.0f}x realtime), "
                        f"max abs diff vs onnxruntime CPU {res.get('tf32_max_abs_diff_vs_ort_cpu', float('nan')):.2e}"
                    )
            res["ok"] = True
            steps["torch"] = res
        except Exception as exc:
            steps["torch"] = {"ok": False, "error": repr(exc), "trace": traceback.format_exc()[-2000:]}
            log(f"torch / onnx2torch FAILED: {exc!r}")

    SUMMARY["ok"] = all(s.get("ok") or "skipped" in s for s in steps.values())
    SUMMARY["total_s"] = round(time.perf_counter() - T0, 1)
    with open(args.summary, "w") as fh:
        json.dump(SUMMARY, fh, indent=1)
    log(f"summary written to {args.summary} (ok={SUMMARY['ok']}, {SUMMARY['total_s']} s)")
    return 0 if SUMMARY["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
