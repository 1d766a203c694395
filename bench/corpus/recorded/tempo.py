"""What a chart says about time: the MIDI tempo map of ``notes.mid`` and the beat grid it implies."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class TempoMap:
    """What a chart says about time: tempo changes, time signatures, and the ticks of the charted notes."""

    ticks_per_beat: int
    tempos: list[tuple[int, int]]  # (tick, microseconds per quarter note)
    time_sigs: list[tuple[int, int, int]]  # (tick, numerator, denominator)
    note_ticks: np.ndarray


def _vlq(data: bytes, i: int) -> tuple[int, int]:
    value = 0
    while True:
        b = data[i]
        i += 1
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            return value, i


def _parse_smf(data: bytes) -> TempoMap:
    """Minimal standard MIDI file reader (formats 0/1): the meta events and note-ons we need, nothing else.

    Used when ``mido`` is not installed, so the corpus does not depend on an optional package.
    """
    if data[:4] != b"MThd":
        raise ValueError("not a standard MIDI file")
    header_len = struct.unpack(">I", data[4:8])[0]
    _fmt, n_tracks, division = struct.unpack(">HHH", data[8:14])
    if division & 0x8000:
        raise ValueError("SMPTE time division is not supported")
    tempos: list[tuple[int, int]] = []
    sigs: list[tuple[int, int, int]] = []
    notes: list[int] = []
    i = 8 + header_len
    for _ in range(n_tracks):
        if data[i : i + 4] != b"MTrk":
            raise ValueError("bad track chunk")
        end = i + 8 + struct.unpack(">I", data[i + 4 : i + 8])[0]
        j, tick, status = i + 8, 0, 0
        while j < end:
            delta, j = _vlq(data, j)
            tick += delta
            b = data[j]
            if b == 0xFF:
                kind = data[j + 1]
                length, k = _vlq(data, j + 2)
                payload = data[k : k + length]
                if kind == 0x51 and length == 3:
                    tempos.append((tick, int.from_bytes(payload, "big")))
                elif kind == 0x58 and length >= 2:
                    sigs.append((tick, payload[0], 2 ** payload[1]))
                j = k + length
            elif b in (0xF0, 0xF7):
                length, k = _vlq(data, j + 1)
                j = k + length
            else:
                if b & 0x80:
                    status = b
                    j += 1
                n = 1 if status & 0xF0 in (0xC0, 0xD0) else 2
                if status & 0xF0 == 0x90 and data[j + 1] > 0:
                    notes.append(tick)
                j += n
        i = end
    return TempoMap(division, tempos, sigs, np.unique(np.array(notes, dtype=np.int64)))


def _read_with_mido(path: Path) -> TempoMap:
    import mido  # optional; the fallback parser gives the same events

    mid = mido.MidiFile(str(path))
    tempos: list[tuple[int, int]] = []
    sigs: list[tuple[int, int, int]] = []
    notes: list[int] = []
    for track in mid.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "set_tempo":
                tempos.append((tick, int(msg.tempo)))
            elif msg.type == "time_signature":
                sigs.append((tick, int(msg.numerator), int(msg.denominator)))
            elif msg.type == "note_on" and msg.velocity > 0:
                notes.append(tick)
    return TempoMap(int(mid.ticks_per_beat), tempos, sigs, np.unique(np.array(notes, dtype=np.int64)))


def read_tempo_map(path: Path) -> TempoMap:
    """Read a chart's tempo map (``mido`` when installed, else the built-in parser); sorted, MIDI defaults filled."""
    try:
        tmap = _read_with_mido(path)
    except ImportError:
        tmap = _parse_smf(path.read_bytes())
    # Several tempo events on one tick (Metal madness has three): the last one is the one in force.
    tempos = dict(sorted(tmap.tempos, key=lambda e: e[0]))
    if 0 not in tempos:
        tempos[0] = 500_000  # MIDI default: 120 BPM until the first tempo event
    sigs = {t: (n, d) for t, n, d in sorted(tmap.time_sigs, key=lambda e: e[0])}
    if 0 not in sigs:
        sigs[0] = (4, 4)  # MIDI default meter
    tmap.tempos = sorted(tempos.items())
    tmap.time_sigs = sorted((t, n, d) for t, (n, d) in sigs.items())
    return tmap


def ticks_to_seconds(tmap: TempoMap, ticks: np.ndarray) -> np.ndarray:
    """Map ticks to seconds through the piecewise-constant tempo."""
    ticks = np.asarray(ticks, dtype=np.float64)
    starts = np.array([t for t, _ in tmap.tempos], dtype=np.float64)
    spt = np.array([us / 1e6 / tmap.ticks_per_beat for _, us in tmap.tempos])  # seconds per tick
    seg_sec = np.concatenate([[0.0], np.cumsum(np.diff(starts) * spt[:-1])])
    k = np.clip(np.searchsorted(starts, ticks, side="right") - 1, 0, len(starts) - 1)
    return seg_sec[k] + (ticks - starts[k]) * spt[k]


def beat_grid(tmap: TempoMap, end_sec: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Beats (one per 4/denominator whole notes) and bar starts up to ``end_sec``, plus the dominant meter.

    Bars restart at every time-signature event, as in a sequencer.
    """
    beats: list[float] = []
    down: list[float] = []
    meters: dict[int, float] = {}
    for n, (tick0, num, den) in enumerate(tmap.time_sigs):
        tick_end = tmap.time_sigs[n + 1][0] if n + 1 < len(tmap.time_sigs) else math.inf
        step = tmap.ticks_per_beat * 4 / den
        k = 0
        while True:
            tick = tick0 + k * step
            if tick >= tick_end:
                break
            sec = float(ticks_to_seconds(tmap, np.array([tick]))[0])
            if sec > end_sec:
                break
            beats.append(sec)
            if k % num == 0:
                down.append(sec)
            meters[num] = meters.get(num, 0.0) + 1
            k += 1
        if not beats or beats[-1] > end_sec:
            break
    meter = max(meters, key=lambda m: meters[m]) if meters else 4
    return np.array(beats), np.array(down), meter
