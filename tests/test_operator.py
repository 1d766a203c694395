"""What an operator meets (issue 14, cases 9-12): settings that do not depend on the working directory, a
missing model refused at start-up, a failed document whatever fails before the flow, no temporary Prefect
server outliving a command ended by SIGTERM, a quiet TensorFlow start-up and progress bars on a terminal.

Real `offbeat` processes; processes are found through a private PREFECT_HOME in their environment."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from offbeat.console import ProgressBoard
from offbeat.settings import Settings

from .audio_files import write_wav
from .conftest import REPO
from .processes import stop
from .test_listener import wait_until

OFFBEAT = str(Path(sys.executable).with_name("offbeat"))


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without this session's OFFBEAT_/PREFECT_API settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFBEAT_") and k != "PREFECT_API_URL"}
    return {**env, **extra}


def with_env(marker: str) -> list[int]:
    """Pids of live processes whose environment holds `marker` (a private PREFECT_HOME)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.slow  # `offbeat` in a process of its own
def test_path_settings_do_not_depend_on_the_working_directory(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shown = subprocess.run(
        [OFFBEAT, "config"], cwd=elsewhere, env=clean_env(), capture_output=True, text=True, timeout=600
    )
    config = json.loads(shown.stdout)
    assert config["model_dir"] == str(REPO / "models") and config["artifact_store"] == str(REPO / "artifacts")
    assert config["shared_mount_path"] == str(REPO / "shared")
    homed = Settings(home=tmp_path, artifact_store="store", model_dir=Path("weights"))
    assert homed.artifact_store == str(tmp_path / "store") and homed.model_dir == tmp_path / "weights"
    assert Settings(artifact_store="s3://bucket/x").artifact_store == "s3://bucket/x"


@pytest.mark.slow  # `offbeat` in a process of its own
def test_a_missing_model_is_a_configuration_error_at_start_up(tmp_path: Path) -> None:
    mix = write_wav(tmp_path / "mix.wav", seconds=2.0)
    env = clean_env(OFFBEAT_MODEL_DIR=str(tmp_path / "no-models"), OFFBEAT_ARTIFACT_STORE=str(tmp_path / "a"))
    done = subprocess.run(
        [OFFBEAT, "analyze", str(mix)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 1
    document = json.loads(done.stdout)
    assert document["status"] == "failed" and document["error_code"] == "configuration"
    assert document["retryable"] is False and "offbeat models pull 2stems" in document["error"]
    assert "Traceback" not in done.stderr


def test_progress_bars_on_a_terminal_and_nothing_otherwise(tmp_path: Path) -> None:
    leader, follower = pty.openpty()
    with os.fdopen(follower, "w") as terminal:
        board = ProgressBoard(terminal)
        for fraction in (0.0, 0.5, 1.0):
            board.update("separate", fraction)
    raw = b""
    while True:  # everything written, however the kernel hands it over (one read may return only the first draw)
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the terminal's other end is closed and drained
            break
        if not chunk:
            break
        raw += chunk
    os.close(leader)
    drawn = raw.decode()
    assert "separate [##########..........]  50%" in drawn and "100%" in drawn
    with (tmp_path / "log.txt").open("w") as plain:
        ProgressBoard(plain).update("separate", 0.5)
    assert (tmp_path / "log.txt").read_text() == ""


@pytest.mark.slow
def test_tensorflow_starts_quietly() -> None:
    code = "import offbeat, tensorflow as tf; print(float(tf.reduce_sum(tf.ones((2, 2)))))"
    done = subprocess.run([sys.executable, "-c", code], env=clean_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "4.0"
    for noise in ("cuda drivers", "oneDNN", "absl::InitializeLog", "cuInit", "cpu_feature_guard"):
        assert noise not in done.stderr, done.stderr


@pytest.mark.slow
def test_a_prefect_start_up_failure_still_prints_a_failed_document(tmp_path: Path) -> None:
    mix = write_wav(tmp_path / "mix.wav", seconds=2.0)
    home = str(tmp_path / "prefect-home")
    env = clean_env(
        PREFECT_HOME=home,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="0",
        OFFBEAT_ARTIFACT_STORE=str(tmp_path / "a"),
    )
    done = subprocess.run(
        [OFFBEAT, "analyze", str(mix)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 1, done.stderr
    document = json.loads(done.stdout)
    assert document["status"] == "failed" and document["error_code"] == "internal" and document["retryable"]
    assert document["stage"] == "startup" and "Prefect" in document["error"]
    wait_until(lambda: not with_env(home), 120, "the temporary Prefect server to stop")


SAFETY_NET_CHECK = """
import importlib, json, os, signal, subprocess, sys
cli_app = importlib.import_module("offbeat.cli.app")  # the module: the package exports the Typer app by that name
marker = cli_app.PREFECT_SERVER_APP.decode()
waits = "import signal, time\\n{}print('ready', flush=True)\\ntime.sleep(600)\\n"
def child(code, *args):
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc
polite = child(waits.format(""), marker)
stubborn = child(waits.format("signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n"), marker)
bystander = child(waits.format(""))
cli_app.stop_temporary_servers()
def reaped(proc):
    try:
        os.waitpid(proc.pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False
print(json.dumps({"polite": reaped(polite), "stubborn": reaped(stubborn), "bystander": bystander.poll() is None}))
bystander.kill()
"""


@pytest.mark.slow  # Python processes of their own
def test_temporary_servers_left_as_children_are_stopped_at_exit() -> None:
    """The safety net for a SIGTERM between Prefect starting its server and registering its stop: children that
    run the server's app are stopped, by SIGKILL when they ignore SIGTERM; other children are left. Checked in a
    process of its own: this one's children include the suite's own Prefect server. Its session is killed at the
    end, stand-ins included, also when the check fails."""
    check = subprocess.Popen(
        [sys.executable, "-c", SAFETY_NET_CHECK],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = check.communicate(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(check.pid, signal.SIGKILL)
        check.wait()
    assert check.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == {"polite": True, "stubborn": True, "bystander": True}


@pytest.mark.slow
def test_sigterm_leaves_no_temporary_prefect_server(tmp_path: Path) -> None:
    mix = write_wav(tmp_path / "mix.wav", seconds=30.0)
    home = str(tmp_path / "prefect-home")
    env = clean_env(PREFECT_HOME=home, OFFBEAT_ARTIFACT_STORE=str(tmp_path / "a"))
    cli = subprocess.Popen(
        [OFFBEAT, "analyze", str(mix)], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:

        def server_started() -> bool:
            return any(
                b"uvicorn" in Path(f"/proc/{pid}/cmdline").read_bytes()
                for pid in with_env(home)
                if Path(f"/proc/{pid}/cmdline").exists()
            )

        wait_until(server_started, 600, "the temporary Prefect server to start")
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(timeout=300) != 0
        wait_until(lambda: not with_env(home), 120, "the temporary Prefect server to stop")
    finally:
        stop(cli)
        for pid in with_env(home):  # never leave one behind, even when the test failed
            os.kill(pid, signal.SIGKILL)
