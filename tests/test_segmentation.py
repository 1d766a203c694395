"""Track boundaries from per-second descriptions, and cue hints: pure arrays, no store, no Prefect."""

from __future__ import annotations

import numpy as np
import pytest

from offbeat.dsp import cues, segmentation


def _two_tracks(seconds: int = 200, change: int = 90) -> tuple[np.ndarray, ...]:
    """Per-second chroma, centroid, rms, onset and tempo of two different tracks meeting at `change`."""
    rng = np.random.default_rng(0)
    first = np.arange(seconds) < change
    chroma = np.where(first[:, None], np.eye(12)[0], np.eye(12)[7]) + 0.05 * rng.random((seconds, 12))
    centroid = np.where(first, 1500.0, 3000.0) + rng.normal(0, 30, seconds)
    rms = np.where(first, 0.2, 0.05) * (1 + 0.02 * rng.standard_normal(seconds))
    onset = np.where(first, 2.0, 6.0) + 0.1 * rng.random(seconds)
    tempo = np.where(first, 124.0, 140.0)
    return chroma, centroid, rms, onset, tempo


def test_novelty_peaks_at_the_change_and_tracks_span_the_music() -> None:
    described = segmentation.describe(*_two_tracks())
    curve = segmentation.novelty(described, segmentation.novelty_window(60))
    assert abs(int(np.argmax(curve)) - 90) <= 1
    found = np.array([90.5])
    segments = segmentation.segments_from_boundaries(found, (found - 5, found + 5), 2.0, 199.0)
    np.testing.assert_allclose(segments.starts, [2.0, 90.5])
    np.testing.assert_allclose(segments.ends, [90.5, 199.0])
    np.testing.assert_allclose(segments.transition_starts, [85.5])


def test_cues_snap_to_boundaries_and_keep_their_titles() -> None:
    found = np.array([60.5, 130.5])
    windows = (found - 5, found + 5)
    hints = [("Second", 64.0), ("First", 0.0), ("Third", 100.0)]  # any order; the first cue starts the music
    segments, titles = cues.tracks_from_cues(hints, found, windows, 1.0, 180.0, tolerance=10.0)
    assert titles == ["First", "Second", "Third"]
    np.testing.assert_allclose(segments.starts, [1.0, 60.5, 100.0])
    np.testing.assert_allclose(segments.ends, [60.5, 100.0, 180.0])
    # Snapped: the boundary's transition window; kept as given: none (zero width).
    np.testing.assert_allclose(segments.transition_starts, [55.5, 100.0])
    np.testing.assert_allclose(segments.transition_ends, [65.5, 100.0])


@pytest.mark.parametrize(("min_track", "window"), [(30, 15), (60, 20), (6, 4)])
def test_novelty_window_follows_the_minimum_track_length(min_track: float, window: int) -> None:
    assert segmentation.novelty_window(min_track) == window
