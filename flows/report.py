"""What a person sees of a result at a glance: the track table, a picture of the mix (PNG), and the level the
report page draws (`offbeat.html_report`).

The flow publishes them as Prefect artifacts; nothing here knows Prefect.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from typing import Any

import numpy as np

from offbeat.dsp import levels, series
from offbeat.pipeline.views import Cuts, FrameGrid
from offbeat.storage import Entry


def _clock(seconds: float) -> str:
    whole = round(seconds)
    if whole >= 3600:
        return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
    return f"{whole // 60}:{whole % 60:02d}"


def track_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per track of a completed result document: where it is and what it measures."""
    rows = []
    for track in result["results"]["tracks"]:
        analysis = track["analysis"]
        key = analysis.get("key") or {}
        rows.append(
            {
                "track": track["track_id"],
                "title": track.get("title") or "",
                "start": _clock(track["start_time_sec"]),
                "end": _clock(track["end_time_sec"]),
                "bpm": analysis.get("stable_bpm"),
                "key": key.get("musical"),
                "camelot": key.get("camelot"),
                "lufs": analysis.get("loudness_lufs_total"),
                "lufs_bass": analysis.get("loudness_lufs_bass"),
                "vocals": analysis.get("has_vocals"),
            }
        )
    return rows


def level_db(entries: Mapping[str, Entry], floor_db: float = -60.0) -> np.ndarray:
    """The mix's level in dBFS (floored), one value per second of the beat grid's tempo curve: each second's mean
    RMS envelope. Reads the `envelopes` and `beats` entries; no decoding."""
    envelopes = entries["envelopes"]
    count = entries["beats"]["bpm_curve"].shape[0]
    rms = series.means(envelopes["rms"][...], FrameGrid.of(envelopes).frame_rate, count=count)[:, 0]
    return np.maximum(levels.db(rms), floor_db)


def mix_picture(entries: Mapping[str, Entry], result: dict[str, Any], floor_db: float = -60.0) -> bytes:
    """A PNG of the whole mix: loudness per second with the tracks found; the evidence the boundaries were found
    in, the partition's self-similarity of the music's stretches (tracks are the bright squares along its
    diagonal: a part like itself and unlike its neighbours), with each cut it made and that cut's confidence;
    and the beat grid's tempo (beats per minute of the grid). Reads the `envelopes`, `beats` and `partition`
    entries."""
    # matplotlib's object API: no global pyplot state, safe in task threads; imported here, as only this
    # step needs it and it costs every flow process a second at start-up.
    from matplotlib.figure import Figure

    partition = entries["partition"]
    bpm_curve = entries["beats"]["bpm_curve"][...]
    level = level_db(entries, floor_db)
    cuts = Cuts.of(partition)
    tracks = result["results"]["tracks"]
    minutes = np.arange(len(level)) / 60.0
    fig = Figure(figsize=(12, 8), dpi=80)
    ax_level, ax_sim, ax_bpm = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [2, 3, 1]})
    ax_level.fill_between(minutes, floor_db, level, color="#4a6fa5", linewidth=0)
    ax_level.set_ylim(floor_db, max(0.0, float(level.max(initial=floor_db)) + 3))
    ax_level.set_ylabel("level (dBFS)")
    for i, track in enumerate(tracks):
        start, end = track["start_time_sec"] / 60, track["end_time_sec"] / 60
        ax_level.axvspan(start, end, color="#f2c14e" if i % 2 else "#9bc1bc", alpha=0.25, linewidth=0)
        analysis, key = track["analysis"], (track["analysis"].get("key") or {})
        bpm = f"{analysis['stable_bpm']:.0f} BPM" if analysis.get("stable_bpm") else "? BPM"
        label = f"{i}  {bpm}  {key.get('camelot') or '?'}" + ("  vox" if analysis.get("has_vocals") else "")
        ax_level.text(start, ax_level.get_ylim()[1] - 2, label, fontsize=8, va="top", ha="left", clip_on=True)
    similarity = partition["similarity"][...].astype(np.float32)
    lo = partition.attrs["similarity_start_sec"] / 60
    hi = lo + len(similarity) * partition.attrs["similarity_step_sec"] / 60
    if len(similarity):
        ax_sim.imshow(similarity, extent=(lo, hi, hi, lo), cmap="magma", vmin=0.0, vmax=1.0, aspect="auto")
        ax_sim.set_ylim(hi, lo)
    for time, sure in zip(cuts.times, cuts.confidence, strict=True):
        ax_sim.axvline(time / 60, color="#7fdbff", linewidth=1)
        ax_sim.text(time / 60, lo, f" {sure:.2f}", color="#7fdbff", fontsize=8, va="top", ha="left", clip_on=True)
    ax_sim.set_ylabel("self-similarity, cuts\nand their confidence")
    with np.errstate(invalid="ignore"):
        ax_bpm.plot(np.arange(len(bpm_curve)) / 60.0, bpm_curve, color="#ed6a5a", linewidth=1)
    ax_bpm.set_ylabel("beat grid (BPM)")
    ax_bpm.set_xlabel("minutes")
    for track in tracks[1:]:
        for axis in (ax_level, ax_bpm):
            axis.axvline(track["start_time_sec"] / 60, color="#c0392b", linestyle="--", linewidth=1)
    ax_bpm.set_xlim(0, max(minutes[-1] if len(minutes) else 0, 1 / 60))
    title = f"{len(tracks)} track(s), {_clock(result['results']['global']['duration_sec'])}"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    """The PNG inline, for an image artifact (no file server needed)."""
    return "data:image/png;base64," + base64.b64encode(png).decode()
