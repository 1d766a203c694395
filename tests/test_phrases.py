"""Phrases and sections from a bar grid (pure arrays)."""

from __future__ import annotations

import numpy as np

from offbeat.dsp import phrases


def test_phrase_starts_every_8_16_32_bars_from_the_first_downbeat() -> None:
    downbeats = 3.0 + np.arange(64) * 2.0
    assert phrases.phrase_starts(downbeats, 16).tolist() == [3.0, 35.0, 67.0, 99.0]
    assert len(phrases.phrase_starts(downbeats, 8)) == 8 and len(phrases.phrase_starts(downbeats, 32)) == 2


def test_intro_breakdown_drop_outro() -> None:
    downbeats = np.arange(80) * 2.0  # ten 8-bar phrases of 16 s
    level = np.array([-20, -12, -12, -22, -22, -12, -12, -12, -12, -20], float)
    drums = np.array([0.8, 0.8, 0.8, 0.1, 0.1, 0.8, 0.8, 0.8, 0.8, 0.8])
    runs = phrases.sections(downbeats, 160.0, level, drums)
    assert [label for label, _, _ in runs] == ["intro", "main", "breakdown", "drop", "main", "outro"]
    assert runs[2][1:] == (48.0, 80.0) and runs[3][1:] == (80.0, 96.0)


def test_per_phrase_means() -> None:
    times = np.arange(0, 32, 0.5)
    values = (times >= 16).astype(float)
    assert phrases.per_phrase(values, times, np.array([0.0, 16.0]), 32.0).tolist() == [0.0, 1.0]
