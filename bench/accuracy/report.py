"""Rows and tables of the scores: per corpus and per style (tracks pooled, boundary hits pooled), per mix, and
the engine's speed; GitHub markdown, with the goal row of the accuracy issue."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from bench.accuracy.score import BoundaryCounts, MixScore

# The goal row of the accuracy issue: a metric name -> (comparison, threshold).
GOALS: dict[str, tuple[str, float]] = {
    "tempo_acc1": (">=", 0.90),
    "tempo_acc2": (">=", 0.98),
    "beat_f": (">=", 0.90),
    "boundary_f10": (">=", 0.85),
    "key_mirex": (">=", 0.85),
    "vocals_right": (">=", 0.95),
    "lufs_mae": ("<=", 0.5),
}


def _mean(values: Iterable[float | bool | None]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def aggregate(name: str, mixes: list[MixScore], style: str | None = None) -> dict[str, Any]:
    """One table row: the mixes' tracks (of `style` only, for a style row) pooled.

    A corpus row's beat and downbeat F are the mean of its mixes' whole-mix F; a style row has no whole mixes,
    so its beat/downbeat F is the mean over its tracks' steady parts (both are in the JSON as `*_tracks`).
    Boundary P/R/F pool the matched counts over the mixes (micro average).
    """
    tracks = [t for m in mixes for t in m.tracks if style in (None, t.style)]
    c10, c3 = BoundaryCounts(), BoundaryCounts()
    for mix in mixes:
        c10.add(mix.boundary_counts10 if style is None else mix.style_boundaries10.get(style, BoundaryCounts()))
        c3.add(mix.boundary_counts3 if style is None else mix.style_boundaries3.get(style, BoundaryCounts()))
    p10, r10, f10 = c10.prf()
    _, _, f3 = c3.prf()
    track_beat, track_down = _mean(t.beat_f for t in tracks), _mean(t.downbeat_f for t in tracks)
    lufs_errors = [t.lufs_error for t in tracks if t.lufs_error is not None]
    timed = [m for m in mixes if m.wall_sec is not None]
    wall = sum(m.wall_sec or 0.0 for m in timed)
    return {
        "group": name,
        "mixes": len(mixes),
        "tracks": len(tracks),
        "tempo_acc1": _mean(t.tempo_acc1 for t in tracks),
        "tempo_acc2": _mean(t.tempo_acc2 for t in tracks),
        "beat_f": _mean(m.beat_f for m in mixes) if style is None else track_beat,
        "beat_f_tracks": track_beat,
        "downbeat_f": _mean(m.downbeat_f for m in mixes) if style is None else track_down,
        "downbeat_f_tracks": track_down,
        "boundary_f10": f10,
        "boundary_p10": p10,
        "boundary_r10": r10,
        "boundary_f3": f3,
        "boundary_counts10": asdict(c10),
        "boundary_counts3": asdict(c3),
        "key_mirex": _mean(t.key_score for t in tracks),
        "vocals_right": _mean(t.vocals_right for t in tracks),
        "lufs_mae": _mean(lufs_errors),
        "lufs_measured": f"{len(lufs_errors)}/{sum(t.lufs_true is not None for t in tracks)}",
        "tracks_unmatched": sum(t.est_index is None for t in tracks),
        "mixes_failed": sum(m.status != "completed" for m in mixes),
        "wall_sec": wall if timed else None,
        "audio_sec_per_sec": sum(m.duration_sec for m in timed) / wall if timed and wall > 0 else None,
    }


def group_rows(scores: list[MixScore]) -> list[dict[str, Any]]:
    """Rows per corpus and per style within it, then all corpora together when there are several."""
    rows = []
    corpora = sorted({m.corpus for m in scores})
    for corpus in [*corpora, *(["ALL"] if len(corpora) > 1 else [])]:
        mixes = [m for m in scores if corpus in ("ALL", m.corpus)]
        rows.append(aggregate(corpus, mixes))
        for style in sorted({t.style for m in mixes for t in m.tracks}):
            owning = [m for m in mixes if any(t.style == style for t in m.tracks)]
            rows.append(aggregate(f"{corpus} / {style}", owning, style))
    return rows


# -- tables ----------------------------------------------------------------------------------------------------

COLUMNS: list[tuple[str, str]] = [
    ("tempo_acc1", "tempo Acc1"),
    ("tempo_acc2", "tempo Acc2"),
    ("beat_f", "beat F"),
    ("downbeat_f", "downbeat F"),
    ("boundary_f10", "bnd F ±10 s"),
    ("boundary_p10", "bnd P ±10 s"),
    ("boundary_r10", "bnd R ±10 s"),
    ("boundary_f3", "bnd F ±3 s"),
    ("key_mirex", "key MIREX"),
    ("vocals_right", "vocals right"),
    ("lufs_mae", "LUFS MAE (LU)"),
]


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def markdown(header: list[str], rows: list[list[Any]], text_columns: int = 1) -> str:
    """A GitHub markdown table: the first `text_columns` left-aligned, the numbers right-aligned."""
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(" --- " if i < text_columns else " ---: " for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def goal_row() -> list[Any]:
    return ["**goal**", "", "", *(f"{GOALS[k][0]} {GOALS[k][1]:.2f}" if k in GOALS else "" for k, _ in COLUMNS)]


def summary_table(rows: list[dict[str, Any]]) -> str:
    header = ["group", "mixes", "tracks", *(title for _, title in COLUMNS)]
    body = [goal_row(), *([r["group"], r["mixes"], r["tracks"], *(r[k] for k, _ in COLUMNS)] for r in rows)]
    return markdown(header, body)


def per_mix_table(scores: list[MixScore]) -> str:
    header = ["mix", "tracks true/est", "status", *(title for _, title in COLUMNS)]
    body = []
    for mix in scores:
        row = aggregate(mix.mix_id, [mix])
        body.append(
            [
                f"{mix.corpus}/{mix.mix_id}",
                f"{mix.tracks_true}/{mix.tracks_est}",
                mix.status,
                *(row[k] for k, _ in COLUMNS),
            ]
        )
    return markdown(header, [goal_row(), *body], text_columns=3)


def timing_table(scores: list[MixScore]) -> str:
    header = ["mix", "audio s", "wall s", "audio s per s", "stages from store", "status"]
    body: list[list[Any]] = [
        [
            f"{m.corpus}/{m.mix_id}",
            round(m.duration_sec, 1),
            None if m.wall_sec is None else round(m.wall_sec, 1),
            m.audio_sec_per_sec,
            None if m.cached_stages is None else len(m.cached_stages),
            m.status,
        ]
        for m in scores
    ]
    timed = [m for m in scores if m.wall_sec]
    if timed:
        wall = sum(m.wall_sec or 0.0 for m in timed)
        audio = sum(m.duration_sec for m in timed)
        body.append(["**total**", round(audio, 1), round(wall, 1), audio / wall, "", ""])
    return markdown(header, body, text_columns=1)
