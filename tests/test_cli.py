"""`offbeat` as an operator runs it: a separate process, JSON on stdout, logs on stderr."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from offbeat import cue_sheet
from offbeat.settings import Settings

from .audio_files import write_wav

OFFBEAT = str(Path(sys.executable).with_name("offbeat"))

pytestmark = pytest.mark.slow  # each test runs `offbeat` in a process of its own


def offbeat(*args: str, api: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if api:
        env["PREFECT_API_URL"] = api  # the session's server: skips a 15 s ephemeral start per call
    return subprocess.run([OFFBEAT, *args], capture_output=True, text=True, env=env, timeout=300)


def test_analyze_prints_the_document_and_caches(settings: Settings, tmp_path: Path, prefect_api: str) -> None:
    path = write_wav(tmp_path / "set.ogg", seconds=5.0, lead=2.0, subtype="VORBIS")
    first = offbeat("analyze", str(path), api=prefect_api)
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)  # stdout holds the document and nothing else
    assert doc["status"] == "completed"
    assert doc["results"]["global"]["trimmed_start_sec"] == pytest.approx(2.0, abs=0.05)
    assert "decode" in first.stderr  # progress and logs go to stderr

    out, sheet = tmp_path / "result.json", tmp_path / "sheets" / "set.cue"
    second = offbeat("analyze", str(path), "--output", str(out), "--cue-sheet", str(sheet), api=prefect_api)
    assert second.returncode == 0 and second.stdout == ""
    cached = json.loads(out.read_text())
    assert len(cached["engine"]["cached_stages"]) == len(cached["engine"]["timings_sec"]) - 1  # all but "total"
    assert "read from the store" in second.stderr
    # The CUE sheet written beside is the document's, naming the file; it reads back to the tracks' starts.
    assert sheet.read_text() == cached["results"]["cue_sheet"] == doc["results"]["cue_sheet"]
    read = cue_sheet.parse(sheet.read_text())
    assert (read.title, read.file, read.tracks[0].title) == ("set", "set.ogg", "Track 1")
    starts = [t["start_time_sec"] for t in cached["results"]["tracks"]]
    assert [t.start_sec for t in read.tracks] == pytest.approx(starts, abs=1 / 75)


def test_analyze_failure_exits_non_zero_without_traceback(settings: Settings, tmp_path: Path, prefect_api: str) -> None:
    (tmp_path / "notes.mp3").write_text("these are not audio bytes\n" * 50)
    result = offbeat("analyze", str(tmp_path / "notes.mp3"), api=prefect_api)
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert doc["error_code"] == "unsupported_audio"
    assert "Traceback" not in result.stderr and "analysis failed [unsupported_audio]" in result.stderr


def test_schema_command() -> None:
    result = offbeat("schema")
    assert result.returncode == 0
    schemas = json.loads(result.stdout)
    assert {"job", "result"} <= set(schemas)


def test_analyze_of_a_missing_file_answers_before_prefect_starts(settings: Settings, tmp_path: Path) -> None:
    """The file is checked before the flow: a Prefect API that does not answer is never reached (it waited ~15 s
    for Prefect's start-up, then said `file_not_found`), and the document is the flow's own failed result."""
    unreachable = "http://127.0.0.1:9/api"  # the discard port: any use of Prefect would fail, not say file_not_found
    for path, code in ((tmp_path / "missing.wav", "file_not_found"), (tmp_path, "invalid_path")):
        result = offbeat("analyze", str(path), "--job-id", "4", api=unreachable)
        assert result.returncode == 1, result.stderr
        doc = json.loads(result.stdout)
        assert doc == {
            "job_id": 4,
            "status": "failed",
            "error": doc["error"],
            "error_code": code,
            "stage": "intake",
            "retryable": False,
        }
        assert path.name in doc["error"] and f"analysis failed [{code}]" in result.stderr


def test_a_malformed_cue_sheet_is_an_invalid_job_before_prefect_starts(settings: Settings, tmp_path: Path) -> None:
    """`--cue-file` takes a CUE sheet as well as the JSON list; a malformed one is the failed document a job with
    that sheet gets (`invalid_job`, naming the line), answered without starting Prefect."""
    path = write_wav(tmp_path / "set.wav", seconds=2.0)
    sheet = tmp_path / "set.cue"
    sheet.write_text('FILE "set.wav" WAVE\n  TRACK 01 AUDIO\n    TITLE "A"\n    INDEX 01 00:00:80\n')
    result = offbeat("analyze", str(path), "--cue-file", str(sheet), api="http://127.0.0.1:9/api")
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["error_code"], doc["stage"], doc["retryable"]) == ("invalid_job", "intake", False)
    assert doc["error"] == "cue sheet line 4 (INDEX 01 00:00:80): frames go up to 74 (75 a second), not 80"


def test_cache_ls_does_not_create_the_store(settings: Settings, tmp_path: Path) -> None:
    """Listing a store that does not exist yet lists nothing and leaves no folder behind (a read does not write);
    once the store exists it is listed as before."""
    from offbeat.storage import open_store

    root = Path(settings.artifact_store)
    listed = offbeat("cache", "ls")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("0 entries, 0 B in ") and not root.exists()
    shown = offbeat("cache", "show", str(write_wav(tmp_path / "mix.wav", seconds=2.0)))
    assert shown.returncode == 0 and "nothing cached" in shown.stdout and not root.exists()
    open_store(settings).close()
    listed = offbeat("cache", "ls")
    assert listed.returncode == 0 and listed.stdout == f"0 entries, 0 B in {root}\n" and root.exists()
