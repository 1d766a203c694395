import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import pytest

from offbeat.storage import ArtifactStore, entry_key

KEY = entry_key("src", "decode", 1, {"rate": 44100}, {})


def make_store(root: Path) -> ArtifactStore:
    return ArtifactStore(root / "artifacts", root / "index")


def test_key_changes_with_every_input() -> None:
    base = entry_key("src", "trim", 1, {"threshold_db": -60}, {"decode": "k1"})
    assert base == entry_key("src", "trim", 1, {"threshold_db": -60}, {"decode": "k1"})
    variants = {
        entry_key("other", "trim", 1, {"threshold_db": -60}, {"decode": "k1"}),
        entry_key("src", "beats", 1, {"threshold_db": -60}, {"decode": "k1"}),
        entry_key("src", "trim", 2, {"threshold_db": -60}, {"decode": "k1"}),
        entry_key("src", "trim", 1, {"threshold_db": -50}, {"decode": "k1"}),
        entry_key("src", "trim", 1, {"threshold_db": -60}, {"decode": "k2"}),
    }
    assert base not in variants and len(variants) == 5


def test_hit_returns_what_was_written(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    assert store.get(KEY) is None
    data = np.random.default_rng(0).standard_normal((1000, 2)).astype(np.float32)
    with store.write(KEY, "decode", source="src") as writer:
        writer.put_array("stereo", data, chunk_len=256)
        writer.attrs["duration_sec"] = 1.5
    entry = store.get(KEY)
    assert entry is not None and entry.attrs["duration_sec"] == 1.5
    np.testing.assert_array_equal(entry["stereo"][...], data)
    assert entry.nbytes > 0
    # A new handle (another process would do the same) sees the committed entry.
    assert make_store(tmp_path).get(KEY) is not None


def test_streamed_appends_keep_chunks_whole(tmp_path: Path) -> None:
    from offbeat.storage import ChunkAppender

    store = make_store(tmp_path)
    blocks = [np.full((n, 2), i, np.float32) for i, n in enumerate((70, 130, 1, 299, 33))]
    with store.write(KEY, "decode") as writer:
        out = ChunkAppender(writer.create_array("stereo", shape=(0, 2), dtype="float32", chunks=(100, 2)))
        for block in blocks:
            out.append(block)
        out.close()
    entry = store.get(KEY)
    assert entry is not None
    np.testing.assert_array_equal(entry["stereo"][...], np.concatenate(blocks))


def test_audio_arrays_keep_24_bits_and_shrink(tmp_path: Path) -> None:
    """Audio is stored as 24-bit fixed point: 16-bit samples come back exactly, float samples within half a
    24-bit step (peaks above full scale included), in less space than zstd on float32."""
    store, rng = make_store(tmp_path), np.random.default_rng(5)
    pcm16 = (rng.integers(-(2**15), 2**15, (44100, 2)) / 2**15).astype(np.float32)
    music = np.cumsum(rng.standard_normal((44100, 2)), axis=0).astype(np.float32)  # correlated, like audio
    music *= 1.5 / np.abs(music).max()
    plain_key = entry_key("src", "decode", 1, {"plain": True}, {})
    for key, audio in ((KEY, True), (plain_key, False)):
        with store.write(key, "decode") as writer:
            writer.create_array("pcm16", shape=pcm16.shape, dtype="float32", chunks=(44100, 2), audio=audio)[...] = (
                pcm16
            )
            writer.create_array("music", shape=music.shape, dtype="float32", chunks=(44100, 2), audio=audio)[...] = (
                music
            )
    entry, plain = store.get(KEY), store.get(plain_key)
    assert entry is not None and plain is not None
    assert entry["music"].dtype == np.float32
    np.testing.assert_array_equal(entry["pcm16"][...], pcm16)
    assert np.abs(entry["music"][...] - music).max() <= 2.0**-24
    assert entry.nbytes < 0.8 * plain.nbytes


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    with pytest.raises(RuntimeError), store.write(KEY, "decode") as writer:
        writer.put_array("stereo", np.zeros((10, 2), np.float32))
        raise RuntimeError("stage crashed")
    assert store.get(KEY) is None
    assert not list((tmp_path / "artifacts" / "data").glob("*/*"))


def _write_slowly(root: str, started: "mp.synchronize.Event") -> None:
    store = make_store(Path(root))
    with store.write(KEY, "decode") as writer:
        array = writer.create_array("stereo", shape=(0, 2), dtype="float32", chunks=(100, 2))
        array.append(np.ones((300, 2), np.float32), axis=0)
        started.set()
        time.sleep(60)  # killed here, mid-write


@pytest.mark.slow  # writers are spawned processes
def test_crash_mid_write_is_a_miss_and_recomputes(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    started = ctx.Event()
    proc = ctx.Process(target=_write_slowly, args=(str(tmp_path), started))
    proc.start()
    assert started.wait(60)
    proc.kill()  # SIGKILL: no cleanup code runs
    proc.join()
    store = make_store(tmp_path)
    assert store.get(KEY) is None
    assert len(list((tmp_path / "artifacts" / "data").glob("*/*"))) == 1  # the orphan
    with store.write(KEY, "decode") as writer:
        writer.put_array("stereo", np.zeros((50, 2), np.float32))
    assert store.get(KEY) is not None
    assert store.sweep_orphans(older_than_sec=0) == 1
    assert store.get(KEY) is not None
    assert len(list((tmp_path / "artifacts" / "data").glob("*/*"))) == 1


def _write_value(root: str, value: float, barrier: "mp.synchronize.Barrier") -> None:
    store = make_store(Path(root))
    with store.write(KEY, "decode") as writer:
        array = writer.create_array("stereo", shape=(0, 2), dtype="float32", chunks=(1000, 2))
        barrier.wait(30)
        for _ in range(20):
            array.append(np.full((1000, 2), value, np.float32), axis=0)


@pytest.mark.slow  # writers are spawned processes
def test_concurrent_writers_yield_one_whole_entry(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_write_value, args=(str(tmp_path), v, barrier)) for v in (1.0, 2.0)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    entry = make_store(tmp_path).get(KEY)
    assert entry is not None
    values = np.unique(entry["stereo"][...])
    assert len(values) == 1 and values[0] in (1.0, 2.0)  # one writer's data, never a mix
    assert len(list((tmp_path / "artifacts" / "data").glob("*/*"))) == 1  # the loser discarded its copy


def _committed(tmp_path: Path) -> tuple[ArtifactStore, Path]:
    store = make_store(tmp_path)
    with store.write(KEY, "decode") as writer:
        writer.put_array("stereo", np.random.default_rng(1).standard_normal((1000, 2)).astype(np.float32), 100)
    (folder,) = (tmp_path / "artifacts" / "data").glob("*/*")
    return store, folder / "stereo"


def test_missing_chunk_is_recomputed(tmp_path: Path) -> None:
    store, array_dir = _committed(tmp_path)
    (array_dir / "c" / "3" / "0").unlink()
    assert store.get(KEY) is None  # detected, forgotten ...
    assert store.index.get(f"entry:{KEY}") is None  # ... and its record dropped so it gets recomputed


def test_garbled_metadata_is_recomputed(tmp_path: Path) -> None:
    store, array_dir = _committed(tmp_path)
    (array_dir / "zarr.json").write_text("{garbage")
    assert store.get(KEY) is None


def test_garbled_chunk_fails_its_checksum(tmp_path: Path) -> None:
    store, array_dir = _committed(tmp_path)
    chunk = array_dir / "c" / "5" / "0"
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    chunk.write_bytes(bytes(raw))
    entry = store.get(KEY)  # structure is intact ...
    assert entry is not None
    with pytest.raises(Exception, match=r"(?i)checksum|crc"):
        entry["stereo"][500:600]  # ... but the damaged chunk never reads as data
    assert store.get(KEY, verify=True) is None  # a verifying read finds it and forgets the entry


def test_a_handle_sees_entries_replaced_by_another(tmp_path: Path) -> None:
    first, second = make_store(tmp_path), make_store(tmp_path)
    with first.write(KEY, "decode") as writer:
        writer.put_array("stereo", np.zeros((10, 2), np.float32))
    assert first.get(KEY) is not None  # validated and remembered by this handle
    second.invalidate(KEY)
    assert first.get(KEY) is None
    with second.write(KEY, "decode") as writer:
        writer.put_array("stereo", np.ones((10, 2), np.float32))
    entry = first.get(KEY)
    assert entry is not None and float(entry["stereo"][0, 0]) == 1.0


def _put(store: ArtifactStore, key: str, frames: int = 4000) -> None:
    with store.write(key, "decode", source="src") as writer:
        writer.put_array("stereo", np.random.default_rng(1).standard_normal((frames, 2)).astype(np.float32))


def test_gc_removes_least_recently_used_first(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    keys = [entry_key("src", "decode", 1, {"n": n}, {}) for n in range(3)]
    for n, key in enumerate(keys):
        _put(store, key)
        store.index.set(f"used:{key}", time.time() - 3600 * (10 - n))  # used 10 h, 9 h, 8 h ago
    store.index.set(f"used:{keys[0]}", time.time() - 60 * 5)  # ... but the oldest was read 5 minutes ago
    size = store.get(keys[1]).nbytes  # type: ignore[union-attr]
    removed = store.collect_garbage(max_bytes=int(size * 1.5), grace_sec=60)
    assert [r["key"] for r in removed] == [keys[1], keys[2]]
    assert store.get(keys[0]) is not None and store.get(keys[1]) is None
    assert not list((tmp_path / "artifacts" / "data").glob(f"*/{keys[1]}*"))  # its data went too
    # --older-than takes only what has not been used for that long; the grace period protects the rest.
    _put(store, keys[1])
    store.index.set(f"used:{keys[1]}", time.time() - 7200)
    assert [r["key"] for r in store.collect_garbage(older_than_sec=3600, grace_sec=60)] == [keys[1]]
    assert store.collect_garbage(max_bytes=0, grace_sec=3600) == []  # keys[0] was used 5 min ago


def _read_for(root: str, key: str, seconds: float, reading: "mp.synchronize.Event", ok: "mp.synchronize.Event") -> None:
    store = make_store(Path(root))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        entry = store.get(key)
        assert entry is not None
        reading.set()
        entry["stereo"][...]  # every chunk, again and again
    ok.set()


@pytest.mark.slow  # the reader is a spawned process
def test_gc_leaves_an_entry_being_read_by_another_process_alone(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    busy, idle = (entry_key("src", "decode", 1, {"n": n}, {}) for n in (1, 2))
    _put(store, busy, frames=200_000)
    _put(store, idle)
    for key in (busy, idle):
        store.index.set(f"used:{key}", time.time() - 86400)  # both look a day old ...
    ctx = mp.get_context("spawn")
    reading, ok = ctx.Event(), ctx.Event()
    reader = ctx.Process(target=_read_for, args=(str(tmp_path), busy, 3.0, reading, ok))
    reader.start()
    assert reading.wait(60)  # ... until the reader opens one
    removed = store.collect_garbage(max_bytes=0, grace_sec=600)
    reader.join(30)
    assert [r["key"] for r in removed] == [idle]
    assert reader.exitcode == 0 and ok.is_set()  # the reader never saw its entry vanish
    assert store.get(busy) is not None
