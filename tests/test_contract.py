import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from offbeat.contract import (
    MAX_JOB_ID,
    NO_JOB_ID,
    CompletedResult,
    EngineInfo,
    FailedResult,
    GlobalAnalysis,
    Results,
    dump_result,
    job_id_of,
    json_schemas,
    parse_job,
)
from offbeat.errors import AnalysisError, ErrorCode

OFFBEAT = str(Path(sys.executable).with_name("offbeat"))
SHEET = 'TITLE "Set"\nTRACK 01 AUDIO\n  TITLE "A"\n  INDEX 01 00:00:00\nTRACK 02 AUDIO\n  INDEX 01 02:00:00\n'


def test_valid_job_with_cues_and_unknown_fields() -> None:
    job = parse_job(
        json.dumps(
            {
                "job_id": 42,
                "relative_path": "mixes/2025/set.mp3",
                "cue_tracks": [
                    {"title": "Intro", "start_time_sec": 0.0},
                    {"title": "B", "start_time_sec": 312.5},
                ],
                "priority": "high",
            }
        )
    )
    assert job.job_id == 42
    assert job.relative_path == "mixes/2025/set.mp3"
    assert [c.title for c in job.cue_tracks or []] == ["Intro", "B"]


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'"text"', "JSON object"),
        (b'{"relative_path": "a.wav"}', "job_id"),
        (b'{"job_id": "42", "relative_path": "a.wav"}', "job_id"),
        (b'{"job_id": 4.0, "relative_path": "a.wav"}', "job_id"),
        (b'{"job_id": true, "relative_path": "a.wav"}', "job_id"),
        (b'{"job_id": -3, "relative_path": "a.wav"}', "job_id"),
        (json.dumps({"job_id": MAX_JOB_ID + 1, "relative_path": "a.wav"}).encode(), "job_id"),
        (b'{"job_id": 1}', "exactly one of"),
        (b'{"job_id": 1, "relative_path": "a", "file_path": "/b"}', "exactly one of"),
        (b'{"job_id": 1, "relative_path": 7}', "relative_path"),
        (b'{"job_id": 1, "relative_path": "a", "cue_tracks": [{"title": "x"}]}', "cue_tracks"),
        (b'{"job_id": 1, "relative_path": "a", "cue_tracks": [{"title": "x", "start_time_sec": -1}]}', "cue"),
        (
            json.dumps({"job_id": 1, "relative_path": "a", "cue_tracks": [], "cue_sheet": SHEET}).encode(),
            "cue_tracks or cue_sheet, not both",
        ),
        (json.dumps({"job_id": 1, "relative_path": "a", "cue_sheet": 7}).encode(), "cue_sheet"),
        (
            json.dumps(
                {"job_id": 1, "relative_path": "a", "cue_sheet": SHEET.replace("02:00:00", "02:00:75")}
            ).encode(),
            "cue sheet line 6 (INDEX 01 02:00:75): frames go up to 74",
        ),
        (json.dumps({"job_id": 1, "relative_path": "a", "cue_sheet": "REM nothing"}).encode(), "cue sheet: no TRACK"),
    ],
)
def test_bad_jobs_are_refused_with_a_readable_message(raw: bytes, fragment: str) -> None:
    with pytest.raises(AnalysisError) as caught:
        parse_job(raw)
    assert caught.value.code is ErrorCode.INVALID_JOB
    assert fragment in caught.value.message


def test_a_cue_sheet_in_a_job_is_read_as_its_cue_hints() -> None:
    job = parse_job(json.dumps({"job_id": 3, "relative_path": "set.mp3", "cue_sheet": SHEET}), max_cues=2)
    assert job.cue_sheet == SHEET and job.cue_tracks is None
    with pytest.raises(AnalysisError) as caught:  # OFFBEAT_MAX_CUES counts a sheet's tracks too
        parse_job(json.dumps({"job_id": 3, "relative_path": "set.mp3", "cue_sheet": SHEET}), max_cues=1)
    assert caught.value.code is ErrorCode.INVALID_JOB and "at most 1" in caught.value.message


def test_job_id_of_unreadable_jobs() -> None:
    assert job_id_of(b"{oops") == NO_JOB_ID
    assert job_id_of(b'{"job_id": 7, "relative_path": 3}') == 7
    assert job_id_of(b'{"job_id": -7}') == NO_JOB_ID
    assert job_id_of(b"[7]") == NO_JOB_ID


def test_result_documents_use_wire_names() -> None:
    done = CompletedResult(
        job_id=1,
        results=Results(global_=GlobalAnalysis(duration_sec=10.0, trimmed_start_sec=1.5, trimmed_end_sec=0.0)),
        engine=EngineInfo(version="x", analysis_id="a", timings_sec={"decode": 1.0}),
    )
    doc = dump_result(done)
    assert doc["status"] == "completed"
    assert doc["results"]["global"]["trimmed_start_sec"] == 1.5
    assert "global_" not in doc["results"]
    failed = dump_result(
        FailedResult.from_error(3, AnalysisError(ErrorCode.FILE_NOT_FOUND, "file not found: a.mp3", stage="decode"))
    )
    assert failed == {
        "job_id": 3,
        "status": "failed",
        "error": "file not found: a.mp3",
        "error_code": "file_not_found",
        "stage": "decode",
        "retryable": False,
    }


