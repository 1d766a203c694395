"""The stage graph declared once: the Prefect tasks, keys, refresh and cache listings all follow the registry."""

from __future__ import annotations

import ast
import inspect
import textwrap
import typing
from dataclasses import replace
from pathlib import Path

import pytest

from offbeat.pipeline import code, context, registry
from offbeat.pipeline.runner import current_keys, stage_key
from offbeat.pipeline.stage import Stage
from offbeat.settings import Settings


def _names_read(function: typing.Callable[..., object]) -> set[str]:
    """Every name the function's body loads (nested functions and lambdas included)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    body = tree.body[0]
    assert isinstance(body, ast.FunctionDef)
    return {node.id for stmt in body.body for node in ast.walk(stmt) if isinstance(node, ast.Name)}


def test_prefect_tasks_are_the_registry() -> None:
    from flows.tasks import TASKS

    assert list(TASKS) == [step.name for step in registry.GRAPH]
    assert [task.name for task in TASKS.values()] == [step.name for step in registry.GRAPH]
    per_track = [name for name, step in registry.STAGES.items() if step.per_track]
    assert per_track == ["track_features"]
    assert TASKS["track_features"].task_run_name == "track-{index}"


@pytest.mark.parametrize("name", list(registry.STAGES))
def test_declared_inputs_are_exactly_what_compute_reads(name: str) -> None:
    stage = registry.STAGES[name]
    arguments = set(stage.arguments)
    read = _names_read(stage.compute)
    # Every argument is used: no input is declared (and keyed) without being read ...
    assert arguments <= read, f"{name} declares but never reads {arguments - read}"
    # ... and the inputs are the arguments named after stages, nothing else reaches the store or the settings.
    assert set(stage.inputs) == arguments - set(context.names())
    assert set(stage.inputs) <= set(registry.STAGES)
    module = inspect.getmodule(stage.compute)
    assert module is not None
    side_doors = {"get_settings", "open_store", "ArtifactStore", "registry"}
    assert not side_doors & set(vars(module)), f"{name}'s module can reach entries or settings around its inputs"


def test_graph_edges_are_what_each_stage_reads() -> None:
    """Each stage's edges are the stage names its compute function reads (derived, not listed here), every edge
    points backwards, and the README's stage table lists each stage and what it reads."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    order = [step.name for step in registry.GRAPH]
    for name, stage in registry.STAGES.items():
        assert set(stage.inputs) == (_names_read(stage.compute) & set(registry.STAGES)) - {name}, name
        assert all(order.index(i) < order.index(name) for i in (*stage.inputs, *stage.after)), name
        assert f"| `{name}` |" in readme, f"README's stage table lacks {name}"
    for sink in registry.SINKS.values():
        assert set(sink.inputs) <= set(registry.STAGES)
        assert f"| `{sink.name}` |" in readme
    for stage in registry.STAGES.values():
        if stage.per_track:
            assert stage.mapped_over in stage.inputs
            assert registry.STAGES[stage.mapped_over or ""].items is not None


def test_refresh_reaches_every_dependent() -> None:
    """`dependents` is the transitive closure of the edges, computed here from the reads alone."""

    def closure(names: set[str]) -> set[str]:
        found = set(names)
        while True:
            more = {n for n, stage in registry.STAGES.items() if found & set(stage.inputs)} - found
            if not more:
                return found
            found |= more

    for name in registry.STAGES:
        assert registry.dependents({name}) == closure({name}), name
    # The tracker's output is not what the envelopes are made of: a change to it leaves the whole-mix STFT alone.
    assert "envelopes" not in registry.dependents({"beats"})
    # The boundary finder's tuning recomputes the partition and what follows it, never the description.
    assert "description" not in registry.dependents({"partition"})
    assert {"segment", "track_features", "identify"} <= registry.dependents({"partition"})
    assert registry.dependents({"decode"}) == set(registry.STAGES)
    assert registry.dependents(set()) == set()


def test_stage_names_literal_is_the_registry() -> None:
    assert typing.get_args(registry.StageName) == tuple(registry.STAGES)


def test_a_graph_reading_a_later_or_unknown_stage_is_refused() -> None:
    def reads_beats(out: object, beats: object) -> None:
        del out, beats

    def takes_settings(out: object, settings: object) -> None:
        del out, settings

    early = Stage("early", 1, reads_beats)
    with pytest.raises(ValueError, match="reads 'beats'"):
        registry.check_graph((early, *registry.GRAPH))
    with pytest.raises(ValueError, match="reads 'settings'"):
        registry.check_graph((*registry.GRAPH, Stage("sneaky", 1, takes_settings)))
    with pytest.raises(ValueError, match="declared twice"):
        registry.check_graph((*registry.GRAPH, registry.STAGES["trim"]))


def test_a_stage_mapped_over_what_lists_no_items_is_refused() -> None:
    def per_beat(out: object, beats: object, track: int) -> None:
        del out, beats, track

    def per_track_without_index(out: object, segment: object) -> None:
        del out, segment

    with pytest.raises(ValueError, match="mapped over 'beats'"):
        registry.check_graph((*registry.GRAPH, Stage("per_beat", 1, per_beat, mapped_over="beats")))
    with pytest.raises(ValueError, match="must take `track`"):
        registry.check_graph((*registry.GRAPH, Stage("odd", 1, per_track_without_index, mapped_over="segment")))


