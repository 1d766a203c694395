"""Train the "same track" embedding and export it to ONNX.

A small convolutional network maps a log-mel window (`offbeat.dsp.same_track`: 64 bands, about 4.5 s) to a unit
vector. It learns contrastively (NT-Xent, as in SimCLR): each batch holds two augmented windows of each of its
tracks, taken anywhere in the track (an intro and a drop of one track are one track), and every other window of
the batch is a negative. The augmentations (`augment`) are what a DJ does to a playing track.

Runs on a few CPU cores within about an hour: spectrograms come from the feature cache (`features`), a checkpoint
is written every few minutes and on exit, and a run started again continues from it (the learning-rate schedule
included). When the steps are done (or with ``--export-only``), the model is exported to ONNX.

Usage: ``python -m training.same_track.train [--minutes 30] [--steps 2000] [--threads 2] [--export PATH]``
(PyTorch is needed: the optional ``train`` group, ``uv sync --extra train``; the engine never needs it).
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from offbeat.dsp import same_track as st
from training.same_track import augment

RUN_DIR = Path(__file__).resolve().parents[2] / ".corpus-cache" / "same-track-run"


@dataclass(frozen=True)
class Config:
    """What a run trains; saved in the checkpoint (a resumed run keeps it)."""

    steps: int = 2000
    batch: int = 32  # tracks per batch: 2 windows each
    lr: float = 2e-3
    weight_decay: float = 1e-4
    temperature: float = 0.1
    dim: int = 64
    width: int = 16  # channels of the first block; 2x, 4x and 8x after it
    seed: int = 0
    checkpoint_sec: float = 180.0


class Net(nn.Module):
    """(batch, 1, N_MELS, WINDOW_FRAMES) normalized dB -> (batch, dim) unit vectors. Frames averaged in pairs
    (about 93 ms each: a window's identity is in its sound and pattern, not in 46 ms detail), four conv blocks
    (3x3 conv, batch norm, ReLU, 2x2 max pool), mean and max over what remains, two linear layers."""

    def __init__(self, dim: int = 64, width: int = 16) -> None:
        super().__init__()
        chans = [1, width, 2 * width, 4 * width, 8 * width]
        layers: list[nn.Module] = [nn.AvgPool2d((1, 2))]
        for a, b in itertools.pairwise(chans):
            layers += [nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(), nn.MaxPool2d(2)]
        self.conv = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(2 * chans[-1], 128), nn.ReLU(), nn.Linear(128, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        h = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
        z = self.head(h)
        return z / torch.sqrt(torch.sum(z * z, dim=1, keepdim=True) + 1e-12)


def nt_xent(z: torch.Tensor, temperature: float) -> tuple[torch.Tensor, float]:
    """NT-Xent over 2n unit vectors where rows i and i + n are one track; also the share of rows whose nearest
    other row is their pair."""
    n = z.shape[0] // 2
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    loss = nn.functional.cross_entropy(sim, target)
    acc = float((sim.argmax(dim=1) == target).float().mean())
    return loss, acc


def batch(mels: list[np.ndarray], size: int, rng: np.random.Generator) -> torch.Tensor:
    """(2 * size, 1, N_MELS, WINDOW_FRAMES) network input: two augmented views of each of `size` tracks."""
    picked = rng.choice(len(mels), size=min(size, len(mels)), replace=False)
    views = [[], []]
    for i in picked:
        others = [mels[j] for j in rng.choice(len(mels), size=3) if j != i]
        for v in views:
            v.append(augment.view(mels[i], others, rng))
    x = st.normalized(np.stack(views[0] + views[1]))
    return torch.from_numpy(x)[:, None]


def learning_rate(cfg: Config, step: int) -> float:
    """Linear warm-up over the first 5 % of steps, then a cosine to zero."""
    warm = max(1, cfg.steps // 20)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(1, cfg.steps - warm)))


def save(path: Path, model: Net, opt: torch.optim.Optimizer, cfg: Config, step: int, rng: np.random.Generator) -> None:
    """The checkpoint, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    state = {"model": model.state_dict(), "opt": opt.state_dict(), "cfg": asdict(cfg), "step": step}
    state["rng"] = rng.bit_generator.state
    torch.save(state, tmp)
    tmp.replace(path)


def train(
    mels: list[np.ndarray],
    run_dir: Path,
    cfg: Config,
    minutes: float,
    log: Callable[[str], None] = print,
    until: int | None = None,
) -> tuple[Net, int]:
    """Train on the tracks' dB spectrograms (N_MELS, frames) for at most `minutes` of wall time (and up to step
    `until` where given), resuming from ``run_dir/checkpoint.pt`` where it exists (its config then wins over
    `cfg`); return the model and the steps done so far."""
    ckpt = run_dir / "checkpoint.pt"
    step = 0
    rng = np.random.default_rng(cfg.seed)
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        cfg = Config(**state["cfg"])
        step = int(state["step"])
    torch.manual_seed(cfg.seed + step)
    model = Net(cfg.dim, cfg.width)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if ckpt.exists():
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        rng.bit_generator.state = state["rng"]
        log(f"resumed at step {step}")
    n_params = sum(p.numel() for p in model.parameters())
    log(f"{len(mels)} tracks, {n_params} parameters, config {asdict(cfg)}")
    start = last_save = time.monotonic()
    losses: list[float] = []
    accs: list[float] = []
    model.train()
    last = cfg.steps if until is None else min(until, cfg.steps)
    while step < last and time.monotonic() - start < minutes * 60:
        x = batch(mels, cfg.batch, rng)
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, step)
        loss, acc = nt_xent(model(x), cfg.temperature)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        losses.append(float(loss.detach()))
        accs.append(acc)
        if step % 20 == 0 or step == cfg.steps:
            log(
                f"step {step}/{cfg.steps} loss {np.mean(losses[-20:]):.3f} pair-acc {np.mean(accs[-20:]):.3f} "
                f"lr {learning_rate(cfg, step):.2e} {time.monotonic() - start:.0f} s"
            )
        if time.monotonic() - last_save > cfg.checkpoint_sec:
            save(ckpt, model, opt, cfg, step, rng)
            last_save = time.monotonic()
    save(ckpt, model, opt, cfg, step, rng)
    model.eval()
    return model, step


