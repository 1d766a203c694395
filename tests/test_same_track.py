"""The shipped "same track" embedding through onnxruntime (`offbeat.dsp.same_track`), on synthesized audio."""

from __future__ import annotations

import numpy as np
import pytest

from offbeat.dsp import same_track as st

from .same_track_audio import pattern


def test_shipped_model_is_small_and_present() -> None:
    assert st.MODEL_PATH.exists()
    assert st.MODEL_PATH.stat().st_size < 4_000_000


def test_embeddings_are_unit_vectors_every_step() -> None:
    x = pattern("chords", 20.0)
    emb, centres = st.embeddings(x, step_sec=2.0)
    window_sec = st.WINDOW_FRAMES * st.HOP / st.SAMPLE_RATE
    assert emb.ndim == 2 and emb.shape[0] == len(centres)
    assert emb.shape[0] == int((20.0 - window_sec) / 2.0) + 1
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.diff(centres), 2.0, atol=0.05)
    assert abs(centres[0] - window_sec / 2) < 0.05


def test_a_short_signal_gives_one_window() -> None:
    emb, centres = st.embeddings(pattern("hats", 1.5))
    assert len(centres) == 1
    assert emb.shape[0] == 1 and np.isfinite(emb).all()


def test_two_stretches_of_one_pattern_are_closer_than_two_patterns() -> None:
    a = pattern("chords", 24.0, seed=1)
    b = pattern("hats", 24.0, seed=2)
    ea, _ = st.embeddings(a)
    eb, _ = st.embeddings(b)
    half = len(ea) // 2
    same = st.cosine_distance(ea[:half], ea[half:])
    other = st.cosine_distance(ea[:half], eb[half:])
    assert same < other
    assert same < 0.5 * other


def test_level_does_not_move_the_embedding() -> None:
    x = pattern("hats", 10.0)
    e1, _ = st.embeddings(x)
    e2, _ = st.embeddings(x * 0.25)
    np.testing.assert_allclose(e1, e2, atol=1e-3)


def test_input_at_another_rate_is_resampled() -> None:
    x = pattern("chords", 10.0)
    from scipy.signal import resample_poly

    y = resample_poly(x, 2, 1).astype(np.float32)  # 44.1 kHz
    e1, _ = st.embeddings(x)
    e2, _ = st.embeddings(y, sr=2 * st.SAMPLE_RATE)
    assert e1.shape == e2.shape
    assert np.min(np.sum(e1 * e2, axis=1)) > 0.95


def test_the_engine_never_imports_the_training_code_or_torch() -> None:
    import ast
    from pathlib import Path

    package = Path(st.__file__).resolve().parents[1]
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names.append(node.module)
            assert not any(n.split(".")[0] in ("torch", "training") for n in names), path


def test_per_second_rows_are_unit_embeddings_of_the_window_around_each_second() -> None:
    lead = st.WINDOW_FRAMES // 2 + 8
    pad = np.zeros(lead * st.HOP, np.float32)
    x = np.concatenate([pad, pattern("chords", 12.0, seed=1), pattern("hats", 12.0, seed=2), pad])
    rows = st.per_second(x, 24, lead)
    assert rows.shape[0] == 24
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    assert rows[3] @ rows[8] > rows[3] @ rows[20] + 0.2  # one pattern alike, two patterns apart
    with pytest.raises(ValueError, match="half a window"):
        st.per_second(x[lead * st.HOP :], 24, lead)


def test_the_description_embeds_a_long_mix_in_blocks_as_in_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """The `description` stage reads the mono copy 512 s at a time; the rows are those of one block."""
    from offbeat.pipeline.stages import description

    class Decode:  # the decode entry as the stage reads it
        def __init__(self, mono: np.ndarray) -> None:
            self.mono, self.attrs = mono, {"analysis_sample_rate": st.SAMPLE_RATE}

        def __getitem__(self, name: str) -> np.ndarray:
            return self.mono

    mono = np.tile(pattern("hats", 20.0), 27)[: 530 * st.SAMPLE_RATE]
    blocked = description.embedding(Decode(mono), 530)
    monkeypatch.setattr(description, "EMBEDDING_BLOCK_SEC", 1024)
    np.testing.assert_array_equal(blocked, description.embedding(Decode(mono), 530))
    assert blocked.shape[0] == 530
