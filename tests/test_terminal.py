"""What a person at a terminal sees from `offbeat analyze` and `offbeat demo`: a track table and, for the demo, one
line against the demo mix's truth; JSON with `--json` and whenever stdout is not a terminal."""

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from offbeat import synth
from offbeat.console import track_table, truth_line
from offbeat.settings import Settings

OFFBEAT = str(Path(sys.executable).with_name("offbeat"))


def _track(number: int, start: float, end: float, bpm: float | None, **more: Any) -> dict[str, Any]:
    key = {"musical": "A minor", "camelot": "8A", "confidence": 0.9}
    analysis = {"stable_bpm": bpm, "key": key if bpm else None, "loudness_lufs_total": -14.26 if bpm else None}
    return {"track_id": number, "start_time_sec": start, "end_time_sec": end, "analysis": analysis, **more}


def test_the_table_has_a_row_per_track_and_escapes_titles() -> None:
    identified = {"artist": "Ann", "title": "Blue"}
    doc = {
        "results": {
            "tracks": [
                _track(1, 2.0, 85.4, 124.04, title="Intro"),
                _track(2, 83.0, 165.0, None, title="evil\x1b[2J\nforged row"),
                _track(3, 160.0, 3725.0, 122.0, identified=identified),
            ]
        }
    }
    lines = track_table(doc).splitlines()
    assert len(lines) == 4 and lines[0].split() == ["track", "start", "end", "BPM", "key", "LUFS", "title"]
    assert lines[1].split() == ["1", "0:02", "1:25", "124.0", "A", "minor", "(8A)", "-14.3", "Intro"]
    assert "\x1b" not in lines[2] and lines[2].endswith("evil\\x1b[2J\\nforged row")
    assert lines[3].split()[:3] == ["3", "2:40", "1:02:05"] and lines[3].endswith("Ann - Blue")


def test_the_truth_line_counts_boundaries_and_tempos() -> None:
    spec = synth.demo_mix(4)
    played = [(start, end, s.bpm) for (start, end), s in zip(spec.spans(), spec.sections, strict=True)]
    (b1, b2), bpms = spec.boundaries(), [s.bpm for s in spec.sections]
    good = {
        "results": {
            "tracks": [
                _track(1, 2, b1 + 3, bpms[0]),
                _track(2, b1 + 3, b2 - 1, bpms[1] + 0.3),
                _track(3, b2 - 1, 242, bpms[2]),
            ]
        }
    }
    assert truth_line(good, spec.boundaries(), played) == (
        "against the truth: 2 of 2 boundaries within 10 s (at most 3.0 s off), 3 of 3 tempos within 0.5 BPM; "
        "3 tracks found, 3 played"
    )
    # One boundary 12 s off, one tempo at half speed, a track too many: each is counted against it.
    bad = {
        "results": {
            "tracks": [
                _track(1, 2, b1 + 12, bpms[0] / 2),
                _track(2, b1 + 12, b2, bpms[1]),
                _track(3, b2, 200, bpms[2]),
                _track(4, 200, 242, bpms[2]),
            ]
        }
    }
    assert truth_line(bad, spec.boundaries(), played).startswith(
        "against the truth: 1 of 2 boundaries within 10 s (at most 0.0 s off), 2 of 3 tempos within 0.5 BPM; 4 tracks"
    )


def _in_terminal(args: list[str], env: dict[str, str], stderr: Path) -> tuple[int, str]:
    """Run `offbeat` with its stdout on a pseudo-terminal (stderr to a file); its exit status and what it showed."""
    master, slave = pty.openpty()
    with stderr.open("wb") as err:
        proc = subprocess.Popen([OFFBEAT, *args], stdin=subprocess.DEVNULL, stdout=slave, stderr=err, env=env)
    os.close(slave)
    shown = bytearray()
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every writer of the terminal is gone
                    break
                if not data:
                    break
                shown += data
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=600)
    finally:
        os.close(master)
    return code, shown.decode().replace("\r\n", "\n")


@pytest.mark.slow
def test_demo_shows_a_table_on_a_terminal_and_json_otherwise(
    settings: Settings, tmp_path: Path, prefect_api: str
) -> None:
    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    demo = ["demo", "--minutes", "1", "--folder", str(tmp_path / "demo")]
    code, shown = _in_terminal(demo, env, tmp_path / "demo.err")
    assert code == 0, (tmp_path / "demo.err").read_text()[-3000:]
    assert not shown.lstrip().startswith("{")  # no JSON on the terminal

    piped = subprocess.run([OFFBEAT, *demo], capture_output=True, text=True, env=env, timeout=600)
    assert piped.returncode == 0, piped.stderr[-3000:]
    doc = json.loads(piped.stdout)  # not a terminal: the document, and nothing else, on stdout
    spec = synth.demo_mix(1)
    played = [(start, end, s.bpm) for (start, end), s in zip(spec.spans(), spec.sections, strict=True)]
    line = truth_line(doc, spec.boundaries(), played)
    assert line in piped.stderr.splitlines()  # the truth line still said, on stderr
    # The terminal showed exactly the table of that document and the truth line under it.
    assert shown.strip().splitlines()[-(len(doc["results"]["tracks"]) + 2) :] == [*track_table(doc).splitlines(), line]

    mix = tmp_path / "demo" / "demo-mix-1min.wav"
    code, shown = _in_terminal(["analyze", str(mix), "--json"], env, tmp_path / "analyze.err")
    assert code == 0, (tmp_path / "analyze.err").read_text()[-3000:]
    assert json.loads(shown)["results"]["tracks"] == doc["results"]["tracks"]

    # -o FILE: the document goes to the file, the terminal still shows the table.
    out = tmp_path / "result.json"
    code, shown = _in_terminal(["analyze", str(mix), "-o", str(out)], env, tmp_path / "out.err")
    assert code == 0, (tmp_path / "out.err").read_text()[-3000:]
    assert shown.strip().splitlines() == track_table(doc).splitlines()
    assert json.loads(out.read_text())["results"]["tracks"] == doc["results"]["tracks"]
