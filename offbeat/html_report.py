"""A page a person looks at (`offbeat report RESULT.json -o mix.html`; the analysis flow writes it beside the stems
and links it from the Prefect UI, `publish`): one self-contained HTML file, its styles and its one small script
inline, nothing fetched from the network.

It shows the mix's level over time with the tracks laid over it (coloured by their key on the Camelot wheel, the
transitions drawn where two tracks overlap), the beat grid's tempo, and one block per track: title or
identification, BPM, key, confidence, the transition into it. Where the mix's file can be reached from the page,
an audio player plays it from any track's start. Every text from producers and files (titles, artists, names) is
escaped: a title holding `<script>` stays text. Curves are reduced to at most `POINTS` values, so a three-hour mix
makes a page of a few hundred kilobytes at most.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from offbeat import cue_sheet
from offbeat.dsp import levels
from offbeat.errors import AnalysisError
from offbeat.media import decode
from offbeat.paths import atomic_text, export_dir, export_sibling
from offbeat.settings import Settings

POINTS = 1200  # values per curve on the page
WIDTH = 1000.0  # the drawings' width in SVG units
FLOOR_DB = -60.0


def camelot_colour(camelot: str | None) -> str:
    """The key's colour: the wheel's number as the hue (12 steps), the minor keys (A) lighter than the major (B)."""
    if not camelot or camelot[:-1] not in {str(n) for n in range(1, 13)} or camelot[-1] not in "AB":
        return "hsl(0, 0%, 75%)"
    hue = ((int(camelot[:-1]) - 1) * 30 + 160) % 360
    return f"hsl({hue}, 65%, {72 if camelot[-1] == 'A' else 55}%)"


def level_per_second(source: Path, settings: Settings) -> np.ndarray:
    """The mix's RMS level in dBFS, one value per second, decoded once in blocks at the analysis rate."""
    info = decode.probe(source, settings.ffmpeg_path)
    rate = settings.analysis_sample_rate
    squares: list[np.ndarray] = []
    carry = np.zeros(0, dtype=np.float32)
    for _, mono in decode.decode_blocks(
        source, info, sample_rate=settings.sample_rate, analysis_rate=rate, block_sec=10.0, ffmpeg=settings.ffmpeg_path
    ):
        carry = np.concatenate([carry, mono.reshape(-1)])
        whole = len(carry) // rate * rate
        squares.append(np.mean(np.square(carry[:whole].reshape(-1, rate), dtype=np.float64), axis=1))
        carry = carry[whole:]
    if len(carry):
        squares.append(np.array([np.mean(np.square(carry, dtype=np.float64))]))
    return levels.db(np.sqrt(np.concatenate(squares))) if squares else np.zeros(0)


def _reduced(values: np.ndarray, points: int = POINTS) -> tuple[np.ndarray, np.ndarray]:
    """(seconds, values) with at most `points` values: each the maximum of its span (NaN where all are NaN)."""
    if len(values) <= points:
        return np.arange(len(values), dtype=float), values
    edges = np.linspace(0, len(values), points + 1).astype(int)
    out = np.full(points, np.nan)
    for i in range(points):
        span = values[edges[i] : edges[i + 1]]
        if np.isfinite(span).any():
            out[i] = np.nanmax(span)
    return edges[:-1].astype(float), out


