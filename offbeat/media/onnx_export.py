"""Spleeter's U-Nets exported to ONNX beside their checkpoint, so separation can run under onnxruntime.

Only the networks and the ratio masks are exported (input `mix_spectrogram:0`: magnitude patches of shape
(batch, T, F, channels); one output `<stem>_mask:0` per instrument, same shape). The STFT, the mask extension
above F and the inverse STFT stay in numpy (`onnx_runtime`), so one file serves every band with the same F:
`full` and `11khz` share F=1024, the `16khz` bands use F=1536. Files are named by F (`masks-f1024.onnx`).

The export builds a TensorFlow graph, restores the checkpoint into a session and freezes it; it runs in a
child process (`export_in_subprocess`) so a worker that separates with onnxruntime never loads TensorFlow
itself, and no graph state is left behind in the caller. Run by hand: `python -m offbeat.media.onnx_export
MODEL MODEL_DIR [BAND ...]`.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

OPSET = 17  # onnxruntime >= 1.14 runs it; tf2onnx 1.17 converts every op of Spleeter's U-Net at this opset
INPUT = "mix_spectrogram:0"
EXPORT_TIMEOUT_SEC = 1800.0  # 4stems on two slow cores takes minutes; a hung child must not hang a worker


def onnx_file(model: str, model_dir: Path, bins: int) -> Path:
    """Where the export of `model` over `bins` network frequency bins lives: beside the checkpoint."""
    return model_dir / model / f"masks-f{bins}.onnx"


def bins_of(model: str, band: str) -> int:
    """The network's frequency bins (F) for `band`: what the exported file's input shape depends on."""
    from offbeat.media.separation import model_params

    return int(model_params(model, band)["F"])


def _frozen_graph(model: str, model_dir: Path, band: str) -> tuple[Any, list[str], dict[str, Any]]:
    """Spleeter's U-Nets and ratio masks from the magnitude patches, with the checkpoint's weights as constants."""
    import tensorflow as tf
    from spleeter.model import EstimatorSpecBuilder

    from offbeat.media.separation import model_params

    params = model_params(model, band)
    shape = (None, params["T"], params["F"], params["n_channels"])
    graph = tf.Graph()
    with graph.as_default():
        spec = tf.compat.v1.placeholder(tf.float32, shape=shape, name=INPUT.split(":")[0])
        # Given the spectrogram feature directly, the builder skips its STFT: model_outputs is the U-Nets only.
        outputs = EstimatorSpecBuilder({f"{params['mix_name']}_spectrogram": spec}, params).model_outputs
        exponent, eps = params["separation_exponent"], EstimatorSpecBuilder.EPSILON
        # Spleeter's ratio masks (EstimatorSpecBuilder._build_masks, before the mask extension).
        total = tf.add_n([o**exponent for o in outputs.values()]) + eps
        names = [
            tf.identity(
                (outputs[f"{stem}_spectrogram"] ** exponent + eps / len(outputs)) / total, name=f"{stem}_mask"
            ).name
            for stem in params["instrument_list"]
        ]
        with tf.compat.v1.Session(graph=graph) as session:
            tf.compat.v1.train.Saver().restore(session, tf.train.latest_checkpoint(str(model_dir / model)))
            frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
                session, graph.as_graph_def(), [n.split(":")[0] for n in names]
            )
    return frozen, names, params


def export(model: str, model_dir: Path, bands: Iterable[str]) -> list[Path]:
    """Write the ONNX file of `model` for each distinct F among `bands` (in this process: it loads TensorFlow).

    Each file is written under a temporary name and renamed, so a reader never sees half a file.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tf2onnx

    written: list[Path] = []
    for bins, band in _one_band_per_file(model, bands).items():
        frozen, outputs, _ = _frozen_graph(model, model_dir, band)
        target = onnx_file(model, model_dir, bins)
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        try:
            with _lean_conversion():
                tf2onnx.convert.from_graph_def(
                    frozen, input_names=[INPUT], output_names=outputs, opset=OPSET, output_path=str(partial)
                )
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        written.append(target)
    return written


