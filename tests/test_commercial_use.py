"""OFFBEAT_COMMERCIAL_USE: the whole analysis without madmom's models (CC BY-NC-SA 4.0, no commercial use).

The onset activation must carry a beat tracker on its own, the setting must key the stages it changes (and leave
the default path's keys as they were), and a flow run under it must open no file of madmom's models folder.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import mir_eval
import numpy as np
import pytest

from offbeat import synth
from offbeat.dsp import beat_grid, onset_activation
from offbeat.pipeline import registry
from offbeat.pipeline.runner import stage_key
from offbeat.settings import Settings

OFFBEAT = str(Path(sys.executable).with_name("offbeat"))
FREE = Settings(commercial_use=True)


def _mix(bpm: float, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """44.1 kHz mono of one synthetic section and its known beat times."""
    spec = synth.MixSpec((synth.Section(seconds, bpm),))
    return synth.render(spec, 0.0, spec.duration_sec).mean(axis=1), np.asarray(spec.beats())


@pytest.mark.accuracy
@pytest.mark.parametrize("bpm", [122.0, 140.0, 174.0])
def test_onset_activation_carries_the_beat_tracker(bpm: float) -> None:
    mono, truth = _mix(bpm, 40.0)
    act = onset_activation.activation(onset_activation.onset_strength(mono))
    assert act.shape == (-(-len(mono) // onset_activation.HOP), 2)
    assert act[:, 0].min() >= onset_activation.FLOOR and act[:, 0].max() <= onset_activation.TOP
    assert not act[:, 1].any()  # no downbeat evidence: bars come from chord changes
    beats = beat_grid.track_beats(beat_grid.beat_strength(act))
    assert mir_eval.beat.f_measure(mir_eval.beat.trim_beats(truth), mir_eval.beat.trim_beats(beats)) > 0.9


def test_blocked_activations_equal_a_whole_pass_away_from_the_edges() -> None:
    """Spans with their context give the frames a whole-signal pass gives, so a mix's length changes nothing."""
    mono, _ = _mix(124.0, 200.0)  # longer than one span of the network's plan (180 s)

    def read(a: int, b: int) -> np.ndarray:
        out = np.zeros(b - a, np.float32)
        lo, hi = max(a, 0), min(b, len(mono))
        out[lo - a : hi - a] = mono[lo:hi]
        return out

    blocked = np.concatenate(list(onset_activation.blocked_activations(read, len(mono))))
    whole = onset_activation.activation(onset_activation.onset_strength(mono))
    assert blocked.shape == whole.shape
    inner = slice(10 * onset_activation.FPS, -10 * onset_activation.FPS)
    assert np.abs(blocked[inner] - whole[inner]).max() < 1e-3


def test_the_setting_keys_the_stages_it_changes_and_leaves_the_default_keys() -> None:
    default = Settings()
    activations, features = registry.STAGES["activations"], registry.STAGES["track_features"]
    # The default path's key holds no onset module: changing it recomputes only the other path.
    assert activations.params(default) == {"networks": default.beat_networks}
    assert "onset_activation" not in json.dumps(activations.key_params(default))
    assert "dsp.onset_activation" in activations.key_params(FREE)["onset"]["constants"]
    assert stage_key(activations, "src", FREE, {"decode": "d" * 32}) != stage_key(
        activations, "src", default, {"decode": "d" * 32}
    )
    upstream = {name: name[0] * 32 for name in features.inputs}
    assert stage_key(features, "src", FREE, upstream, track=0) != stage_key(features, "src", default, upstream, track=0)


AUDIT = textwrap.dedent(
    """
    import atexit, json, os, runpy, sys

    record, models = sys.argv[1], sys.argv[2]
    opened = []

    def hook(event, args):
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            path = os.path.realpath(os.fsdecode(args[0]))
            # The package's own Python files (its __init__, bytecode) are code, not models.
            if path.startswith(models) and not path.endswith((".py", ".pyc")):
                opened.append(path)

    atexit.register(lambda: open(record, "w").write(json.dumps(opened)))
    sys.addaudithook(hook)
    script, sys.argv = sys.argv[3], sys.argv[3:]
    runpy.run_path(script, run_name="__main__")
    """
)


def _audited(script: str, *args: str, env: dict[str, str], record: Path) -> tuple[subprocess.CompletedProcess, list]:
    """Run a Python script under an audit hook that records every file opened in madmom's models folder."""
    package = importlib.util.find_spec("madmom")  # found, not imported (madmom's import needs the engine's shim)
    assert package is not None and package.submodule_search_locations
    models = os.path.join(os.path.realpath(package.submodule_search_locations[0]), "models") + os.sep
    proc = subprocess.run(
        [sys.executable, "-c", AUDIT, str(record), models, script, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    return proc, json.loads(record.read_text()) if record.exists() else []


@pytest.mark.slow  # a Python process of its own
def test_the_audit_hook_sees_a_model_file_opened(tmp_path: Path) -> None:
    """The control: the hook records madmom's key network being loaded, so an empty record below means something."""
    script = tmp_path / "load.py"
    script.write_text("from offbeat.dsp import key_network\nkey_network._processor()\n")
    proc, opened = _audited(str(script), env=dict(os.environ), record=tmp_path / "opened.json")
    assert proc.returncode == 0, proc.stderr
    assert any("key" in Path(p).parts and p.endswith(".pkl") for p in opened), opened


@pytest.mark.slow
def test_the_whole_flow_opens_no_madmom_model(settings: Settings, tmp_path: Path, prefect_api: str) -> None:
    spec = synth.MixSpec(
        (synth.Section(60.0, 122.0, root_hz=110.0), synth.Section(60.0, 128.0, root_hz=146.83, minor=False)),
        crossfades=(8.0,),
    )
    path = synth.write_mix(spec, tmp_path / "set.wav")
    env = {**os.environ, "OFFBEAT_COMMERCIAL_USE": "true", "PREFECT_API_URL": prefect_api}
    record = tmp_path / "opened.json"
    out = tmp_path / "result.json"
    proc, opened = _audited(OFFBEAT, "analyze", str(path), "--output", str(out), env=env, record=record)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert record.exists() and opened == []
    doc = json.loads(out.read_text())
    assert doc["status"] == "completed"
    glob = doc["results"]["global"]
    truth = np.asarray(spec.beats())
    beats = np.asarray(glob["global_beat_grid_timestamps"])
    assert mir_eval.beat.f_measure(mir_eval.beat.trim_beats(truth), mir_eval.beat.trim_beats(beats)) > 0.8
    assert glob["global_downbeat_timestamps"]
    tracks = doc["results"]["tracks"]
    assert all(t["analysis"]["key"] is not None for t in tracks)
    assert any(t["analysis"]["stable_bpm"] == pytest.approx(122.0, rel=0.03) for t in tracks)
    assert np.nanmedian([v for v in glob["bpm_curve"] if v is not None]) == pytest.approx(125.0, rel=0.05)
