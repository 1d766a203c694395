"""Keys follow the code and reach no further than the data: a constant changed in one place recomputes exactly
the stages it shapes, and a stage whose inputs kept their content (a track that did not move) is read back."""

from __future__ import annotations

from pathlib import Path

import pytest

from offbeat import synth
from offbeat.dsp import key_network, transitions
from offbeat.pipeline.runner import Run, run_all
from offbeat.pipeline.stages import identify
from offbeat.settings import Settings
from offbeat.storage import ArtifactStore

MIX = synth.MixSpec(
    (synth.Section(40, 124.0, 110.0, True), synth.Section(40, 140.0, 146.83, False)),
    lead_silence_sec=1.0,
    tail_silence_sec=0.5,
    crossfades=(6,),
)


def _computed(store: ArtifactStore, settings: Settings, path: Path) -> set[str]:
    """The stages this run computed (a stage mapped over tracks counts when any of its runs was computed)."""
    refs = run_all(Run(store, settings, path))
    return {name for name, ref in refs.items() if not ref.cached and name != "export_stems"}


@pytest.mark.slow
def test_one_constant_in_each_of_three_places_recomputes_exactly_what_it_shapes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = synth.write_mix(MIX, tmp_path / "mix.wav")
    store = ArtifactStore(tmp_path / "artifacts", tmp_path / "index")
    settings = Settings(min_track_sec=15, local_exports_path=tmp_path / "exports")
    first = _computed(store, settings, path)
    assert {"decode", "separate", "segment", "track_features", "identify"} <= first
    assert _computed(store, settings, path) == set()  # nothing changed: everything read back

    # A transition's description: `segment` describes it again; no track moved, so nothing below it recomputes.
    monkeypatch.setattr(transitions, "SWAP_DIP_DB", transitions.SWAP_DIP_DB + 1.0)
    assert _computed(store, settings, path) == {"segment"}
    # The key network's excerpt, in a module only the per-track features reach.
    monkeypatch.setattr(key_network, "EXCERPT_SEC", key_network.EXCERPT_SEC - 10.0)
    assert _computed(store, settings, path) == {"track_features"}
    # A constant of a stage's own module (outside the signal code) is in its key too.
    monkeypatch.setattr(identify, "SAME_TIMELINE_SEC", identify.SAME_TIMELINE_SEC + 1.0)
    assert _computed(store, settings, path) == {"identify"}
