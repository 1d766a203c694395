"""The track list from boundaries and cue hints (`offbeat.dsp.track_list`): pure arrays, no store, no Prefect."""

from __future__ import annotations

import numpy as np

from offbeat.dsp import track_list


def test_tracks_span_the_music_between_the_boundaries() -> None:
    found = np.array([150.0, 90.5, 250.0])  # any order; one past the end of the music
    segments = track_list.segments_from_boundaries(found, (found - 5, found + 5), 2.0, 199.0)
    np.testing.assert_allclose(segments.starts, [2.0, 90.5, 150.0])
    np.testing.assert_allclose(segments.ends, [90.5, 150.0, 199.0])
    np.testing.assert_allclose(segments.transition_starts, [85.5, 145.0])
    np.testing.assert_allclose(segments.transition_ends, [95.5, 155.0])


def test_cues_snap_to_boundaries_and_keep_their_titles() -> None:
    found = np.array([60.5, 130.5])
    windows = (found - 5, found + 5)
    hints = [("Second", 64.0), ("First", 0.0), ("Third", 100.0)]  # any order; the first cue starts the music
    segments, titles = track_list.tracks_from_cues(hints, found, windows, 1.0, 180.0, tolerance=10.0)
    assert titles == ["First", "Second", "Third"]
    np.testing.assert_allclose(segments.starts, [1.0, 60.5, 100.0])
    np.testing.assert_allclose(segments.ends, [60.5, 100.0, 180.0])
    # Snapped: the boundary's transition window; kept as given: none (zero width).
    np.testing.assert_allclose(segments.transition_starts, [55.5, 100.0])
    np.testing.assert_allclose(segments.transition_ends, [65.5, 100.0])


def test_snap_cues() -> None:
    snapped = track_list.snap_cues(np.array([10.0, 50.0, 200.0]), np.array([14.0, 120.0]), tolerance=20)
    np.testing.assert_allclose(snapped, [14.0, 50.0, 200.0])
    np.testing.assert_allclose(track_list.snap_cues(np.array([10.0]), np.zeros(0), tolerance=20), [10.0])