def test_schemas_describe_job_and_both_result_kinds() -> None:
    schemas = json_schemas()
    assert set(schemas["job"]["required"]) == {"job_id"}
    text = json.dumps(schemas["result"])
    assert '"global"' in text and "error_code" in text and "file_not_found" in text


def test_env_example_documents_every_setting() -> None:
    from offbeat.settings import Settings, env_example

    from .conftest import REPO

    assert (REPO / ".env.example").read_text().strip() == env_example().strip(), (
        "run: offbeat config --example > .env.example"
    )
    for name, field in Settings.model_fields.items():
        assert field.description, f"setting {name} needs a description"


def test_hostile_messages_are_invalid_not_fatal() -> None:
    """Issue 14, cases 3 and 5: whatever the parser raises is `invalid_job`, with a bounded message; a lone
    surrogate in the path is `invalid_path` (no file name or UTF-8 document can hold it)."""
    for raw in ("[" * 3000 + "]" * 3000, '{"job_id": 1, "relative_path": ' + "[" * 3000 + "]" * 3000 + "}"):
        with pytest.raises(AnalysisError) as caught:
            parse_job(raw)
        assert caught.value.code is ErrorCode.INVALID_JOB
    with pytest.raises(AnalysisError) as caught:
        parse_job('{"job_id": 1, "relative_path": "a\\ud800.wav"}')
    assert caught.value.code is ErrorCode.INVALID_PATH
    with pytest.raises(AnalysisError) as caught:
        parse_job(json.dumps({"job_id": 1, "relative_path": "x" * 5_000_000}), max_bytes=1_000_000)
    assert caught.value.code is ErrorCode.INVALID_JOB and len(caught.value.message) < 200
    with pytest.raises(AnalysisError) as caught:
        raise AnalysisError(ErrorCode.INVALID_PATH, "path: " + "y" * 5_000_000)
    assert len(caught.value.message) < 1100 and "more characters" in caught.value.message


# -- the printed job schema refuses what the engine refuses ------------------------------------------------------

