"""Training the "same track" embedding (`training.same_track`): a few steps on synthesized tone patterns, the
checkpoint resumed, the ONNX export run by onnxruntime as the engine runs it. Skipped without PyTorch (the
optional ``train`` dependency group)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is the optional 'train' dependency group")

from offbeat.dsp import same_track as st  # noqa: E402
from training.same_track import augment, train  # noqa: E402

from .same_track_audio import pattern  # noqa: E402


def tiny_tracks() -> list[np.ndarray]:
    out = []
    for i in range(6):
        x = pattern("chords" if i % 2 else "hats", 12.0, seed=i)
        x = x * np.float32(0.3 + 0.1 * i)  # levels of their own
        out.append(st.log_mel(x).astype(np.float16))
    return out


def test_augmented_views_keep_their_shape_and_range() -> None:
    rng = np.random.default_rng(0)
    mels = tiny_tracks()
    for _ in range(20):
        v = augment.view(mels[0], mels[1:], rng)
        assert v.shape == (st.N_MELS, st.WINDOW_FRAMES)
        assert np.isfinite(v).all() and v.min() >= -100.0


def test_a_second_track_underneath_adds_power() -> None:
    a = np.full((st.N_MELS, 4), -30.0, np.float32)
    np.testing.assert_allclose(augment.power_sum(a, a), -30.0 + 10 * np.log10(2), atol=1e-5)


def test_trains_resumes_and_exports(tmp_path: Path) -> None:
    mels = tiny_tracks()
    cfg = train.Config(steps=4, batch=4, checkpoint_sec=0.0)
    logs: list[str] = []
    _, step = train.train(mels, tmp_path, cfg, minutes=30.0, log=logs.append, until=2)
    assert step == 2 and (tmp_path / "checkpoint.pt").exists()
    model, step = train.train(mels, tmp_path, cfg, minutes=30.0, log=logs.append)
    assert step == 4
    assert any(m.startswith("resumed at step 2") for m in logs)
    losses = [float(m.split("loss ")[1].split()[0]) for m in logs if " loss " in m]
    assert losses and all(np.isfinite(losses))

    onnx_path = tmp_path / "same_track.onnx"
    train.export(model, onnx_path)
    assert 0 < onnx_path.stat().st_size < 4_000_000
    windows, _ = st.windows(mels[1].astype(np.float32), 20)
    got = st.embed_windows(windows, model=onnx_path)
    with torch.no_grad():
        want = model(torch.from_numpy(st.normalized(windows))[:, None]).numpy()
    assert got.shape == (len(windows), train.Config.dim)
    np.testing.assert_allclose(got, want, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
