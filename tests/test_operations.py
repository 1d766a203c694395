"""Operating the engine through Prefect as the README's operator guide says: a real `prefect server`, the
work pool, `prefect deploy --all` from prefect.yaml, a process worker, `prefect deployment run`; and the
`rerun` and `cache` commands.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from offbeat import synth
from offbeat.settings import Settings

from .conftest import REPO
from .prefect_server import postgres
from .prefect_server import prefect_server as start_prefect_server
from .processes import stop_worker, wait_until

pytestmark = pytest.mark.slow  # runs flows or loads TensorFlow/Spleeter

BIN = Path(sys.executable).parent
OFFBEAT, PREFECT = str(BIN / "offbeat"), str(BIN / "prefect")


def two_track_mix(path: Path) -> Path:
    sections = (synth.Section(12.0, 124.0, vocals=True), synth.Section(12.0, 100.0, root_hz=98.0))
    return synth.write_mix(synth.MixSpec(sections, crossfades=(2.0,), lead_silence_sec=0.5), path)


CUES = [{"title": "First", "start_time_sec": 0.0}, {"title": "Second", "start_time_sec": 11.5}]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def prefect_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str]]]:
    """A server of the module's own on each database: SQLite in its home, or PostgreSQL."""
    with start_prefect_server(tmp_path_factory.mktemp("prefect-home"), request.param) as server:
        yield server


