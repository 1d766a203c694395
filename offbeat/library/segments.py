"""A track library's search index as a set of segments, as a search engine's is (see `offbeat.library` for the
design): each segment a content-keyed store entry holding `fp.build_index` of some members, recorded per library;
`SegmentedIndex` (the index side of `offbeat.library.Library`) adds, merges and reads them, and heals damaged
entries; `merge_plan` says which segments merge."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TypeVar

import numpy as np

from offbeat.dsp import fingerprint as fp
from offbeat.dsp.index_merge import merge_indexes
from offbeat.errors import AnalysisError, ErrorCode, bounded, loggable
from offbeat.library.tracks import LibraryTrack, fingerprint_keys, read_quads, write_quads
from offbeat.storage import ArtifactStore, EntryWriter, entry_key
from offbeat.storage.lease import Lease

log = logging.getLogger("offbeat.library")
SEGMENT_STAGE = "search_index"  # the store's stage name of search index segments (`cache ls`, `cache gc`)
SEGMENT_CHUNK = 1 << 20  # rows per stored chunk of a segment's arrays (4 MB of keys)
T = TypeVar("T")


class SegmentedIndex:
    """The search index side of a library: its segments in the store, kept up to its members (`update_index`)
    and merged into one index for a search (`search_index`). `offbeat.library.Library` is one; it provides the
    members (`tracks`, `refreshed`, `searchable`) and where they live (`store`, `name`, `sample_rate`,
    `merge_factor`)."""

    store: ArtifactStore
    name: str
    sample_rate: int
    merge_factor: int

    def tracks(self) -> list[LibraryTrack]:
        raise NotImplementedError

    def refreshed(self, members: list[LibraryTrack]) -> list[LibraryTrack]:
        raise NotImplementedError

    def searchable(self, members: list[LibraryTrack]) -> list[LibraryTrack]:
        raise NotImplementedError

    def segments(self) -> list[Segment]:
        """The search index's segments recorded for this library, largest first (then by key): the order in
        which a member is looked for in them (`_cover`)."""
        found = []
        for name in self.store.index.names(f"library:{self.name}:segment:"):
            record = self.store.record(name)
            if record is not None:
                found.append(Segment(**record))
        return sorted(found, key=lambda s: (-len(s.tracks), s.key))

    def _segment_record(self, key: str) -> str:
        return f"library:{self.name}:segment:{key}"

    def _cover(self, members: list[LibraryTrack], segments: list[Segment]) -> tuple[Cover, list[LibraryTrack]]:
        """Where each member is searched: the first of `segments` (largest first) that holds it under its
        fingerprint's key and whose entry is in the store; and the members none holds. A segment's other tracks
        (removed since, fingerprinted again, or held by a larger segment too) are its tombstones: left out."""
        present: dict[str, bool] = {}
        cover: dict[str, tuple[Segment, list[LibraryTrack]]] = {}
        uncovered = []
        for track in members:
            for segment in segments:
                if segment.tracks.get(track.digest) != track.fingerprint:
                    continue
                if segment.key not in present:
                    present[segment.key] = self.store.get(segment.key) is not None
                if present[segment.key]:
                    cover.setdefault(segment.key, (segment, []))[1].append(track)
                    break
            else:
                uncovered.append(track)
        return list(cover.values()), uncovered

    def _store_segment(self, tracks: list[LibraryTrack], make: Callable[[], fp.Index]) -> Segment:
        """The segment of `tracks` (`make` builds its index, tracks in digest order), stored once among every
        process (content-keyed: whoever makes it first, the others read it) and recorded for this library."""
        mapping = {t.digest: t.fingerprint for t in sorted(tracks, key=lambda t: t.digest)}
        key = segment_key(mapping)

        def compute(out: EntryWriter) -> None:
            index = make()
            out.put_array("keys", index.keys, SEGMENT_CHUNK)
            out.put_array("track", index.track, SEGMENT_CHUNK)
            write_quads(out, index.quads, "quads.", SEGMENT_CHUNK)
            out.attrs.update(tracks=len(mapping), quads=len(index.keys))

        self.store.produce(key, SEGMENT_STAGE, compute, source=f"library:{self.name}")
        entry = self.store.get(key)
        if entry is None:
            raise AnalysisError(
                ErrorCode.INTERNAL, f"library {self.name}: a search index segment went from the store", retryable=True
            )
        # the rows from the entry's shape: an index stored whole by earlier code, over the same tracks, is this segment
        segment = Segment(key, mapping, int(entry.array_specs["keys"][0][0]), time.time())
        self.store.index.set(self._segment_record(key), asdict(segment))
        return segment

    def _new_segment(self, tracks: list[LibraryTrack]) -> Segment:
        """A segment of `tracks` built from their fingerprints (whose entries `searchable` found in the store)."""

        def make() -> fp.Index:
            quads, broken = {}, []
            for tid, track in enumerate(sorted(tracks, key=lambda t: t.digest)):
                entry = self.store.get(track.fingerprint)
                if entry is None:  # gone since `searchable` looked (another process removed the member)
                    raise AnalysisError(
                        ErrorCode.INTERNAL,
                        f"library {self.name}: the fingerprint of {track.title!r} went from the store while the "
                        "search index was built",
                        retryable=True,
                    )
                try:
                    quads[tid] = read_quads(entry)
                except Exception as exc:  # damage (then forgotten by `verify`), or an entry made again meanwhile
                    self.store.verify(track.fingerprint)
                    broken.append((track, exc))
            if broken:  # every damaged fingerprint at once, so that one more pass makes them all again
                titles = ", ".join(repr(track.title) for track, _ in broken)
                raise Damaged([t.fingerprint for t, _ in broken], f"fingerprint of {titles}") from broken[0][1]
            return fp.build_index(quads)

        return self._store_segment(tracks, make)

    def _index(self, tracks: list[LibraryTrack]) -> tuple[Segment | None, list[LibraryTrack]]:
        """A new segment of `tracks`, and the tracks it holds: those whose fingerprints are gone made again from
        their files or left out (`searchable`; each a look at the store), unless the segment of them all is stored
        already (made by another process, or the whole index of earlier code over the same tracks). None when
        every track is left out."""
        if self.store.get(segment_key({t.digest: t.fingerprint for t in tracks})) is None:
            tracks = self.searchable(tracks)
        return (self._new_segment(tracks), tracks) if tracks else (None, [])

    def _read_segment(self, segment: Segment) -> fp.Index:
        """A segment's index as stored (its track ids: its tracks in digest order)."""
        entry = self.store.get(segment.key)
        if entry is None:
            raise AnalysisError(
                ErrorCode.INTERNAL, f"library {self.name}: the search index went from the store", retryable=True
            )
        try:
            return fp.Index(entry["keys"][...], entry["track"][...], read_quads(entry, "quads."))
        except Exception as exc:  # damage (then forgotten by `verify`), or an entry made again meanwhile: read again
            self.store.verify(segment.key)
            raise Damaged([segment.key], "search index") from exc

    def _merged(self, cover: Cover) -> fp.Index:
        """The index over the members `cover` places, track ids in digest order: exactly `fp.build_index` of
        their fingerprints (`merge_indexes`), whatever segments they lie in."""
        order = {d: n for n, d in enumerate(sorted(t.digest for _, tracks in cover for t in tracks))}
        parts = []
        for segment, tracks in cover:
            local = {d: n for n, d in enumerate(sorted(segment.tracks))}
            ids = np.full(len(local), -1, np.int64)
            for track in tracks:
                ids[local[track.digest]] = order[track.digest]
            parts.append((self._read_segment(segment), ids))
        return merge_indexes(parts)

    def _healing(self, work: Callable[[], T]) -> T:
        """`work()`, with stored entries found damaged while read (a chunk failing its checksum) healed, as stage
        entries are in a run: they are forgotten, made again (a fingerprint from its file, or its member left
        out; a segment from the fingerprints) and read again, each once; damage found again in a remade entry is
        a retryable internal fault."""
        healed: set[str] = set()
        while True:
            try:
                return work()
            except Damaged as damage:
                again = healed.intersection(damage.keys)
                if again:
                    raise AnalysisError(
                        ErrorCode.INTERNAL,
                        f"library {self.name}: the stored {damage.what} was damaged again after it was made again "
                        f"({bounded(damage.__cause__)})",
                        retryable=True,
                    ) from damage
                healed.update(damage.keys)
                log.warning(
                    "library %s: the stored %s was damaged and has been forgotten; making it again",
                    self.name,
                    loggable(damage.what),
                )

    def search_index(self) -> tuple[fp.Index, list[LibraryTrack]] | None:
        """The search index over every member, and the members in track-id order; None for an empty library.

        Made in memory from the library's segments (`merge_indexes`: the same index, row for row, that one
        build over every member's fingerprint gives), members in no segment (added without `update_index`, or
        whose segment is gone) indexed first into a segment of their own; kept in memory until the members
        change. Damaged entries heal here (`_healing`)."""
        return self._healing(self._search_index)

    def _search_index(self) -> tuple[fp.Index, list[LibraryTrack]] | None:
        segments = self.segments()  # before the members: a segment holds members recorded before it was
        members = self.refreshed(self.tracks())
        if not members:
            return None
        key = index_key(members)
        cached = _LOADED.get(key)
        if cached is not None:
            return cached, members
        cover, uncovered = self._cover(members, segments)
        if uncovered:  # indexed now, from the fingerprints: those gone are made again or left out
            new, uncovered = self._index(uncovered)
            if new is not None:
                cover.append((new, uncovered))
            members = sorted((t for _, tracks in cover for t in tracks), key=lambda t: t.digest)
            if not members:
                return None
            key = index_key(members)
        index = self._merged(cover)
        _LOADED.clear()  # one index in memory per process: a large library is large
        _LOADED[key] = index
        return index, members

    def update_index(self) -> IndexUpdate:
        """Bring the search index's segments up to the members, after adds and removals (`offbeat library add`,
        `rm`): the members no segment holds indexed into one new segment (a batch of adds costs its own tracks,
        not the library's), then segments merged as `merge_plan` says (under a lease: one merger at a time; a
        process finding it held leaves the merging to the holder). Members fingerprinted by other code are left
        to the search, which fingerprints them again (`refreshed`)."""
        return self._healing(self._update_index)

    def _update_index(self) -> IndexUpdate:
        segments = self.segments()  # before the members, as in `_search_index`
        members = self.tracks()
        key = fingerprint_keys(self.sample_rate)
        current = [t for t in members if t.fingerprint == key(t.digest)]
        cover, uncovered = self._cover(current, segments)
        new, uncovered = self._index(uncovered) if uncovered else (None, [])
        if new is not None:
            segments, cover = [*segments, new], [*cover, (new, uncovered)]
        dead, groups = self._merge_work(segments, cover)
        if not (dead or groups):  # the common add: nothing to merge, and no second look at the library
            return IndexUpdate(len(uncovered), 0, len(segments))
        holder = f"{self.store.host}:{os.getpid()}"
        lease = Lease(self.store.index, f"lease:library:{self.name}:merge", self.store.lease_sec, holder)
        if not lease.acquire():  # another process merges now: it sees this segment too, or the next add will
            return IndexUpdate(len(uncovered), 0, len(segments))
        with lease:
            merged, left = self._merge()
        return IndexUpdate(len(uncovered), merged, left)

    def _merge_work(self, segments: list[Segment], cover: Cover) -> tuple[list[Segment], list[Cover]]:
        """What merging would do to `segments`, where `cover` places the members: the segments that hold no member
        searched there (every track removed, held by a larger segment too, or the entry gone), and the groups of
        the others to merge, each with the members it places (`merge_plan`)."""
        placed = {segment.key: tracks for segment, tracks in cover}
        dead = [segment for segment in segments if segment.key not in placed]
        live = [(segment, placed[segment.key]) for segment in segments if segment.key in placed]
        plan = merge_plan([(len(tracks), len(segment.tracks)) for segment, tracks in live], self.merge_factor)
        return dead, [[live[n] for n in group] for group in plan]

    def _merge(self) -> tuple[int, int]:
        """Merge segments as `merge_plan` says and forget those that hold no member searched there, on a fresh
        look at the library (segments, then members: a segment recorded holds members recorded before it, so none
        is taken for dead by a look that missed its members): (segments merged, segments recorded after)."""
        segments = self.segments()
        dead, groups = self._merge_work(segments, self._cover(self.tracks(), segments)[0])
        for segment in dead:
            self.store.index.delete(self._segment_record(segment.key))
        merged = 0
        for parts in groups:
            tracks = [t for _, ts in parts for t in ts]
            into = self._store_segment(tracks, lambda parts=parts: self._merged(parts))  # recorded before the rest go
            for segment, _ in parts:
                if segment.key != into.key:
                    self.store.index.delete(self._segment_record(segment.key))
            merged += len(parts)
        return merged, len(segments) - len(dead) - merged + len(groups)