SCHEMA_MAX_CUES = 3  # OFFBEAT_MAX_CUES for both sides of the comparison
CUE = {"title": "A", "start_time_sec": 0}
AGREEMENT_CASES: list[tuple[str, str, bool]] = [  # (name, message, accepted by the engine)
    ("relative path", '{"job_id": 1, "relative_path": "sets/a.wav"}', True),
    ("legacy file path", '{"job_id": 1, "file_path": "/shared/a.wav"}', True),
    ("other path null", '{"job_id": 1, "relative_path": "a.wav", "file_path": null}', True),
    ("job id 0", '{"job_id": 0, "relative_path": "a.wav"}', True),
    ("largest job id", json.dumps({"job_id": MAX_JOB_ID, "relative_path": "a.wav"}), True),
    ("unknown fields", '{"job_id": 1, "relative_path": "a.wav", "priority": "high", "x": [1]}', True),
    ("cues null", '{"job_id": 1, "relative_path": "a.wav", "cue_tracks": null}', True),
    ("no cues", '{"job_id": 1, "relative_path": "a.wav", "cue_tracks": []}', True),
    (
        "int and float cues",
        json.dumps({"job_id": 1, "relative_path": "a", "cue_tracks": [CUE, {**CUE, "start_time_sec": 2.5}]}),
        True,
    ),
    (
        "as many cues as allowed",
        json.dumps({"job_id": 1, "relative_path": "a", "cue_tracks": [CUE] * SCHEMA_MAX_CUES}),
        True,
    ),
    (
        "emoji (a surrogate pair)",
        '{"job_id": 1, "relative_path": "\\ud83d\\ude00.wav", '
        '"cue_tracks": [{"title": "\\ud83d\\ude00", "start_time_sec": 1}]}',
        True,
    ),
    ("newline in path", '{"job_id": 1, "relative_path": "a\\nb.wav"}', True),
    (
        "negative cue",
        json.dumps({"job_id": 1, "relative_path": "a", "cue_tracks": [{**CUE, "start_time_sec": -1}]}),
        False,
    ),
    (
        "negative float cue",
        json.dumps({"job_id": 1, "relative_path": "a", "cue_tracks": [{**CUE, "start_time_sec": -0.5}]}),
        False,
    ),
    ("both paths", '{"job_id": 1, "relative_path": "a.wav", "file_path": "/shared/a.wav"}', False),
    ("neither path", '{"job_id": 1}', False),
    ("both paths null", '{"job_id": 1, "relative_path": null, "file_path": null}', False),
    ("job id 7.0", '{"job_id": 7.0, "relative_path": "a.wav"}', False),
    ("job id 1e3", '{"job_id": 1e3, "relative_path": "a.wav"}', False),
    ("job id string", '{"job_id": "7", "relative_path": "a.wav"}', False),
    ("job id true", '{"job_id": true, "relative_path": "a.wav"}', False),
    ("job id negative", '{"job_id": -1, "relative_path": "a.wav"}', False),
    ("job id too large", json.dumps({"job_id": MAX_JOB_ID + 1, "relative_path": "a.wav"}), False),
    ("job id missing", '{"relative_path": "a.wav"}', False),
    ("path a number", '{"job_id": 1, "relative_path": 5}', False),
    ("legacy path a list", '{"job_id": 1, "file_path": ["/a"]}', False),
    ("path with a lone surrogate", '{"job_id": 1, "relative_path": "a\\ud800.wav"}', False),
    ("cues an object", '{"job_id": 1, "relative_path": "a", "cue_tracks": {"title": "A"}}', False),
    ("cue a number", '{"job_id": 1, "relative_path": "a", "cue_tracks": [7]}', False),
    ("cue without title", '{"job_id": 1, "relative_path": "a", "cue_tracks": [{"start_time_sec": 1}]}', False),
    ("cue without time", '{"job_id": 1, "relative_path": "a", "cue_tracks": [{"title": "A"}]}', False),
    (
        "cue title null",
        '{"job_id": 1, "relative_path": "a", "cue_tracks": [{"title": null, "start_time_sec": 1}]}',
        False,
    ),
    (
        "cue time a string",
        '{"job_id": 1, "relative_path": "a", "cue_tracks": [{"title": "A", "start_time_sec": "1"}]}',
        False,
    ),
    (
        "cue time true",
        '{"job_id": 1, "relative_path": "a", "cue_tracks": [{"title": "A", "start_time_sec": true}]}',
        False,
    ),
    (
        "cue title with a lone surrogate",
        '{"job_id": 1, "relative_path": "a", "cue_tracks": [{"title": "\\udc00", "start_time_sec": 1}]}',
        False,
    ),
    (
        "too many cues",
        json.dumps({"job_id": 1, "relative_path": "a", "cue_tracks": [CUE] * (SCHEMA_MAX_CUES + 1)}),
        False,
    ),
    ("cue sheet", json.dumps({"job_id": 1, "relative_path": "a", "cue_sheet": SHEET}), True),
    (
        "cue sheet, cues null",
        json.dumps({"job_id": 1, "relative_path": "a", "cue_sheet": SHEET, "cue_tracks": None}),
        True,
    ),
    (
        "cues, cue sheet null",
        json.dumps({"job_id": 1, "relative_path": "a", "cue_tracks": [CUE], "cue_sheet": None}),
        True,
    ),
    (
        "cues and a cue sheet",
        json.dumps({"job_id": 1, "relative_path": "a", "cue_tracks": [CUE], "cue_sheet": SHEET}),
        False,
    ),
    (
        "no cues and a cue sheet",
        json.dumps({"job_id": 1, "relative_path": "a", "cue_tracks": [], "cue_sheet": SHEET}),
        False,
    ),
    ("cue sheet a list", json.dumps({"job_id": 1, "relative_path": "a", "cue_sheet": [SHEET]}), False),
    (
        "cue sheet with a lone surrogate",
        json.dumps({"job_id": 1, "relative_path": "a", "cue_sheet": SHEET}).replace('\\"A\\"', '\\"\\ud800\\"'),
        False,
    ),
    ("a list", "[1, 2]", False),
    ("a string", '"job"', False),
    ("null", "null", False),
]


@pytest.fixture(scope="module")
def printed_job_schema() -> Any:
    """A validator of the job schema as `offbeat schema` prints it (OFFBEAT_MAX_CUES=SCHEMA_MAX_CUES), in the
    dialect the schema names: what a producer validating its messages would use."""
    import jsonschema

    env = {**os.environ, "OFFBEAT_MAX_CUES": str(SCHEMA_MAX_CUES)}
    shown = subprocess.run([OFFBEAT, "schema"], capture_output=True, text=True, env=env, timeout=300)
    assert shown.returncode == 0, shown.stderr
    schema = json.loads(shown.stdout)["job"]
    validator = jsonschema.validators.validator_for(schema)
    validator.check_schema(schema)
    return validator(schema)


@pytest.mark.parametrize(
    ("message", "accepted"), [case[1:] for case in AGREEMENT_CASES], ids=[c[0] for c in AGREEMENT_CASES]
)
def test_the_printed_job_schema_refuses_what_the_engine_refuses(
    printed_job_schema: Any, message: str, accepted: bool
) -> None:
    """A producer that validates its jobs against `offbeat schema` is told the truth: the schema and the engine's
    own parsing (`parse_job`, as the worker calls it) accept and refuse the same messages."""
    try:
        parse_job(message, max_cues=SCHEMA_MAX_CUES)
        engine = True
    except AnalysisError as exc:
        assert exc.code in (ErrorCode.INVALID_JOB, ErrorCode.INVALID_PATH), exc
        engine = False
    problems = [error.message for error in printed_job_schema.iter_errors(json.loads(message))]
    assert engine is accepted, message
    assert (not problems) is accepted, (message, problems)