def _clock(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _x(seconds: float, duration: float) -> float:
    return round(WIDTH * seconds / duration, 2) if duration > 0 else 0.0


def _overview(document: dict[str, Any], level_db: np.ndarray | None) -> str:
    """The mix at a glance: level (or each track's loudness), tracks as key-coloured spans, blends hatched."""
    duration = float(document["results"]["global"]["duration_sec"])
    tracks = document["results"]["tracks"]
    height, top = 160.0, 20.0
    parts = [f'<svg class="overview" viewBox="0 0 {WIDTH:g} {height + top:g}" role="img" aria-label="the mix">']
    parts.append(
        '<defs><pattern id="blend" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        '<rect width="3" height="6" fill="rgba(40,40,40,0.35)"/></pattern></defs>'
    )
    for track in tracks:
        key = (track["analysis"].get("key") or {}).get("camelot")
        x0, x1 = _x(track["start_time_sec"], duration), _x(track["end_time_sec"], duration)
        parts.append(
            f'<rect class="span" data-target="track-{int(track["track_id"])}" x="{x0}" y="{top}" '
            f'width="{max(0.5, x1 - x0)}" height="{height}" fill="{camelot_colour(key)}" opacity="0.55">'
            f"<title>{_e(track.get('title') or 'Track ' + str(track['track_id'] + 1))}</title></rect>"
        )
        parts.append(f'<text x="{x0 + 3}" y="{top - 6}" class="label">{int(track["track_id"]) + 1}</text>')
        window = track.get("transition_in")
        if window:
            w0, w1 = _x(window[0], duration), _x(window[1], duration)
            parts.append(
                f'<rect class="blend" x="{w0}" y="{top}" width="{max(0.5, w1 - w0)}" height="{height}" '
                'fill="url(#blend)"/>'
            )

    def y(db: float) -> float:
        return round(top + height * (1 - (max(db, FLOOR_DB) - FLOOR_DB) / -FLOOR_DB), 2)

    if level_db is not None and len(level_db):
        seconds, values = _reduced(np.asarray(level_db, dtype=float))
        points = " ".join(f"{_x(s, duration)},{y(v)}" for s, v in zip(seconds, values, strict=True) if np.isfinite(v))
        parts.append(f'<polyline class="level" points="{points}"/>')
    else:  # no audio to measure: each track's loudness as a bar
        for track in tracks:
            lufs = track["analysis"].get("loudness_lufs_total")
            if lufs is not None:
                x0, x1 = _x(track["start_time_sec"], duration), _x(track["end_time_sec"], duration)
                parts.append(f'<line class="level" x1="{x0}" x2="{x1}" y1="{y(lufs)}" y2="{y(lufs)}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _tempo(document: dict[str, Any]) -> str:
    """The beat grid's BPM per second, broken where it is null (silence)."""
    curve = document["results"]["global"].get("bpm_curve") or []
    values = np.array([np.nan if v is None else float(v) for v in curve])
    if not np.isfinite(values).any():
        return ""
    duration = float(document["results"]["global"]["duration_sec"])
    seconds, reduced = _reduced(values)
    low, high = float(np.nanmin(reduced)) - 2, float(np.nanmax(reduced)) + 2
    height = 60.0
    runs, run = [], []
    for s, v in zip(seconds, reduced, strict=True):
        if np.isfinite(v):
            run.append(f"{_x(s, duration)},{round(height * (1 - (v - low) / (high - low)), 2)}")
        elif run:
            runs.append(run)
            run = []
    runs.append(run)
    lines = "".join(f'<polyline class="bpm" points="{" ".join(r)}"/>' for r in runs if r)
    return (
        f'<svg class="tempo" viewBox="0 0 {WIDTH:g} {height:g}" role="img" aria-label="tempo">{lines}</svg>'
        f'<p class="axis">tempo {low + 2:.0f}-{high - 2:.0f} BPM</p>'
    )


def _track_block(track: dict[str, Any], playable: bool) -> str:
    analysis = track["analysis"]
    key = analysis.get("key") or {}
    number = int(track["track_id"]) + 1
    identified = track.get("identified")
    title = track.get("title") or f"Track {number}"
    facts = [f"{_clock(track['start_time_sec'])} &ndash; {_clock(track['end_time_sec'])}"]
    if analysis.get("stable_bpm") is not None:
        confidence = analysis.get("bpm_confidence")
        facts.append(f"{analysis['stable_bpm']:.1f} BPM" + (f" ({confidence:.0%})" if confidence is not None else ""))
    if key:
        facts.append(
            f'<span class="key" style="background:{camelot_colour(key.get("camelot"))}">{_e(key.get("camelot"))}</span>'
            f" {_e(key.get('musical'))} ({key.get('confidence', 0):.0%})"
        )
    if track.get("start_confidence") is not None:
        facts.append(f"start {track['start_confidence']:.0%} sure")
    if analysis.get("has_vocals"):
        facts.append("vocals")
    transition = track.get("transition")
    if transition:
        facts.append(
            f"in by {_e(transition.get('kind'))}, {transition['end_time_sec'] - transition['start_time_sec']:.0f} s"
        )
    who = ""
    if identified:
        named = " &ndash; ".join(_e(identified[k]) for k in ("artist", "title") if identified.get(k))
        how = [f"{identified['confidence']:.0%}"] if identified.get("confidence") is not None else []
        how += [f"library {_e(identified['library'])}"] if identified.get("library") else []
        who = f'<p class="identified">{named}{" (" + ", ".join(how) + ")" if how else ""}</p>'

    play = (
        f'<button type="button" data-start="{float(track["start_time_sec"]):.3f}">▶ play</button>' if playable else ""
    )
    return (
        f'<article class="track" id="track-{int(track["track_id"])}" '
        f'style="border-color:{camelot_colour(key.get("camelot"))}">'
        f"<h2>{number}. {_e(title)}</h2>{who}<p>{' · '.join(facts)}</p>{play}</article>"
    )


STYLE = """
body{font:15px/1.4 system-ui,sans-serif;margin:1.5em auto;padding:0 1em;max-width:1100px;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:0 0 .2em}.meta,.axis{color:#666;font-size:.85em;margin:.2em 0}
svg{width:100%;display:block;background:#fff;border:1px solid #ddd}svg .label{font-size:11px;fill:#333}
svg .span{cursor:pointer}.level{fill:none;stroke:#2b4c7e;stroke-width:1.2}
.bpm{fill:none;stroke:#c0392b;stroke-width:1.2}
.tracks{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:.8em;margin-top:1em}
.track{background:#fff;border-left:8px solid;padding:.5em .8em;border-radius:4px;box-shadow:0 1px 2px #0002}
.track h2{font-size:1.05em;margin:.2em 0;overflow-wrap:anywhere}.track p{margin:.2em 0}
.key{padding:0 .35em;border-radius:3px;font-weight:600}.identified{color:#2d6a4f}
audio{width:100%;margin:.6em 0}
"""

SCRIPT = """
window.addEventListener('error', function (e) {
  document.body.dataset.errors = (document.body.dataset.errors || '') + e.message + ';';
});
var mix = document.getElementById('mix');
document.querySelectorAll('button[data-start]').forEach(function (button) {
  button.addEventListener('click', function () {
    mix.currentTime = parseFloat(button.dataset.start);
    mix.play();
  });
});
document.querySelectorAll('svg .span').forEach(function (span) {
  span.addEventListener('click', function () {
    document.getElementById(span.dataset.target).scrollIntoView({behavior: 'smooth'});
  });
});
document.body.dataset.ready = 'yes';
"""


def page(document: dict[str, Any], level_db: np.ndarray | None = None, audio_src: str | None = None) -> str:
    """The page of a completed result; `level_db`: the mix's level per second (else each track's loudness is
    drawn); `audio_src`: the mix's address as the page reaches it (a relative URL), for the player."""
    if document.get("status") != "completed":
        raise ValueError("only a completed result can be shown")
    results = document["results"]
    tracks = results["tracks"]
    duration = float(results["global"]["duration_sec"])
    engine = document.get("engine") or {}
    title = f"{_mix_name(results)}: {len(tracks)} tracks, {_clock(duration)}"
    meta = [f"analysis {_e(engine.get('analysis_id', ''))}"]
    meta += (
        [f"job {_e(document['job_id'])}"] if isinstance(document.get("job_id"), int) and document["job_id"] >= 0 else []
    )
    meta += [_e(warning) for warning in engine.get("warnings") or []]
    player = f'<audio id="mix" controls preload="none" src="{_e(audio_src)}"></audio>' if audio_src else ""
    blocks = "".join(_track_block(track, audio_src is not None) for track in tracks)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; media-src *; img-src data:\">"
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>"
        f'<h1>{_e(title)}</h1><p class="meta">{" · ".join(meta)}</p>'
        f"{player}{_overview(document, level_db)}"
        f'<p class="axis">{"level" if level_db is not None else "loudness of each track"}, {FLOOR_DB:g} to 0 dBFS; '
        "tracks coloured by key (Camelot); hatched: the blend into a track</p>"
        f"{_tempo(document)}"
        f'<section class="tracks">{blocks}</section><script>{SCRIPT}</script></body></html>\n'
    )


def _mix_name(results: dict[str, Any]) -> str:
    """The mix's name: the CUE sheet's TITLE (the hints' title, else the file's stem)."""
    try:
        sheet = cue_sheet.parse(results.get("cue_sheet") or "")
    except AnalysisError:
        return "Mix"
    return sheet.title or sheet.file or "Mix"


def audio_address(audio: Path, page_path: Path) -> str:
    """The mix's address relative to the page's folder, as a URL path (a link at the page's own name is not
    followed: `publish` replaces it)."""
    return quote(os.path.relpath(audio.resolve(), page_path.parent.resolve()))


def publish(source: Path, document: dict[str, Any], settings: Settings, level_db: np.ndarray | None = None) -> Path:
    """Write the page of `document`, a completed result of `source`, where the run's other files go: as
    `<name>.report.html` beside the `<name>.stems/` folder (beside the mix inside the shared mount, else under the
    local exports folder), atomically, in a folder opened without following links; its player plays the mix.
    Returns the page's path (what the analysis flow links to from the Prefect UI)."""
    mount, exports = settings.shared_mount_path, settings.local_exports_path
    path = export_sibling(source, document["engine"]["analysis_id"], mount, exports, ".report.html")
    text = page(document, level_db, audio_address(source, path))
    folder_fd = export_dir(path.parent, (mount, exports))
    try:
        atomic_text(folder_fd, path.name, text)
    finally:
        os.close(folder_fd)
    return path
