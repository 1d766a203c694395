"""The stage graph declared once: the Prefect tasks, keys, refresh and cache listings all follow the registry."""

from __future__ import annotations

import ast
import inspect
import textwrap
import typing
from dataclasses import replace

import pytest

from offbeat.pipeline import registry
from offbeat.pipeline.runner import current_keys, stage_key
from offbeat.pipeline.stage import CONTEXT, Stage, dsp_constants
from offbeat.settings import Settings
from offbeat.storage import entry_key


def _names_read(function: typing.Callable[..., object]) -> set[str]:
    """Every name the function's body loads (nested functions and lambdas included)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    body = tree.body[0]
    assert isinstance(body, ast.FunctionDef)
    return {node.id for stmt in body.body for node in ast.walk(stmt) if isinstance(node, ast.Name)}


def test_prefect_tasks_are_the_registry() -> None:
    from offbeat.flows.tasks import TASKS

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
    assert set(stage.inputs) == arguments - set(CONTEXT)
    assert set(stage.inputs) <= set(registry.STAGES)
    module = inspect.getmodule(stage.compute)
    assert module is not None
    side_doors = {"get_settings", "open_store", "ArtifactStore", "registry"}
    assert not side_doors & set(vars(module)), f"{name}'s module can reach entries or settings around its inputs"


def test_graph_edges() -> None:
    inputs = {name: set(stage.inputs) for name, stage in registry.STAGES.items()}
    assert inputs == {
        "decode": set(),
        "trim": {"decode"},
        "activations": {"decode"},
        "separate": {"decode"},
        "envelopes": {"decode"},
        "beats": {"decode", "trim", "activations", "envelopes"},
        "drum_beats": {"separate", "beats", "decode", "trim"},
        "description": {"envelopes", "beats"},
        "partition": {"description", "decode", "trim"},
        "segment": {"partition", "envelopes", "beats", "decode", "trim"},
        "track_features": {"segment", "envelopes", "beats", "separate", "decode"},
        "identify": {"decode", "segment"},
    }
    assert set(registry.SINKS["export_stems"].inputs) == {"separate"}
    assert [name for name, stage in registry.STAGES.items() if stage.per_track] == ["track_features"]
    assert registry.STAGES["track_features"].mapped_over == "segment"


def test_refresh_reaches_every_dependent() -> None:
    after_beats = {"drum_beats", "description", "partition", "segment", "track_features", "identify"}
    assert registry.dependents({"trim"}) == {"trim", "beats", *after_beats}
    assert registry.dependents({"separate"}) == {"separate", "drum_beats", "track_features"}
    # The tracker's output is not what the envelopes are made of: a change to it leaves the whole-mix STFT alone.
    assert registry.dependents({"beats"}) == {"beats", *after_beats}
    # The boundary finder's tuning recomputes the partition and what follows it, never the description.
    assert registry.dependents({"partition"}) == {"partition", "segment", "track_features", "identify"}
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
    dsp_constants.cache_clear()
    try:
        assert stage_key(beats, "src", settings, upstream) != key
    finally:
        dsp_constants.cache_clear()
    segment = registry.STAGES["segment"]
    keys = {"beats": "b" * 32, "partition": "p" * 32, **upstream}
    assert stage_key(segment, "src", settings, keys, cues=[("A", 0.0)]) != stage_key(segment, "src", settings, keys)


def test_memory_settings_stay_out_of_keys_and_tunables_are_in_them() -> None:
    """Constants a module lists as NOT_TUNING (block sizes) are in no key; the tunables, tables of weights and
    records of constants included, are in the key of every stage whose signal code uses them."""
    from offbeat.dsp import beat_activation, stft, track_boundaries

    keyed = {name: dsp_constants(stage.compute.__module__) for name, stage in registry.STAGES.items()}
    for constants in keyed.values():
        assert "BLOCK_FRAMES" not in constants.get("stft", {})
        assert not set(beat_activation.NOT_TUNING) & set(constants.get("beat_activation", {}))
        assert not any("NOT_TUNING" in values for values in constants.values())
    assert stft.NOT_TUNING == ("BLOCK_FRAMES",)
    config = keyed["partition"]["track_boundaries"]["CONFIG"]
    assert config["mixed_share"] == track_boundaries.CONFIG.mixed_share
    assert [cue["weight"] for cue in config["cues"]] == [cue.weight for cue in track_boundaries.CONFIG.cues]
    assert "track_boundaries" not in keyed["segment"] and "beat_grid" not in keyed["partition"]
    assert keyed["track_features"]["features"]["STEADY_PART_MIN_SEC"] > 0
    # A frozen record of constants (the fingerprint's query shape) is keyed field by field.
    from offbeat.dsp import fingerprint

    assert keyed["identify"]["fingerprint"]["QUERY"]["boxes_per_root"] == fingerprint.QUERY.boxes_per_root


def test_decode_and_separate_keys_are_those_of_stores_written_before() -> None:
    """The two costly stages keep their keys, so existing stores keep their decoded audio and stems (separate: as
    of version 3, full-band stems, issue 15)."""
    s = Settings()
    decode = entry_key("src", "decode", 2, {"sample_rate": 44100, "analysis_sample_rate": 22050, "block_sec": 10.0}, {})
    assert stage_key(registry.STAGES["decode"], "src", s, {}) == decode
    separate = registry.STAGES["separate"]
    params = {
        "model": s.spleeter_model,
        "band": "full",
        "chunk_segments": separate.params(s)["chunk_segments"],
        "crossfade": separate.params(s)["crossfade"],
    }
    assert stage_key(separate, "src", s, {"decode": decode}) == entry_key(
        "src", "separate", 3, params, {"decode": decode}
    )


def test_current_keys_list_every_stage(tmp_path: typing.Any) -> None:
    from offbeat.storage import ArtifactStore

    store = ArtifactStore(tmp_path / "a", tmp_path / "index")
    keys = current_keys(store, "src", Settings())
    assert list(keys) == [name for name, stage in registry.STAGES.items() if not stage.per_track]