def test_keys_follow_params_constants_versions_and_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    upstream = {"decode": "d" * 32, "trim": "t" * 32, "activations": "a" * 32, "envelopes": "e" * 32}
    beats = registry.STAGES["beats"]
    key = stage_key(beats, "src", settings, upstream)
    assert stage_key(beats, "src", settings, upstream) == key
    assert stage_key(beats, "src", settings.model_copy(update={"silence_threshold_db": -50.0}), upstream) != key
    assert stage_key(replace(beats, version=99), "src", settings, upstream) != key
    assert stage_key(beats, "src", settings, {**upstream, "trim": "x" * 32}) != key
    # A tuned constant of the signal code recomputes the stages that use it, without being listed anywhere.
    from offbeat.dsp import rhythm

    monkeypatch.setattr(rhythm, "DB_FLOOR", rhythm.DB_FLOOR * 2)
    assert stage_key(beats, "src", settings, upstream) != key
    segment = registry.STAGES["segment"]
    keys = {"beats": "b" * 32, "partition": "p" * 32, **upstream}
    assert stage_key(segment, "src", settings, keys, cues=[("A", 0.0)]) != stage_key(segment, "src", settings, keys)


def test_memory_settings_stay_out_of_keys_and_tunables_are_in_them() -> None:
    """Constants a module lists as NOT_TUNING (block sizes) are in no key; the tunables, tables of weights and
    records of constants included, are in the key of every stage whose signal code uses them."""
    from offbeat.dsp import beat_activation, stft, track_boundaries

    keyed = {name: code.constants(stage.compute.__module__) for name, stage in registry.STAGES.items()}
    for constants in keyed.values():
        assert "BLOCK_FRAMES" not in constants.get("dsp.stft", {})
        assert not set(beat_activation.NOT_TUNING) & set(constants.get("dsp.beat_activation", {}))
        assert not any("NOT_TUNING" in values for values in constants.values())
    assert stft.NOT_TUNING == ("BLOCK_FRAMES",)
    config = keyed["partition"]["dsp.track_boundaries"]["CONFIG"]
    assert config["mixed_share"] == track_boundaries.CONFIG.mixed_share
    assert [cue["weight"] for cue in config["cues"]] == [cue.weight for cue in track_boundaries.CONFIG.cues]
    assert "dsp.track_boundaries" not in keyed["segment"] and "dsp.beat_grid" not in keyed["partition"]
    assert keyed["track_features"]["dsp.features"]["STEADY_PART_MIN_SEC"] > 0
    # Constants outside the signal code shape outputs too: a stage module's own, and those of the views.
    assert keyed["identify"]["pipeline.stages.identify"]["SAME_TIMELINE_SEC"] > 0
    assert "dsp.features" in keyed["identify"]  # STEADY_PART_MIN_SEC, read through pipeline/views.py
    # A frozen record of constants (the fingerprint's query shape) is keyed field by field.
    from offbeat.dsp import fingerprint

    assert keyed["library_plays"]["dsp.fingerprint"]["QUERY"]["boxes_per_root"] == fingerprint.QUERY.boxes_per_root


def test_code_identity_ignores_docstrings_comments_and_memory_settings() -> None:
    """The normalized source leaves out what does not run (docstrings, comments, layout) and the NOT_TUNING
    constants, and keeps everything else; plumbing (store, settings) is in no stage's code."""
    from offbeat.dsp import stft

    text = code.normalized("offbeat.dsp.stft")
    assert "BLOCK_FRAMES =" not in text and "NOT_TUNING" not in text  # its value; its uses stay
    assert '"""' not in text and "#" not in text.replace("'#'", "")
    assert "def " in text
    for stage in registry.STAGES.values():
        modules = code.reached(stage.compute.__module__)
        assert stage.compute.__module__ in modules
        assert not any(m.startswith(("offbeat.storage", "offbeat.settings")) for m in modules)
    assert stft.NOT_TUNING == ("BLOCK_FRAMES",)


def test_decode_and_separate_keys_follow_their_own_code_only() -> None:
    """The two costly stages are keyed on their own code and settings: tuning the boundary finder, the beat
    tracker or the key network leaves decoded audio and stems where they are."""
    s = Settings()
    decode, separate = registry.STAGES["decode"], registry.STAGES["separate"]
    modules = set(code.reached(decode.compute.__module__)) | set(code.reached(separate.compute.__module__))
    for module in ("track_boundaries", "beat_grid", "key_network", "transitions", "fingerprint"):
        assert f"offbeat.dsp.{module}" not in modules
    key = stage_key(separate, "src", s, {"decode": "d" * 32})
    assert stage_key(separate, "src", s.model_copy(update={"min_track_sec": 20.0}), {"decode": "d" * 32}) == key


def test_current_keys_list_every_stage(tmp_path: typing.Any) -> None:
    from offbeat.storage import ArtifactStore

    store = ArtifactStore(tmp_path / "a", tmp_path / "index")
    keys = current_keys(store, "src", Settings())
    # Readers of a stage keyed on its entry's summary are listed once that entry exists.
    summarized = {name for name, stage in registry.STAGES.items() if stage.summary is not None}
    below = registry.dependents({n for n, stage in registry.STAGES.items() if summarized & set(stage.inputs)})
    assert summarized
    assert list(keys) == [name for name in registry.STAGES if name not in below]


def test_what_a_stage_needs_is_closed_under_its_inputs_and_in_graph_order() -> None:
    needed = registry.needed_by("segment")
    assert needed[-1] == "segment" and "separate" not in needed and "track_features" not in needed
    for name in needed:
        assert set(registry.STAGES[name].inputs) <= set(needed)
    order = [step.name for step in registry.GRAPH]
    assert list(needed) == sorted(needed, key=order.index)
