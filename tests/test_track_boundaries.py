"""Track boundaries by optimal partition of a self-similarity matrix (pure arrays, no audio)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from offbeat.dsp import boundary_confidence as bc
from offbeat.dsp import boundary_merges as merges
from offbeat.dsp import track_boundaries as tb


def song(seconds: int, sections: list[np.ndarray], bpm: float, rng: np.random.Generator, bars: int = 16) -> tuple:
    """Per-second descriptions of a song that cycles through its `sections` (mel shapes), 16 s each."""
    mel = np.concatenate([sections[(i // bars) % len(sections)][None, :] for i in range(seconds)])
    mel = mel + rng.normal(0, 0.5, mel.shape)
    chroma = np.abs(rng.normal(0, 0.1, (seconds, 12)))
    chroma[:, int(bpm) % 12] += 1.0
    return mel, chroma, np.full(seconds, bpm)


def mix(songs: list[tuple]) -> dict[str, np.ndarray]:
    """The description of the songs played one after the other, as the `description` entry holds it."""
    return {name: np.concatenate([s[i] for s in songs]) for i, name in enumerate(("mel_db", "chroma", "bpm"))}


# The hand-made cues alone: the synthesized descriptions below have no same-track embedding, so no cut is dropped
# for a confidence fitted with one.
SHORT = replace(
    tb.CONFIG,
    min_track_sec=30.0,
    min_confidence=0.0,
    cues=tuple(replace(c, weight=0.0) if c.source == "embedding" else c for c in tb.CONFIG.cues),
)


def test_tracks_are_cut_where_songs_change_not_where_their_sections_do() -> None:
    rng = np.random.default_rng(3)
    songs, edges = [], [0]
    for length, bpm in ((150, 128), (200, 140), (120, 96), (180, 174)):
        palette = rng.normal(0, 6, (40,))
        sections = [palette + rng.normal(0, 2.5, 40) for _ in range(3)]  # verse, chorus, bridge of one song
        songs.append(song(length, sections, bpm, rng))
        edges.append(edges[-1] + length)
    desc = mix(songs)
    found = tb.find_boundaries(desc, 0.0, float(edges[-1]), SHORT)
    assert len(found.times) == 3
    assert np.all(np.abs(found.times - np.array(edges[1:-1])) <= 6.0)
    assert np.all(found.transition_starts <= found.times) and np.all(found.times <= found.transition_ends)
    assert np.all((found.confidence >= 0.0) & (found.confidence <= 1.0))


def test_a_gradual_change_is_surer_than_a_sudden_one() -> None:
    frames = np.arange(60, dtype=float)[:, None]
    blend = np.clip((frames - 20) / 20, 0, 1) * np.ones((60, 3))  # turns over 40 s around frame 30
    step = (frames >= 30) * np.ones((60, 3))  # changes at once at frame 30
    gradual, sudden = (
        bc.confidence(blend, np.array([30]), 2.0, tb.CONFIG),
        bc.confidence(step, np.array([30]), 2.0, tb.CONFIG),
    )
    assert bc.abruptness(blend, 30, 2.0, tb.CONFIG) < 0.5 < 1.0 <= bc.abruptness(step, 30, 2.0, tb.CONFIG)
    assert 0.0 <= sudden[0] < gradual[0] <= 1.0


def test_one_long_song_is_not_cut() -> None:
    rng = np.random.default_rng(4)
    palette = rng.normal(0, 6, (40,))
    sections = [palette + rng.normal(0, 2.5, 40) for _ in range(3)]
    desc = mix([song(400, sections, 120, rng)])
    found = tb.find_boundaries(desc, 0.0, 400.0, SHORT)
    assert len(found.times) == 0 and len(found.confidence) == 0


def test_partition_finds_blocks_of_a_block_diagonal_matrix() -> None:
    sim = np.full((60, 60), 0.1)
    for a, b in ((0, 20), (20, 45), (45, 60)):
        sim[a:b, a:b] = 1.0
    assert tb.partition(sim, min_len=5, max_len=60, penalty=2.0).tolist() == [20, 45]


def test_no_part_is_shorter_than_min_len_not_even_the_first() -> None:
    # a short intro unlike everything after it: a part of its own only if long enough to be a track
    sim = np.full((60, 60), 0.1)
    for a, b in ((0, 4), (4, 30), (30, 60)):
        sim[a:b, a:b] = 1.0
    for min_len in (3, 5, 8):
        cuts = tb.partition(sim, min_len=min_len, max_len=60, penalty=2.0)
        assert 30 in cuts and np.diff([0, *cuts, 60]).min() >= min_len, (min_len, cuts)
    assert tb.partition(sim, min_len=3, max_len=60, penalty=2.0).tolist() == [4, 30]
    assert tb.partition(sim[:4, :4], min_len=5, max_len=60, penalty=2.0).tolist() == []


def test_a_section_that_returns_in_the_same_harmony_is_joined_a_new_key_is_not() -> None:
    """Parts A B A' (B like neither, A' like A but not the same): with one harmony throughout both cuts are
    inside one song; with B in another key they stay (a different track played between two alike). A part that
    comes back as itself (A B A) is one song whatever B's harmony: a breakdown."""
    like = {(p, q): 0.2 for p in "abc" for q in "abc"}
    like.update({("a", "a"): 0.9, ("b", "b"): 0.9, ("c", "c"): 0.9, ("a", "c"): 0.8, ("c", "a"): 0.8})
    labels = ["a"] * 30 + ["b"] * 30 + ["c"] * 30
    sim = np.array([[like[(p, q)] for q in labels] for p in labels])
    assert tb.CONFIG.returns_itself < merges.contrast(sim, (0, 30), (60, 90)) < tb.CONFIG.returning
    cuts = np.array([30, 60])
    one_key = np.tile(np.eye(12)[0] + 0.1, (90, 1))
    assert merges.join_returning_sections(sim, cuts, tb.CONFIG, one_key).tolist() == []
    two_keys = one_key.copy()
    two_keys[30:60] = np.eye(12)[6] + 0.1  # a tritone away: unrelated harmony
    assert merges.join_returning_sections(sim, cuts, tb.CONFIG, two_keys).tolist() == [30, 60]
    assert (
        merges.chroma_distance(two_keys, (0, 30), (30, 60))
        > tb.CONFIG.same_harmony
        > merges.chroma_distance(one_key, (0, 30), (30, 60))
    )
    same = ["a"] * 30 + ["b"] * 30 + ["a"] * 30
    itself = np.array([[like[(p, q)] for q in same] for p in same])
    assert merges.join_returning_sections(itself, cuts, tb.CONFIG, two_keys).tolist() == []


