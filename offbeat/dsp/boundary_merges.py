"""Rules that remove the partition's cuts that lie inside one song (`offbeat.dsp.track_boundaries`, whose
`Config.merges` lists which run, in turn, and which cues each reads). Numpy in, numpy out.

Each rule takes the partition's self-similarity (stretches x stretches), the cuts (stretch indices), the
configuration and the stretches of the cues it names, and returns the cuts it keeps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from offbeat.dsp.track_boundaries import Config


def contrast(sim: np.ndarray, a: tuple[int, int], b: tuple[int, int]) -> float:
    """How unlike each other two parts (frame ranges) are, relative to how like themselves they are: 0 when
    their cross-similarity equals their own, towards 1 when they share nothing."""
    across = sim[a[0] : a[1], b[0] : b[1]].mean()
    own = np.sqrt(sim[a[0] : a[1], a[0] : a[1]].mean() * sim[b[0] : b[1], b[0] : b[1]].mean())
    return float(1 - across / max(own, 1e-12))


def chroma_distance(chroma: np.ndarray, a: tuple[int, int], b: tuple[int, int]) -> float:
    """1 - Pearson correlation of two parts' mean chroma: near 0 for one key and harmony, 1 for unrelated ones."""
    x, y = (chroma[p[0] : p[1]].mean(axis=0) for p in (a, b))
    x, y = x - x.mean(), y - y.mean()
    return float(1 - x @ y / max(np.linalg.norm(x) * np.linalg.norm(y), 1e-12))


def join_returning_sections(sim: np.ndarray, cuts: np.ndarray, config: Config, chroma: np.ndarray) -> np.ndarray:
    """Cuts left after removing those inside one song: where the parts on both sides share their harmony and are
    alike, or one comes back across the next cut (A B A: the part after B is like A, or the part before A like B).
    That is a breakdown or chorus of a song, which repeats its sections in one key; a new track neither returns
    nor keeps the harmony. Removed one at a time, most song-like first, since each removal joins parts and
    changes the evidence of its neighbours. Either sign alone cuts true boundaries: tracks of one style look alike
    two apart, and DJs mix tracks in compatible keys.

    A part that comes back nearly unchanged (contrast under `returns_itself`) is joined whatever the harmony of
    what lies between: a breakdown of pads or a riser has other chroma than the song around it, but no track
    of a mix comes back as itself after another; a looser bound joins tracks of one style."""
    cuts = [int(c) for c in cuts]
    while cuts:
        edges = [0, *cuts, len(sim)]
        scores = []
        for k in range(len(cuts)):
            a, b = (edges[k], edges[k + 1]), (edges[k + 1], edges[k + 2])
            around = []
            if k + 3 < len(edges):
                around.append(contrast(sim, a, (edges[k + 2], edges[k + 3])))
            if k > 0:
                around.append(contrast(sim, (edges[k - 1], edges[k]), b))
            around.append(contrast(sim, a, b))
            returning = min(around)
            harmony = chroma_distance(chroma, a, b)
            song = (returning < config.returning and harmony < config.same_harmony) or returning < config.returns_itself
            scores.append(returning + harmony if song else np.inf)
        best = int(np.argmin(scores))
        if not np.isfinite(scores[best]):
            break
        del cuts[best]
    return np.array(cuts, dtype=int)


def join_one_key_and_tempo(
    sim: np.ndarray, cuts: np.ndarray, config: Config, key: np.ndarray, log_bpm: np.ndarray
) -> np.ndarray:
    """Cuts left after removing those between parts in one key (chroma over `key_sec`, `chroma_distance` under
    `same_key`) and at one tempo (median log2 BPM, a column, within `same_tempo`): a song's breakdown or new
    section keeps both, while the next track of a mix changes at least one, unless the DJ blends two tracks of
    one key at one tempo, which this joins. Removed one at a time, nearest keys first, since each removal
    changes the parts its neighbours are compared with. Game music, whose pieces change sections and sound far
    more than their key, was cut at every section before (figures in docs/accuracy.md)."""
    cuts = [int(c) for c in cuts]
    while cuts:
        edges = [0, *cuts, len(key)]
        distances = []
        for k in range(len(cuts)):
            a, b = (edges[k], edges[k + 1]), (edges[k + 1], edges[k + 2])
            tempo = abs(np.median(log_bpm[a[0] : a[1], 0]) - np.median(log_bpm[b[0] : b[1], 0]))
            distances.append(chroma_distance(key, a, b) if tempo < config.same_tempo else np.inf)
        nearest = int(np.argmin(distances))
        if distances[nearest] >= config.same_key:
            break
        del cuts[nearest]
    return np.array(cuts, dtype=int)


RULES: dict[str, Callable[..., np.ndarray]] = {
    "returning_sections": join_returning_sections,
    "one_key_and_tempo": join_one_key_and_tempo,
}


def anchored_cuts(
    cuts: np.ndarray, inside: list[tuple[float, float]], handovers: list[float | None], same_sec: float
) -> tuple[np.ndarray, np.ndarray]:
    """The partition's cuts (seconds) made to agree with the track library's plays (`offbeat.dsp.anchors`): no cut
    inside a play (`inside`: the (start, end) no change can lie in, per play in order), and a cut at each handover
    between neighbouring plays (None where a track nobody knows may lie between them). A cut between two plays
    that hand over, or within `same_sec` of a handover, is that handover found less precisely. Returns the cuts
    and, per cut, whether it is a handover."""
    kept = [float(c) for c in cuts if not any(lo < c < hi for lo, hi in inside)]
    forced = [h for h in handovers if h is not None]
    for (_, first_ends), (second_starts, _), h in zip(inside[:-1], inside[1:], handovers, strict=True):
        if h is not None:
            kept = [x for x in kept if not first_ends <= x <= second_starts]
    kept = [x for x in kept if all(abs(x - h) > same_sec for h in forced)]
    both = sorted([(x, False) for x in kept] + [(x, True) for x in forced])
    return np.array([x for x, _ in both], float), np.array([f for _, f in both], bool)
