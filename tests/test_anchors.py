"""The whole-mix library search: plays of known tracks found window by window, one play per reference timeline,
an unknown track left alone, and each handover placed within a few seconds of the blend's middle."""

from __future__ import annotations

import numpy as np
import pytest

from offbeat.dsp import anchors
from offbeat.dsp import fingerprint as fp

from .test_fingerprint import SR, faster, track

CONFIDENT = 0.35


def blend(parts: list[np.ndarray], fade_sec: float) -> tuple[np.ndarray, list[float]]:
    """The parts one after the other, each faded into the next over `fade_sec` (equal power); the middles of
    the fades (the true boundaries) in seconds."""
    fade = int(fade_sec * SR)
    ramp = np.sin(np.linspace(0, np.pi / 2, fade)) ** 2
    out, middles = parts[0].copy(), []
    for part in parts[1:]:
        middles.append((len(out) - fade / 2) / SR)
        head = part[:fade] * np.sqrt(ramp) + out[-fade:] * np.sqrt(1 - ramp)
        out = np.concatenate([out[:-fade], head, part[fade:]])
    return out.astype(np.float32), middles


@pytest.fixture(scope="module")
def mix() -> tuple[fp.Index, np.ndarray, list[float]]:
    known = {k: track(300 + k, 80.0) for k in range(3)}
    index = fp.build_index({k: fp.reference_fingerprint(y, SR) for k, y in known.items()})
    stranger = track(399, 70.0)
    parts = [known[0][: 60 * SR], faster(known[1], 1.04)[5 * SR : 65 * SR], stranger[: 60 * SR], known[2][: 60 * SR]]
    audio, middles = blend(parts, 10.0)
    return index, audio, middles


def test_plays_and_their_handovers(mix: tuple[fp.Index, np.ndarray, list[float]]) -> None:
    index, audio, middles = mix
    matches = anchors.MixMatches.of(index, fp.fingerprint(audio, SR))
    found = anchors.search(matches, anchors.windows(0.0, len(audio) / SR))
    plays = anchors.plays(found, CONFIDENT)
    assert [p.track for p in plays] == [0, 1, 2]
    assert abs(plays[1].tempo_ratio - 1.04) < 0.005
    # reference time 5 s of track 1 is heard where the second part starts (its fade-in begins)
    assert abs(plays[1].reference_at(middles[0] - 5.0) - 5.0 * 1.04) < 0.5
    # no play claims the stranger's middle
    stranger_middle = (middles[1] + middles[2]) / 2
    assert not any(p.start <= stranger_middle <= p.end for p in plays)
    handover = anchors.boundaries(matches, plays[:2])
    assert abs(handover[0] - middles[0]) < 3.0, (handover, middles)


def test_split_time_is_the_middle_of_the_silence_between_two_plays() -> None:
    """Mid-blend neither track's quads match: the handover is the middle between the last time the outgoing play is
    heard and the first time the incoming one is; a stray match of either inside the silence moves nothing."""
    before, after = np.arange(-20.0, 4.0, 0.1), np.arange(6.0, 30.0, 0.1)  # 10 matches a second where heard
    assert anchors.split_time(before, after, 0.0, 10.0) == pytest.approx(5.0, abs=0.3)
    strays = anchors.split_time(np.append(before, 8.0), np.append(after, 2.0), 0.0, 10.0)
    assert strays == pytest.approx(5.0, abs=0.3)
    # a track with ten times the peaks does not pull the handover its way
    dense = np.arange(-20.0, 4.0, 0.01)
    assert anchors.split_time(dense, after, 0.0, 10.0) == pytest.approx(5.0, abs=0.3)


def test_one_window_alone_is_no_play() -> None:
    from offbeat.dsp.matching import Identification

    hit = Identification(0, 0.9, 40, 2, 1.0, 1.0, 0.0)
    found = [anchors.WindowMatch(0.0, 20.0, hit), anchors.WindowMatch(10.0, 30.0, None)]
    assert anchors.plays(found, CONFIDENT) == []
    twice = [*found, anchors.WindowMatch(20.0, 40.0, hit)]
    (play,) = anchors.plays(twice, CONFIDENT)
    assert (play.start, play.end, play.windows) == (0.0, 40.0, 2)


def test_cuts_agree_with_the_plays() -> None:
    from offbeat.dsp.boundary_merges import anchored_cuts

    found = [anchors.Play(0, a, b, 1.0, 1.0, 0.0, 0.9, 5) for a, b in ((0.0, 100.0), (90.0, 200.0), (300.0, 400.0))]
    inside = [anchors.interior(p) for p in found]  # the first two hand over; a stranger before the third
    assert inside[0] == (10.0, 90.0)
    detected = np.array([50.0, 97.0, 150.0, 230.0, 290.0, 350.0])
    cuts, forced = anchored_cuts(detected, inside, [95.0, None], same_sec=10.0)
    # inside a play: none (50, 150, 350); between the handing-over plays: the handover itself; the blind cuts
    # around the stranger stay
    assert cuts.tolist() == [95.0, 230.0, 290.0]
    assert forced.tolist() == [True, False, False]


def test_a_mix_of_one_window_is_one_play_when_that_window_is_sure() -> None:
    from offbeat.dsp.matching import Identification

    hit = Identification(0, 0.9, 40, 2, 1.0, 1.0, 0.0)
    (play,) = anchors.plays([anchors.WindowMatch(0.0, 12.0, hit)], CONFIDENT)
    assert (play.start, play.end, play.windows) == (0.0, 12.0, 1)