def test_apart_only_distances_lower_similarity_and_never_raise_it() -> None:
    """The key only tells parts apart: rows alike in it keep the similarity their other descriptions give."""
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, (40, 6))
    same_key = np.zeros((40, 3))
    two_keys = np.concatenate([np.zeros((20, 3)), np.ones((20, 3))])
    base = tb.similarity(x)
    np.testing.assert_allclose(tb.similarity(x, same_key), base)
    keyed = tb.similarity(x, two_keys)
    np.testing.assert_allclose(keyed[:20, :20], base[:20, :20])
    assert np.all(keyed[:20, 20:] < base[:20, 20:])


def test_transition_windows_are_symmetric_and_as_wide_as_the_blends_shorter_side() -> None:
    bounds = np.array([100.0, 300.0, 500.0])
    left = np.array([90.0, 240.0, 499.0])  # 10 s, 60 s and 1 s before the boundary
    right = np.array([130.0, 312.0, 501.0])  # 30 s, 12 s and 1 s after it
    start, end = tb.transition_windows(bounds, left, right)
    assert np.allclose(start, [90.0, 288.0, 500.0 - tb.CONFIG.min_transition_sec / 2])
    assert np.allclose(end, [110.0, 312.0, 500.0 + tb.CONFIG.min_transition_sec / 2])


