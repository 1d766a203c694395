"""`offbeat` as an operator runs it: a separate process, JSON on stdout, logs on stderr."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from offbeat.settings import Settings

from .audio_files import write_wav

OFFBEAT = str(Path(sys.executable).with_name("offbeat"))


def offbeat(*args: str, api: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if api:
        env["PREFECT_API_URL"] = api  # the session's server: skips a 15 s ephemeral start per call
    return subprocess.run([OFFBEAT, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_analyze_prints_the_document_and_caches(settings: Settings, tmp_path: Path, prefect_api: str) -> None:
    path = write_wav(tmp_path / "set.ogg", seconds=5.0, lead=2.0, subtype="VORBIS")
    first = offbeat("analyze", str(path), api=prefect_api)
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)  # stdout holds the document and nothing else
    assert doc["status"] == "completed"
    assert doc["results"]["global"]["trimmed_start_sec"] == pytest.approx(2.0, abs=0.05)
    assert "decode" in first.stderr  # progress and logs go to stderr

    out = tmp_path / "result.json"
    second = offbeat("analyze", str(path), "--output", str(out), api=prefect_api)
    assert second.returncode == 0 and second.stdout == ""
    cached = json.loads(out.read_text())
    assert len(cached["engine"]["cached_stages"]) == len(cached["engine"]["timings_sec"]) - 1  # all but "total"
    assert "read from the store" in second.stderr


@pytest.mark.slow
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
