"""The track list: tracks between the boundaries found, or one per cue hint of a DJ's cue list, each hint moved
to a boundary found near it. Numpy in, numpy out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LISTED_CUES = 3  # dropped cues named in a warning; the rest are counted, so 3000 cues make no huge document
SHORT_LAST_TRACK_SEC = 1.0  # a last track shorter than this is no track: said in a warning


@dataclass(frozen=True)
class Segments:
    starts: np.ndarray  # track starts, seconds from the start of the file
    ends: np.ndarray
    transition_starts: np.ndarray  # (len - 1,) transition window before each boundary between tracks
    transition_ends: np.ndarray


def segments_from_boundaries(
    boundaries: np.ndarray, windows: tuple[np.ndarray, np.ndarray], music_start: float, music_end: float
) -> Segments:
    """Tracks between consecutive boundaries: the first starts with the music, the last ends with it."""
    inside = (boundaries > music_start) & (boundaries < music_end)
    bounds = boundaries[inside]
    order = np.argsort(bounds)
    bounds = bounds[order]
    t_start, t_end = windows[0][inside][order], windows[1][inside][order]
    return Segments(
        starts=np.concatenate([[music_start], bounds]),
        ends=np.concatenate([bounds, [music_end]]),
        transition_starts=np.maximum(t_start, music_start),
        transition_ends=np.minimum(t_end, music_end),
    )


def snap_cues(cues: np.ndarray, detected: np.ndarray, tolerance: float) -> np.ndarray:
    """Each cue moved to the nearest detected boundary within `tolerance`, else kept as it is."""
    if len(detected) == 0:
        return cues.astype(float)
    nearest = detected[np.abs(detected[None, :] - cues[:, None]).argmin(axis=1)]
    return np.where(np.abs(nearest - cues) <= tolerance, nearest, cues).astype(float)


def _snapped(
    cues: list[tuple[str, float]], found: np.ndarray, music_start: float, music_end: float, tolerance: float
) -> tuple[list[tuple[str, float]], np.ndarray, np.ndarray]:
    """The cues in time order, the boundaries the second one on snap to, and which of those lie inside the music
    (the first cue starts the music, so it always does)."""
    ordered = sorted(cues, key=lambda cue: cue[1])
    times = np.array([t for _, t in ordered[1:]], dtype=float)
    bounds = snap_cues(times, found, tolerance)
    return ordered, bounds, (bounds > music_start) & (bounds < music_end)


def tracks_from_cues(
    cues: list[tuple[str, float]],
    found: np.ndarray,
    windows: tuple[np.ndarray, np.ndarray],
    music_start: float,
    music_end: float,
    tolerance: float,
) -> tuple[Segments, list[str | None]]:
    """One track per cue (the first cue starts the music); a cue within `tolerance` of a detected boundary moves
    there and takes its transition window, one kept as given has none (zero width). Returns the segments and
    the cue titles, in time order. A cue outside the music starts no track (`dropped_cues` says which)."""
    ordered, bounds, inside = _snapped(cues, found, music_start, music_end, tolerance)
    match = {float(b): (float(lo), float(hi)) for b, lo, hi in zip(found, *windows, strict=True)}
    spans = np.array([match.get(float(b), (b, b)) for b in bounds]).reshape(-1, 2)
    segments = segments_from_boundaries(bounds, (spans[:, 0], spans[:, 1]), music_start, music_end)
    kept = [ordered[0][0]] + [title for (title, _), keep in zip(ordered[1:], inside, strict=True) if keep]
    return segments, kept[: len(segments.starts)]


def dropped_cues(
    cues: list[tuple[str, float]], found: np.ndarray, music_start: float, music_end: float, tolerance: float
) -> list[str]:
    """Warnings naming the cues that start no track because they lie past the end of the music (or before its
    start, in the leading silence): they used to vanish from the result without a word; and a last track shorter
    than SHORT_LAST_TRACK_SEC (a cue a few milliseconds before the end: of another edit of the mix?)."""
    ordered, bounds, inside = _snapped(cues, found, music_start, music_end, tolerance)
    out = [(cue, bound) for cue, bound, keep in zip(ordered[1:], bounds, inside, strict=True) if not keep]
    after = [cue for cue, bound in out if bound >= music_end]
    before = [cue for cue, bound in out if bound < music_end]
    warnings = []
    if after:
        warnings.append(f"{_listed(after)} past the end of the music ({music_end:.1f} s): dropped")
    if before:
        warnings.append(f"{_listed(before)} before the music starts ({music_start:.1f} s): dropped")
    kept = [(cue, bound) for cue, bound, keep in zip(ordered[1:], bounds, inside, strict=True) if keep]
    if kept and music_end - kept[-1][1] < SHORT_LAST_TRACK_SEC:
        (title, start), bound = kept[-1]
        warnings.append(
            f"the last track ({title[:80]!r}, cued at {start:.3f} s) is {1000 * (music_end - bound):.0f} ms long: "
            f"it starts just before the end of the music ({music_end:.3f} s); is the cue from another edit?"
        )
    return warnings


def _listed(cues: list[tuple[str, float]]) -> str:
    """'2 cues start' with the first LISTED_CUES named and timed, for a warning."""
    named = ", ".join(f"{title[:80]!r} at {start:.1f} s" for title, start in cues[:LISTED_CUES])
    more = f" and {len(cues) - LISTED_CUES} more" if len(cues) > LISTED_CUES else ""
    return f"{len(cues)} cue{'s' if len(cues) != 1 else ''} ({named}{more}) start{'s' if len(cues) == 1 else ''}"