def test_parts_in_one_key_at_one_tempo_are_joined_and_a_change_of_either_is_kept() -> None:
    c_major, e_flat = np.zeros(12), np.zeros(12)
    c_major[[0, 4, 7]] = 1.0
    e_flat[[3, 7, 10]] = 1.0
    key = np.vstack(
        [np.tile(c_major, (30, 1)), np.tile(c_major, (30, 1)), np.tile(e_flat, (30, 1)), np.tile(e_flat, (30, 1))]
    )
    tempo = np.log2(np.concatenate([np.full(60, 128.0), np.full(30, 128.0), np.full(30, 132.0)]))
    # 30: one key, one tempo (a song's new section); 60: another key; 90: one key, 3 % faster.
    assert merges.join_one_key_and_tempo(
        np.zeros((120, 120)), np.array([30, 60, 90]), tb.CONFIG, key, tempo[:, None]
    ).tolist() == [60, 90]


def test_a_precomputed_kernel_multiplies_the_similarity() -> None:
    """A kernel (an embedding's cosine) lowers the similarity of rows it sets apart and keeps the rest."""
    rng = np.random.default_rng(6)
    x = rng.normal(0, 1, (40, 6))
    kernel = np.ones((40, 40))
    kernel[:20, 20:] = kernel[20:, :20] = 0.25
    base, kerneled = tb.similarity(x), tb.similarity(x, kernels=[kernel])
    np.testing.assert_allclose(kerneled[:20, :20], base[:20, :20])
    np.testing.assert_allclose(kerneled[:20, 20:], base[:20, 20:] * 0.25)


def _one_sound(seconds: int = 300) -> dict[str, np.ndarray]:
    """Five minutes of one unchanging sound, harmony and tempo, with noise."""
    rng = np.random.default_rng(7)
    palette = rng.normal(0, 6, (40,))
    mel, chroma, bpm = song(seconds, [palette + rng.normal(0, 2.5, 40) for _ in range(3)], 124, rng)
    return {"mel_db": mel, "chroma": chroma, "bpm": bpm}


def test_a_new_cue_is_one_row_of_the_table() -> None:
    """Two tracks alike in every hand-made cue are one part; a per-second embedding that tells them apart, added
    as a kernel cue (one array in the description, one row in the table), finds the change."""
    # The key-and-tempo rule would join the two (one key, one tempo): it is left out of this configuration.
    hand_made = replace(SHORT, merges=tuple(m for m in SHORT.merges if m.rule != "one_key_and_tempo"))
    desc = _one_sound()
    assert len(tb.find_boundaries(desc, 0.0, 300.0, hand_made).times) == 0
    rng = np.random.default_rng(8)
    a, b = rng.normal(0, 1, 16), rng.normal(0, 1, 16)
    embedding = np.where((np.arange(300) < 140)[:, None], a, b) + rng.normal(0, 0.3, (300, 16))
    cue = tb.Cue("embedding", "embedding", "frames", "kernel", 1.0)
    config = replace(hand_made, cues=(*SHORT.cues, cue))
    found = tb.find_boundaries({**desc, "embedding": embedding}, 0.0, 300.0, config)
    assert len(found.times) == 1 and abs(found.times[0] - 140) <= 4


def test_a_sweep_is_a_replaced_config_and_the_merge_rules_a_list() -> None:
    """The price of a cut decides how many parts there are; without the merge rules, a cut the key-and-tempo
    rule removes (two parts of one song, one key, one tempo, another sound) stays."""
    rng = np.random.default_rng(9)
    palettes = [rng.normal(0, 6, (40,)) for _ in range(2)]
    desc = mix([song(150, [p + rng.normal(0, 2.5, 40) for _ in range(3)], 126, rng) for p in palettes])
    desc["chroma"] = np.tile(np.eye(12)[2] + 0.05, (300, 1))  # one key throughout
    assert len(tb.find_boundaries(desc, 0.0, 300.0, SHORT).times) == 0
    unjoined = tb.find_boundaries(desc, 0.0, 300.0, replace(SHORT, merges=()))
    assert len(unjoined.times) == 1 and abs(unjoined.times[0] - 150) <= 6
    assert len(tb.find_boundaries(desc, 0.0, 300.0, replace(SHORT, merges=(), penalty=1e6)).times) == 0


