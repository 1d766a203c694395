"""The store heals (issue 14, case 6): damaged data is forgotten and recomputed instead of failing every run.

Real stores on disk, damaged the way disks and people damage them: a flipped byte in a chunk, a truncated
index record (written straight into the index's SQLite file), the whole store folder deleted under a
long-lived process."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from offbeat import synth
from offbeat.pipeline.runner import Run, StageRef, StoreDamaged
from offbeat.settings import Settings
from offbeat.storage import ArtifactStore, JobLedger

MIX = synth.MixSpec((synth.Section(12, 124.0, 110.0, True),), lead_silence_sec=1.0, tail_silence_sec=0.5)
STAGES = ("decode", "trim", "activations", "envelopes", "beats")


def run_stages(run: Run) -> dict[str, StageRef]:
    refs: dict[str, StageRef] = {}
    for name in STAGES:
        refs[name] = run.stage(name, refs)
    return refs


def flip_a_byte(store: ArtifactStore, key: str, array: str) -> None:
    record = store.index.get(f"entry:{key}")
    chunk = sorted((Path(store.root) / record["data"] / array / "c").rglob("*"))[-1]
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    chunk.write_bytes(bytes(raw))


def test_a_chunk_failing_its_checksum_is_forgotten_and_recomputed(tmp_path: Path) -> None:
    path = synth.write_mix(MIX, tmp_path / "mix.wav")
    store = ArtifactStore(tmp_path / "artifacts", tmp_path / "index")
    first = run_stages(Run(store, Settings(), path))
    flip_a_byte(store, first["decode"].key, "mono")
    again = Run(store, Settings(), path, refresh=frozenset({"trim"}))  # trim reads the damaged mono copy
    with pytest.raises(StoreDamaged) as caught:
        run_stages(again)
    assert caught.value.stages == ["decode"] and caught.value.retryable
    assert store.index.get(f"entry:{first['decode'].key}") is None  # forgotten ...
    healed = run_stages(Run(store, Settings(), path))  # ... so the next pass recomputes it, same key
    assert not healed["decode"].cached and healed["decode"].key == first["decode"].key
    assert {n: r.key for n, r in healed.items()} == {n: r.key for n, r in first.items()}


def test_an_unreadable_index_record_is_dropped_not_fatal(tmp_path: Path) -> None:
    path = synth.write_mix(MIX, tmp_path / "mix.wav")
    store = ArtifactStore(tmp_path / "artifacts", tmp_path / "index")
    first = run_stages(Run(store, Settings(), path))
    JobLedger(store).record(5, "{}", {"status": "completed"})
    store.close()
    with sqlite3.connect(tmp_path / "index" / "cache.db") as db:  # "pickle data was truncated"
        db.execute("UPDATE Cache SET value = substr(value, 1, 12) WHERE key LIKE 'entry:%' OR key = 'job:5'")
    reopened = ArtifactStore(tmp_path / "artifacts", tmp_path / "index")
    with pytest.raises(Exception, match="pickle"):
        reopened.index.get(f"entry:{first['decode'].key}")  # the record really is damaged
    healed = run_stages(Run(reopened, Settings(), path))
    assert not any(r.cached for r in healed.values())
    assert {n: r.key for n, r in healed.items()} == {n: r.key for n, r in first.items()}
    assert JobLedger(reopened).answered(5) is None


def test_a_store_folder_deleted_under_a_long_lived_process_works_again(settings: Settings, tmp_path: Path) -> None:
    from flows.tasks import store

    path = synth.write_mix(MIX, tmp_path / "mix.wav")
    handle = store()
    first = run_stages(Run(handle, settings, path))
    curve = np.asarray(handle.get(first["beats"].key)["bpm_curve"][...])
    shutil.rmtree(settings.artifact_store)  # the operator wipes the store while the worker idles
    fresh = store()
    assert fresh is not handle and fresh.alive()
    again = run_stages(Run(fresh, settings, path))
    assert not any(r.cached for r in again.values())  # nothing read from the dead handle's ghost index
    assert np.array_equal(np.asarray(fresh.get(again["beats"].key)["bpm_curve"][...]), curve, equal_nan=True)
    assert (Path(settings.artifact_store) / "index" / "cache.db").is_file()


@pytest.mark.slow
def test_a_damaged_entry_heals_within_one_cli_run(settings: Settings, prefect_api: str, tmp_path: Path) -> None:
    """Through `offbeat analyze` (the flow, Prefect, TensorFlow): a chunk of the beats entry damaged after a run
    fails `assemble`'s read; the same run forgets it, recomputes it and completes."""
    import json
    import os
    import subprocess
    import sys

    from offbeat.storage import open_store

    path = synth.write_mix(MIX, settings.shared_mount_path / "mix.wav")
    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    command = [str(Path(sys.executable).with_name("offbeat")), "analyze", str(path)]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    store = open_store(settings)
    beats = next(r for r in store.entries() if r["stage"] == "beats")
    flip_a_byte(store, beats["key"], "bpm_curve")
    store.close()
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "running the stages again" in again.stderr
    document = json.loads(again.stdout)
    assert "beats" not in document["engine"]["cached_stages"] and "decode" in document["engine"]["cached_stages"]
    assert document["results"]["global"]["bpm_curve"] == json.loads(first.stdout)["results"]["global"]["bpm_curve"]


