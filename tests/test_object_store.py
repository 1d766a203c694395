"""The store with its data on S3-compatible object storage: hosts that share no folder share one store.

A real S3 server (moto's standalone server, on a free loopback port for the whole session, each test with a
bucket of its own: conftest's `s3_endpoint` and `bucket`) and the machine's real Redis (conftest's key-prefix
fixture `redis_url`; skipped when Redis does not answer, failed under CI): no mocks. "Hosts" are spawned
processes with their own HOME, working directory and copy of the source file, so the only things they share are
the bucket and Redis.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import s3fs

from offbeat import synth
from offbeat.settings import Settings
from offbeat.storage import ChunkAppender, open_store
from offbeat.storage.store import StoreConfig
from tests import test_shared_store as shared

WAIT = shared.WAIT


def _objects(options: dict[str, Any], path: str) -> list[str]:
    return s3fs.S3FileSystem(**options, use_listings_cache=False).find(path)


def test_a_store_round_trip_on_object_storage(
    tmp_path: Path, bucket: tuple[str, dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    """Write, read back, verify, detect a lost chunk, sweep a dead writer's data, invalidate: all on S3."""
    name, options = bucket
    root = f"s3://{name}/store"
    settings = Settings(artifact_store=root, store_options=options, artifact_index_path=tmp_path / "index")
    with caplog.at_level(logging.WARNING, logger="offbeat.store"):
        store = open_store(settings)
    assert "for this host only" in caplog.text  # remote data, local index: said, not silently unshared
    audio = np.sin(np.arange(44100 * 3, dtype="float32") / 50.0)[:, None].repeat(2, axis=1) * 0.5

    def compute(out: Any) -> None:
        array = out.create_array("audio", shape=(0, 2), dtype="float32", chunks=(44100, 2), audio=True)
        appender = ChunkAppender(array)
        for block in np.array_split(audio, 7):
            appender.append(block)
        appender.close()
        out.put_array("grid", np.arange(10, dtype="float64"), chunk_len=4)
        out.attrs["bpm"] = 124.0

    key = "ab" + "c" * 30
    assert store.produce(key, "decode", compute) and not store.produce(key, "decode", compute)
    record = store.record(f"entry:{key}")
    data = f"{name}/store/{record['data']}"
    assert record["nbytes"] == sum(s3fs.S3FileSystem(**options).du(data, total=False).values()) > 0
    reader = open_store(settings)  # a fresh handle: nothing validated yet
    entry = reader.get(key)
    assert entry is not None and entry.attrs == {"bpm": 124.0} and reader.verify(key)
    assert np.abs(entry["audio"][:] - audio).max() < 2**-22 and list(entry["grid"][:]) == list(range(10))

    # A killed writer leaves data no record points at: kept while it may still be staging, then swept.
    dead = reader.location.open_group(f"data/zz/{'z' * 32}.dead", mode="w")
    dead.create_array("x", shape=(100,), dtype="float32", chunks=(10,))[:10] = 1.0
    assert reader.sweep_orphans(older_than_sec=3600) == 0 and reader.sweep_orphans(older_than_sec=0) == 1
    assert _objects(options, f"{name}/store/data/zz") == [] and reader.verify(key)

    # A chunk lost from the bucket: the entry is forgotten and its data deleted, so it is recomputed.
    chunk = next(p for p in _objects(options, data) if "/audio/c/" in p)
    s3fs.S3FileSystem(**options).rm(chunk)
    assert open_store(settings).get(key) is None and store.record(f"entry:{key}") is None
    assert _objects(options, data) == []
    assert store.produce(key, "decode", compute) and store.verify(key)
    store.invalidate(key)
    assert _objects(options, f"{name}/store/data") == [] and store.get(key) is None


@pytest.mark.parametrize("scheme", ["file://", "memory://"])
def test_other_fsspec_locations(tmp_path: Path, scheme: str) -> None:
    """A file:// URL is the local folder it names (Zarr once failed to create its folders); memory:// shows any
    fsspec filesystem serves: written, verified, swept and removed alike."""
    root = f"{scheme}{tmp_path / 'store' if scheme == 'file://' else f'/offbeat-{uuid.uuid4().hex[:8]}'}"
    store = open_store(config=(root, str(tmp_path / "index"), "", "host-a", 60.0, "{}"))
    key = "ab" * 16
    assert store.produce(key, "decode", lambda out: out.put_array("x", np.arange(10.0), chunk_len=3))
    assert store.verify(key) and store.record(f"entry:{key}")["nbytes"] > 0 and store.sweep_orphans(0) == 0
    if scheme == "file://":
        assert (tmp_path / "store" / store.record(f"entry:{key}")["data"] / "zarr.json").is_file()
    store.invalidate(key)
    assert list(store.location.folders("data/*/*")) == []


def _stage_at_home(home: str, endpoint: str, config: StoreConfig, source: str, events: dict, results: Any) -> None:
    """One host sharing no folder with the other: its own HOME and working directory; the bucket reached
    through the standard AWS variables (no storage options)."""
    os.environ.update(HOME=home, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="id", AWS_SECRET_ACCESS_KEY="secret")
    os.chdir(home)
    shared._stage_in_process(config, source, events, results)


@pytest.mark.slow  # hosts are spawned processes
def test_two_hosts_sharing_only_the_bucket_and_redis_compute_a_stage_once(
    tmp_path: Path, bucket: tuple[str, dict[str, Any]], redis_url: str, s3_endpoint: str
) -> None:
    """Host b arrives while host a computes `decode` of the same file (each its own copy): b waits for a's
    commit and reads a's data from the bucket."""
    name, options = bucket
    homes = [tmp_path / "host-a", tmp_path / "host-b"]
    for home in homes:
        home.mkdir()
    synth.write_mix(shared.MIX, homes[0] / "mix.wav")
    shutil.copyfile(homes[0] / "mix.wav", homes[1] / "mix.wav")
    root = f"s3://{name}/store"
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    (a, events_a), (b, events_b) = (
        shared._host(
            ctx,
            (root, str(h / "index"), redis_url, h.name, 60.0, "{}"),
            h / "mix.wav",
            results,
            target=_stage_at_home,
            before=(str(h), s3_endpoint),
        )
        for h in homes
    )
    key = shared.computed_once(a, events_a, b, events_b, results)
    store = open_store(config=(root, str(tmp_path / "index"), redis_url, "test", 60.0, json.dumps(options)))
    record = store.record(f"entry:{key}")
    assert record["host"] == "host-a" and record["pid"] == a.pid and store.verify(key)
    folders = [path for path, _ in store.location.folders("data/*/*")]
    assert folders == [record["data"]]  # one copy, in the bucket