def export(model: Net, path: Path) -> None:
    """The model as ONNX: input "mel" (batch, 1, N_MELS, WINDOW_FRAMES) normalized dB (`st.normalized`),
    output "embedding" (batch, dim) unit vectors; the batch size is free."""
    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(2, 1, st.N_MELS, st.WINDOW_FRAMES)
    torch.onnx.export(
        model,
        (dummy,),
        str(path),
        input_names=["mel"],
        output_names=["embedding"],
        dynamic_axes={"mel": {0: "batch"}, "embedding": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )


def load_model(run_dir: Path) -> Net:
    """The model of a run's checkpoint."""
    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    cfg = Config(**state["cfg"])
    model = Net(cfg.dim, cfg.width)
    model.load_state_dict(state["model"])
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    from training.same_track import features, sources

    parser = argparse.ArgumentParser(
        prog="python -m training.same_track.train", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--cache", type=Path, default=sources.DEFAULT_CACHE, help="the packages and features")
    parser.add_argument("--run", type=Path, default=RUN_DIR, help="checkpoint folder")
    parser.add_argument("--minutes", type=float, default=30.0, help="wall time of this run (it resumes after)")
    parser.add_argument("--steps", type=int, default=Config.steps, help="steps of the whole training")
    parser.add_argument("--batch", type=int, default=Config.batch)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--export", type=Path, default=st.MODEL_PATH, help="where the ONNX model goes")
    parser.add_argument("--export-only", action="store_true", help="export the checkpoint as it is")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    def log(message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)

    if args.export_only:
        export(load_model(args.run), args.export)
        log(f"exported {args.export} ({args.export.stat().st_size} bytes)")
        return 0
    tracks = [t for t in sources.tracks(sources.fetch(args.cache)) if t.split == "train"]
    log(f"training packages:\n{sources.licences(tuple(p for p in sources.PACKAGES if p.split == 'train'))}")
    features.compute_all(args.cache, tracks, log=log)
    mels = features.load(args.cache, tracks)
    log(f"{sum(m.shape[1] for m in mels) * st.HOP / st.SAMPLE_RATE / 3600:.2f} h of audio")
    model, step = train(mels, args.run, Config(steps=args.steps, batch=args.batch), args.minutes, log)
    if step >= args.steps:
        export(model, args.export)
        log(f"exported {args.export} ({args.export.stat().st_size} bytes)")
    else:
        log(f"stopped at step {step} of {args.steps}: run again to continue")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