def prefect(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([PREFECT, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def api(url: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    response = httpx.request(method, f"{url}{path}", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def test_deploy_run_and_read_it_back_through_the_api(
    prefect_server: tuple[str, dict[str, str]], settings: Settings
) -> None:
    url, server_env = prefect_server
    env = {**os.environ, **server_env, "OFFBEAT_PROJECT_DIR": str(REPO), "PREFECT_WORKER_QUERY_SECONDS": "1"}
    mix = two_track_mix(settings.shared_mount_path / "set.wav")

    prefect(env, "work-pool", "create", "offbeat", "--type", "process")
    deployed = prefect(env, "--no-prompt", "deploy", "--all")
    assert "analyze-mix/analysis" in deployed and "redis-listener/listener" in deployed
    deployments = {d["name"] for d in api(url, "POST", "/deployments/filter", {})}
    assert deployments == {"analysis", "listener"}  # told apart in the UI, not two "default"s

    log = (settings.shared_mount_path.parent / "worker.log").open("wb")
    worker = subprocess.Popen(
        [PREFECT, "worker", "start", "--pool", "offbeat"],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=log,
        start_new_session=True,  # stopped with the flow-run processes it starts
    )
    try:
        out = prefect(
            env,
            "deployment",
            "run",
            "analyze-mix/analysis",
            "--param",
            f"source={mix}",
            "--param",
            f"cues={json.dumps(CUES)}",
        )
        run_id = re.search(r"UUID: ([0-9a-f-]{36})", out).group(1)  # type: ignore[union-attr]

        def finished() -> bool:
            return api(url, "GET", f"/flow_runs/{run_id}")["state_type"] in {"COMPLETED", "FAILED", "CRASHED"}

        wait_until(finished, 300, "the deployment run to finish")
    finally:
        stop_worker(worker)  # SIGTERM, then SIGKILL to the group: never left running
    run = api(url, "GET", f"/flow_runs/{run_id}")
    assert run["state_type"] == "COMPLETED", run["state"]
    if "PREFECT_API_DATABASE_CONNECTION_URL" in server_env:  # the run is in PostgreSQL, not in a SQLite file
        database = server_env["PREFECT_API_DATABASE_CONNECTION_URL"].rsplit("/", 1)[1]
        state = postgres("SELECT state_type FROM flow_run WHERE id = $1", uuid.UUID(run_id), database=database)
        assert state == "COMPLETED" and not list(Path(server_env["PREFECT_HOME"]).glob("*.db"))
    assert run["name"] == "set.wav" and {"offbeat", "analysis"} <= set(run["tags"])

    tasks = api(url, "POST", "/task_runs/filter", {"flow_runs": {"id": {"any_": [run_id]}}})
    names = sorted(re.sub(r"-[0-9a-f]{3}$", "", t["name"]) for t in tasks)
    stages = [
        "activations",
        "assemble",
        "beats",
        "decode",
        "description",
        "drum_beats",
        "envelopes",
        "export_stems",
        "identify",
        "library_plays",
        "partition",
        "segment",
        "separate",
        "trim",
    ]
    assert names == sorted([*stages, "track-0", "track-1"])  # one task run per stage and one per track
    assert all(t["state_type"] == "COMPLETED" for t in tasks)

    artifacts = api(url, "POST", "/artifacts/filter", {"flow_runs": {"id": {"any_": [run_id]}}})
    by_type = {a["type"]: a for a in artifacts if a["type"] in {"table", "image"}}
    assert by_type["table"]["key"] == "set-wav-tracks" and by_type["image"]["key"] == "set-wav-picture"
    table = by_type["table"]["data"]
    table = json.loads(table) if isinstance(table, str) else table
    assert [row["title"] for row in table] == ["First", "Second"] and table[0]["bpm"] == pytest.approx(124, abs=2)
    assert by_type["image"]["data"].startswith("data:image/png;base64,")
    assert any(a["type"] == "progress" for a in artifacts)  # long stages report progress
    (link,) = [a for a in artifacts if a["key"] == "set-wav-report"]  # the report page, written beside the mix
    assert link["data"].endswith(f"({(mix.parent / 'set.report.html').as_uri()})")
    assert (mix.parent / "set.report.html").read_text().count('<article class="track"') == len(table)

    # The run keeps no Prefect result; its document is in the store's job ledger, by run id.
    kept = subprocess.run([OFFBEAT, "result", run_id], env=env, capture_output=True, text=True, timeout=180)
    assert kept.returncode == 0, kept.stderr
    document = json.loads(kept.stdout)
    assert document["status"] == "completed" and [t["title"] for t in document["results"]["tracks"]] == [
        row["title"] for row in table
    ]
    unknown = subprocess.run(
        [OFFBEAT, "result", str(uuid.uuid4())], env=env, capture_output=True, text=True, timeout=180
    )
    assert unknown.returncode == 1 and "no result document" in unknown.stderr

    page = httpx.get(url.removesuffix("/api") + "/", timeout=30)
    assert page.status_code == 200 and "<html" in page.text.lower()


def test_rerun_of_one_stage_recomputes_it_alone(settings: Settings, prefect_api: str, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    mix = two_track_mix(tmp_path / f"rerun-{uuid.uuid4().hex[:8]}.wav")
    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    cue_file = tmp_path / "cues.json"
    cue_file.write_text(json.dumps(CUES))

    def offbeat(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([OFFBEAT, *args], env=env, capture_output=True, text=True, timeout=300)

    first = offbeat("analyze", str(mix), "--cue-file", str(cue_file))
    assert first.returncode == 0, first.stderr
    again = offbeat("rerun", str(mix), "--stage", "track_features", "--cue-file", str(cue_file))
    assert again.returncode == 0, again.stderr
    assert "ran: track_features, assemble;" in again.stderr

    before, after = json.loads(first.stdout), json.loads(again.stdout)
    assert set(after["engine"]["cached_stages"]) == {
        "decode",
        "trim",
        "activations",
        "envelopes",
        "beats",
        "separate",
        "drum_beats",
        "export_stems",
        "description",
        "library_plays",
        "partition",
        "segment",
        "identify",
    }
    assert after["results"] == before["results"]  # recomputed, and nothing else changed
    assert after["engine"]["analysis_id"] == before["engine"]["analysis_id"]

    with get_client(sync_client=True) as client:
        (run,) = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[mix.name])),
            sort=FlowRunSort.START_TIME_DESC,
            limit=1,
        )
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [run.id]}))
    states = {re.sub(r"-[0-9a-f]{3}$", "", t.name): t.state.name for t in tasks if t.state is not None}
    ran = {name for name, state in states.items() if state != "Cached"}
    assert ran == {"track-0", "track-1", "assemble"}, states

    unknown = offbeat("rerun", str(mix), "--stage", "nonsense")
    assert unknown.returncode == 2 and "unknown stage(s) nonsense" in unknown.stderr


def test_cache_commands(settings: Settings, prefect_api: str, tmp_path: Path) -> None:
    from flows.analyze import analyze_mix

    mix = two_track_mix(tmp_path / "cached.wav")
    assert analyze_mix(source=str(mix))["status"] == "completed"
    env = {**os.environ, "PREFECT_API_URL": prefect_api}

    def offbeat(*args: str) -> str:
        done = subprocess.run([OFFBEAT, "cache", *args], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    listing = offbeat("ls")
    assert str(mix) in listing and "separate" in listing and "entries," in listing
    shown = offbeat("show", str(mix))
    assert re.search(r"decode\s+cached", shown) and re.search(r"track_features:0\s+cached", shown)
    # Everything was used a moment ago: inside the grace period nothing goes, whatever the size asked for.
    assert offbeat("gc", "--max-size", "0").startswith("removed 0 entries")
    # A grace shorter than two use-time renewals would take entries a running analysis reads: refused.
    short = subprocess.run([OFFBEAT, "cache", "gc", "--max-size", "0", "--grace", "2s"], env=env, capture_output=True)
    assert short.returncode == 2 and b"at least 120s" in short.stderr
    from offbeat.storage import open_store

    assert open_store(settings).collect_garbage(max_bytes=0, grace_sec=0)  # as when nothing runs: everything goes
    assert re.search(r"decode\s+missing", offbeat("show", str(mix)))
    assert offbeat("ls").strip().endswith(f" entries, 0 B in {settings.artifact_store}")  # only array-less records
