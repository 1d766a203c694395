"""One fingerprint index (`offbeat.dsp.fingerprint.Index`) from several, without the tracks' quads: what a track
library's search index is made of when it is kept in segments (`offbeat.library`). Numpy in, numpy out.

Kept apart from `fingerprint`, whose source is part of every stored fingerprint's key: a change here must not make
every library fingerprint its tracks again.
"""

from __future__ import annotations

import numpy as np

from offbeat.dsp.fingerprint import Index, Quads, build_index


def merge_indexes(parts: list[tuple[Index, np.ndarray]]) -> Index:
    """One index of the rows of several, each part with the map of its track ids (0..n-1) to the merged index's
    (-1: a track left out, its rows dropped): row for row what `build_index` makes of the tracks kept under their
    new ids, from the parts' stored rows instead of the tracks' quads.

    Why it is the same: `build_index` sorts its rows by key, stably, from the tracks concatenated in id order, so
    its rows are ordered by (key, track id, the track's own quad order); a part holds each of its tracks' rows in
    that track's order within a key, so a stable sort of the kept rows by (key, new id) gives that order. Where
    the largest part's new ids keep its old ids' order (a library's largest segment: its tracks in digest order),
    its rows are in that order already, and where it holds most rows only the other parts' rows are sorted and
    slotted in between: the cost of a copy, not of a sort."""
    kept = [np.asarray(ids, np.int64)[index.track] >= 0 for index, ids in parts]  # per part, its rows kept

    def rows(p: int, values: np.ndarray) -> np.ndarray:
        """The kept rows of part `p`'s column `values`."""
        return values if kept[p].all() else values[kept[p]]

    tracks = [rows(p, np.asarray(ids, np.int64)[index.track]) for p, (index, ids) in enumerate(parts)]
    keys = [rows(p, index.keys) for p, (index, _) in enumerate(parts)]
    n_tracks = max((int(t.max()) + 1 for t in tracks if t.size), default=0)
    if n_tracks == 0:
        return build_index({})

    def ordinal(p: int) -> np.ndarray:
        """Part `p`'s kept rows as one number each, ordered as (key, new track id)."""
        return keys[p].astype(np.int64) * n_tracks + tracks[p]

    big = max(range(len(parts)), key=lambda p: len(keys[p]))
    rest = [p for p in range(len(parts)) if p != big]
    big_ids = np.asarray(parts[big][1])
    slotted = 2 * len(keys[big]) >= sum(len(k) for k in keys)  # slotting in pays where one part holds most rows
    if not (slotted and np.all(np.diff(big_ids[big_ids >= 0]) > 0)):  # sort them all
        order = np.argsort(np.concatenate([ordinal(p) for p in range(len(parts))]), kind="stable")

        def arrange(cols: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(cols)[order]

    elif not rest:  # one part, its order kept

        def arrange(cols: list[np.ndarray]) -> np.ndarray:
            return cols[big]

    else:  # the largest part's rows are in order: the others' (sorted among themselves) are slotted in between
        others = np.concatenate([ordinal(p) for p in rest])
        order = np.argsort(others, kind="stable")
        at = np.searchsorted(ordinal(big), others[order]) + np.arange(len(order))  # no row of two parts ties
        into = np.ones(len(keys[big]) + len(order), bool)
        into[at] = False

        def arrange(cols: list[np.ndarray]) -> np.ndarray:
            out = np.empty((len(into), *cols[big].shape[1:]), cols[big].dtype)
            out[into] = cols[big]
            out[at] = np.concatenate([cols[p] for p in rest])[order]
            return out

    def column(name: str) -> np.ndarray:
        return arrange([rows(p, getattr(index.quads, name)) for p, (index, _) in enumerate(parts)])

    return Index(
        arrange(keys).astype(np.int32, copy=False),
        arrange(tracks).astype(np.int32 if n_tracks <= 2**31 else np.int64),
        Quads(*(column(name) for name in Quads.__dataclass_fields__)),
    )