@contextmanager
def _lean_conversion() -> Iterator[None]:
    """tf2onnx's conversion without the two copies of the weights it makes per optimizer pass (peak 5.8 GB for
    2stems' 79 MB of weights; 2.1 GB with this, the same file).

    After every pass tf2onnx rewrites each node's attributes into the node's protobuf message; with protobuf's
    upb backend the attributes it replaces (every weight tensor) stay in that message's arena until the message
    is freed, so each pass added the weights again. Here each rewrite goes into a new message, and the old one is
    freed. tf2onnx also deep-copies the whole graph before each pass, to roll back an optimizer that raises
    (`TF2ONNX_CATCH_ERRORS`); that is off, so such an optimizer fails the export (the caller then separates with
    TensorFlow) instead of being skipped. The output is the same network: the masks are bit-identical.
    """
    from onnx import NodeProto
    from tf2onnx.graph import Node

    original = Node.update_proto

    def update_proto(node: Any, external_tensor_storage: Any = None) -> None:
        old = node._op
        fresh = NodeProto(name=old.name, op_type=old.op_type)
        for field in ("domain", "doc_string"):
            if old.HasField(field):
                setattr(fresh, field, getattr(old, field))
        node._op = fresh
        original(node, external_tensor_storage)  # fills inputs, outputs and attributes from the node's own state

    saved = os.environ.get("TF2ONNX_CATCH_ERRORS")
    Node.update_proto = update_proto
    os.environ["TF2ONNX_CATCH_ERRORS"] = "FALSE"
    try:
        yield
    finally:
        Node.update_proto = original
        if saved is None:
            os.environ.pop("TF2ONNX_CATCH_ERRORS", None)
        else:
            os.environ["TF2ONNX_CATCH_ERRORS"] = saved


def _one_band_per_file(model: str, bands: Iterable[str]) -> dict[int, str]:
    """The first of `bands` for each distinct F: bands that share F share one file."""
    chosen: dict[int, str] = {}
    for band in bands:
        chosen.setdefault(bins_of(model, band), band)
    return chosen


def missing(model: str, model_dir: Path, bands: Iterable[str]) -> list[str]:
    """The bands among `bands` whose ONNX file is not there yet (one per distinct F)."""
    chosen = _one_band_per_file(model, bands)
    return [band for bins, band in chosen.items() if not onnx_file(model, model_dir, bins).exists()]


def export_in_subprocess(
    model: str, model_dir: Path, bands: Iterable[str], *, log: Callable[[str], None] = log.info
) -> bool:
    """Export what is missing in a child process; True when every file is there afterwards.

    A failure is reported through `log` and returns False (the caller falls back to TensorFlow), since a
    missing export costs speed, not correctness.
    """
    todo = missing(model, model_dir, bands)
    if not todo:
        return True
    log(f"{model}: exporting the U-Nets to ONNX for band(s) {', '.join(todo)} (once per install) ...")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "offbeat.media.onnx_export", model, str(model_dir), *todo],
            capture_output=True,
            text=True,
            timeout=EXPORT_TIMEOUT_SEC,
        )
    except subprocess.TimeoutExpired:
        log(f"{model}: ONNX export timed out after {EXPORT_TIMEOUT_SEC:.0f} s")
        return False
    if proc.returncode != 0:
        log(f"{model}: ONNX export failed: {proc.stderr.strip()[-800:]}")
        return False
    ok = not missing(model, model_dir, todo)
    log(f"{model}: ONNX export {'written' if ok else 'did not produce its files'} in {model_dir / model}")
    return ok


def main(argv: list[str]) -> int:
    """`python -m offbeat.media.onnx_export MODEL MODEL_DIR [BAND ...]` (default band: the project default)."""
    from offbeat.media.separation import DEFAULT_BAND

    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    model, model_dir, bands = argv[0], Path(argv[1]), argv[2:] or [DEFAULT_BAND]
    for path in export(model, model_dir, bands):
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