def test_the_tuning_bench_sweeps_config_fields_and_cue_weights_and_refuses_unknown_ones() -> None:
    from bench.accuracy.boundaries import configured

    config = configured({"PENALTY": 3.0, "same_key": 0.3}, 30.0)
    assert (config.penalty, config.same_key, config.min_track_sec) == (3.0, 0.3, 30.0)
    assert config.cues == tb.CONFIG.cues and tb.CONFIG.penalty == 4.5  # the committed configuration is untouched
    weighted = configured({"same_track": 2}, 30.0)
    assert [c.weight for c in weighted.cues if c.name == "same_track"] == [2.0]
    assert [c for c in weighted.cues if c.name != "same_track"] == [c for c in tb.CUES if c.name != "same_track"]
    assert "embedding" in tb.sources(configured({}, 30.0)) and "embedding" not in tb.sources(
        configured({"same_track": 0}, 30.0)
    )
    with pytest.raises(SystemExit, match="no field or cue wiegths"):
        configured({"wiegths": 1.0}, 30.0)


def test_a_cue_of_weight_0_needs_no_array_and_changes_nothing() -> None:
    """With the same-track cue at weight 0 the description need not hold its embedding, and a description that
    holds one finds the same boundaries."""
    rng = np.random.default_rng(5)
    palettes = [rng.normal(0, 10, 40) for _ in range(2)]
    desc = mix(
        [song(150, [p + rng.normal(0, 2.5, 40) for _ in range(2)], 120 + 8 * i, rng) for i, p in enumerate(palettes)]
    )
    config = SHORT
    assert tb.Cue("same_track", "embedding", "frames", "kernel", 0.0) in config.cues
    with pytest.raises(KeyError):  # at the committed weight the array is needed
        tb.find_boundaries(desc, 0.0, 300.0, replace(tb.CONFIG, min_track_sec=30.0))
    without = tb.find_boundaries(desc, 0.0, 300.0, config)
    with_it = tb.find_boundaries({**desc, "embedding": rng.normal(0, 1, (300, 8))}, 0.0, 300.0, config)
    np.testing.assert_array_equal(without.times, with_it.times)
    np.testing.assert_array_equal(without.similarity, with_it.similarity)
    assert len(without.times) == 1


def test_a_cut_the_embedding_hears_as_two_tracks_is_surer_than_one_it_hears_as_one() -> None:
    """At one abruptness (a change at once, as a song's new section), a cut between unlike embeddings is likelier
    a track change: with the committed threshold the cut inside one track is dropped, the one between two kept."""
    rng = np.random.default_rng(11)
    frames = np.arange(60, dtype=float)[:, None]
    x = (frames >= 30) * np.ones((60, 3))  # a sudden change at frame 30
    one, two = rng.normal(0, 1, 8), rng.normal(0, 1, 8)
    same = np.tile(one, (60, 1)) + rng.normal(0, 0.05, (60, 8))
    apart = np.concatenate([np.tile(one, (30, 1)), np.tile(two, (30, 1))]) + rng.normal(0, 0.05, (60, 8))
    cut = np.array([30])
    inside, between = bc.confidence(x, cut, 2.0, tb.CONFIG, same)[0], bc.confidence(x, cut, 2.0, tb.CONFIG, apart)[0]
    assert 0.0 <= inside < tb.CONFIG.min_confidence < between <= 1.0
    assert (
        bc.embedding_distance(apart, (0, 30), (30, 60), 15) > 0.5 > bc.embedding_distance(same, (0, 30), (30, 60), 15)
    )