@dataclass(frozen=True)
class Segment:
    """One stored piece of a library's search index: `fp.build_index` of the tracks of a batch of adds, or of
    segments merged, track ids in digest order. Content-keyed (`segment_key`), so immutable: processes adding at
    once write segments of their own, and the same tracks always give the same entry."""

    key: str
    tracks: dict[str, str]  # digest -> the key of the fingerprint it was built from
    quads: int
    created: float  # when recorded (seconds since the epoch)


@dataclass(frozen=True)
class IndexUpdate:
    """What `Library.update_index` did."""

    indexed: int  # members indexed into a new segment
    merged: int  # segments merged into larger ones
    segments: int  # segments recorded now


def merge_plan(segments: list[tuple[int, int]], factor: int) -> list[list[int]]:
    """Which segments to merge, log-structured: `segments` as (tracks searched there, tracks it holds); the groups
    (of their positions) each merged into one. A segment's tier is how many times `factor` its searched tracks
    reach (1 to factor-1 tracks: tier 0); `factor` segments of one tier merge into one of a higher tier, which may
    fill that tier in turn (merged then with the originals), so each track is rewritten about log_factor(library)
    times in all and a library holds at most factor-1 segments per tier. A segment that is more than half
    tombstones (tracks removed, or held elsewhere) is rewritten, with its tier's merge or alone."""
    groups: list[tuple[int, list[int]]] = [(live, [n]) for n, (live, _) in enumerate(segments)]
    while True:
        tiers: dict[int, list[int]] = {}
        for g, (live, _) in enumerate(groups):
            tiers.setdefault(int(np.floor(np.log(max(live, 1)) / np.log(factor) + 1e-9)), []).append(g)
        full = next((members for _, members in sorted(tiers.items()) if len(members) >= factor), None)
        if full is None:
            break
        joined = (sum(groups[g][0] for g in full), [n for g in full for n in groups[g][1]])
        groups = [group for g, group in enumerate(groups) if g not in full] + [joined]
    sparse = {n for n, (live, held) in enumerate(segments) if 2 * live < held}
    return sorted(
        (sorted(members) for _, members in groups if len(members) > 1 or members[0] in sparse),
        key=lambda members: members[0],
    )


class Damaged(Exception):
    """Library entries (`keys`) that failed to read while the search index was made or read, and were forgotten
    when damaged: `Library.search_index` makes them again (or reads them again, when another process had made them
    again meanwhile)."""

    def __init__(self, keys: list[str], what: str) -> None:
        super().__init__(what)
        self.keys, self.what = keys, what


def segment_key(tracks: dict[str, str]) -> str:
    """The store key of the search index segment over `tracks` (digest -> fingerprint key)."""
    return entry_key("library", SEGMENT_STAGE, fp.VERSION, {}, tracks)


def index_key(members: list[LibraryTrack]) -> str:
    """The key of the search index over `members` (made from their fingerprints' keys): that of the one segment
    holding them all, and the key of the index a process holds in memory."""
    return segment_key({t.digest: t.fingerprint for t in members})


_LOADED: dict[str, fp.Index] = {}
# Where members are searched (`Library._cover`): segments, each with the members placed in it.
Cover = list[tuple["Segment", list[LibraryTrack]]]
