"""The shared time-series helpers (`offbeat.dsp.series`): step means, gaps carried over, standardized groups."""

from __future__ import annotations

import numpy as np

from offbeat.dsp import series


def test_means_average_the_frames_of_each_step() -> None:
    frames = np.arange(20, dtype=float)[:, None] * np.ones((1, 3))
    out = series.means(frames, frame_rate=8.0, step_sec=0.5)
    assert out.shape == (5, 3)
    np.testing.assert_allclose(out[:, 0], [1.5, 5.5, 9.5, 13.5, 17.5])


def test_a_fixed_count_of_steps_gives_the_last_one_every_frame_after_it() -> None:
    values = np.arange(10, dtype=float)  # 2.5 s at 4 frames a second
    np.testing.assert_allclose(series.means(values, 4.0, count=3)[:, 0], [1.5, 5.5, 8.5])
    np.testing.assert_allclose(series.means(values, 4.0, count=2)[:, 0], [1.5, 6.5])
    np.testing.assert_allclose(series.means(values, 4.0, count=4)[:, 0], [1.5, 5.5, 8.5, 0.0])  # no frames: 0


def test_gaps_take_the_nearest_good_row_and_a_curve_without_any_takes_the_default() -> None:
    values = np.array([np.nan, 1.0, np.nan, np.nan, 4.0, np.nan])
    np.testing.assert_array_equal(series.carried(values, np.isfinite(values)), [1.0, 1.0, 1.0, 4.0, 4.0, 4.0])
    np.testing.assert_array_equal(series.filled(np.full(3, np.nan), default=100.0), [100.0, 100.0, 100.0])


def test_a_standardized_group_weighs_its_weight_whatever_its_width() -> None:
    rng = np.random.default_rng(0)
    narrow, wide = rng.normal(5, 3, (400, 1)), rng.normal(-2, 7, (400, 16))
    for group, weight in ((narrow, 1.0), (wide, 0.5)):
        z = series.standardized(group, weight)
        np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-12)
        assert abs(np.sum(z.var(axis=0)) - weight**2) < 1e-9