def damage_every_entry(store: ArtifactStore) -> list[str]:
    """One chunk damaged in every stored entry that has chunks; returns their stages."""
    damaged = []
    for record in store.entries():
        if not record.get("data"):
            continue  # an entry of attributes only: nothing to damage
        chunks = sorted(p for p in (Path(store.root) / record["data"]).rglob("*") if p.is_file() and "c" in p.parts)
        if chunks:
            raw = bytearray(chunks[-1].read_bytes())
            raw[len(raw) // 2] ^= 0xFF
            chunks[-1].write_bytes(bytes(raw))
            damaged.append(record["stage"])
    return damaged


@pytest.mark.slow
def test_damage_in_every_entry_at_once_heals_within_one_cli_run(
    settings: Settings, prefect_api: str, tmp_path: Path
) -> None:
    """Every entry of an analysis with a library damaged at once, the library's fingerprints and search index
    included: a pass that recomputes an entry reads (and finds) damage in its inputs, which nothing had read before;
    the run goes on until the whole graph is healed, and completes. The library's entries heal where they are read
    (`Library.search_index`): forgotten, made again from the reference's file, read again."""
    import json
    import os
    import shutil
    import subprocess
    import sys

    from offbeat.storage import open_store

    path = synth.write_mix(MIX, settings.shared_mount_path / "every.wav")
    reference = shutil.copy(path, tmp_path / "reference.wav")
    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    offbeat = str(Path(sys.executable).with_name("offbeat"))
    added = subprocess.run([offbeat, "library", "add", str(reference)], env=env, capture_output=True, text=True)
    assert added.returncode == 0, added.stderr
    command = [offbeat, "analyze", str(path)]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    store = open_store(settings)
    damaged = damage_every_entry(store)
    # library_plays' entry holds attributes only (nothing to damage): its record lost, the run searches the mix
    # again, and so reads the damaged search index (and, to make that again, the damaged fingerprint)
    store.invalidate(next(r["key"] for r in store.entries() if r["stage"] == "library_plays"))
    store.close()
    stored = {"decode", "activations", "envelopes", "beats", "separate", "drum_beats", "description", "partition"}
    assert stored <= set(damaged)  # the track list (segment) is attributes only: nothing to damage
    assert {"fingerprint", "search_index"} <= set(damaged)
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("running the stages again") >= 2  # damage found further up on a later pass
    assert "the stored search index was damaged" in again.stderr and "fingerprint of 'reference'" in again.stderr
    before, after = json.loads(first.stdout), json.loads(again.stdout)
    assert after["status"] == "completed" and after["results"] == before["results"]
    assert any(t["identified"] for t in after["results"]["tracks"])  # the library was searched, and answered
    # Every damaged entry the run read was recomputed, not reported as read from the store. The stems entry may be
    # damaged in an array nothing of this run reads (its analysis copies are read by track_features, whose entries
    # are intact here): that damage is found, and healed, by the first stage that reads it.
    read_by_the_run = set(damaged) - {"separate", "fingerprint", "search_index"}
    assert not read_by_the_run & set(after["engine"]["cached_stages"]), after["engine"]["cached_stages"]
