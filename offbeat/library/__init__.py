"""The track library: reference tracks fingerprinted into the artifact store, and the search index over them that
mixes are identified against (`offbeat.dsp.fingerprint`).

Where things live, and why:
- A track's fingerprint is a store entry keyed by the file's content digest and the fingerprint code
  (`fingerprint_key`), so one file added to two libraries, or added twice, is fingerprinted once.
- Membership is one index record per track, `library:<name>:track:<digest>` (title, artist, where it was
  read from, its fingerprint's key), and a revision record `library:<name>` that changes with every add and
  removal. The index is the store's (diskcache on one host, Redis for many), so every host sees one library.
  `offbeat cache gc` keeps fingerprints (`KEPT_STAGES`); removing the last library's hold on one deletes it.
- The search index (every member's quads in one table sorted by key) is a set of segments, as a search engine's
  is: each a store entry holding `fp.build_index` of some members, keyed by their fingerprints' keys (so
  immutable, and made once among processes: the store's lease), recorded per library as
  `library:<name>:segment:<key>`. `library add` indexes its batch into one new small segment (`update_index`),
  so an add costs its own tracks, not the library's; segments merge log-structured (`merge_plan`), in the process
  that adds, one merger at a time. A search merges the segments in memory into exactly the index one build over
  every member gives (`merge_indexes`): a segment's tracks that are no longer members, or held by a larger
  segment too, are tombstones, left out until a merge drops them; members no segment holds are indexed then.
  Membership is the truth and segments only hold quads, so processes adding at once need no lock: each records
  its members, then a segment of its own.
- An analysis keys its identifications by the library's name and revision (`revision`), so adding a track makes
  the next analysis identify again, and an unchanged library reads the cached answer.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from offbeat.dsp import fingerprint as fp
from offbeat.errors import AnalysisError, loggable
from offbeat.library.segments import SegmentedIndex, merge_plan
from offbeat.library.tracks import (
    DECODE_BLOCK_SEC,
    KEPT_STAGES,
    LibraryTrack,
    check_name,
    fingerprint_key,
    fingerprint_keys,
    iter_paths,
    read_quads,
    reference_quads,
    window_quads,
    write_quads,
)
from offbeat.media.decode import read_tags
from offbeat.pipeline import intake
from offbeat.settings import Settings, get_settings
from offbeat.storage import ArtifactStore, EntryWriter, open_existing_store

__all__ = [
    "KEPT_STAGES",
    "Library",
    "LibraryTrack",
    "SearchIndex",
    "check_name",
    "iter_paths",
    "library_revision",
    "merge_plan",
    "read_quads",
    "window_quads",
]
log = logging.getLogger("offbeat.library")


class Library(SegmentedIndex):
    """A named library in `store` (`offbeat library add | ls | rm`, and what analyses read)."""

    def __init__(
        self,
        store: ArtifactStore,
        name: str,
        *,
        sample_rate: int = 22050,
        ffmpeg: str = "ffmpeg",
        settings: Settings | None = None,
    ) -> None:
        """`sample_rate`: the rate files are decoded at for fingerprinting (the engine's analysis rate, so that
        references and mixes go through one resampling); `ffmpeg`: for containers libsndfile does not read;
        `settings` (default: the process's): the limits and silence threshold a file added is held to, those a
        job's audio is held to, and how segments of the search index merge (`library_merge_factor`)."""
        self.store, self.name = store, check_name(name)
        self.sample_rate, self.ffmpeg = sample_rate, ffmpeg
        settings = settings or get_settings()
        self.limits, self.silence_threshold_db = intake.limits(settings), settings.silence_threshold_db
        self.merge_factor = settings.library_merge_factor

    def _record(self, digest: str) -> str:
        return f"library:{self.name}:track:{digest}"

    # -- reading -------------------------------------------------------------------------------------

    def tracks(self) -> list[LibraryTrack]:
        """Every member, sorted by digest (the order of the search index's track ids)."""
        found = []
        for name in self.store.index.names(f"library:{self.name}:track:"):
            record = self.store.record(name)
            if record is not None:
                found.append(LibraryTrack(**record))
        return sorted(found, key=lambda t: t.digest)

    def revision(self) -> str:
        """Changes with every add and removal: '' for a library that never held anything."""
        record = self.store.record(f"library:{self.name}")
        return "" if record is None else str(record["revision"])

    def find(self, ref: str) -> list[LibraryTrack]:
        """Members whose digest starts with `ref` (at least 6 characters), or whose title, file name or path (as
        given, or resolved from here) is `ref`."""
        names = (ref, str(Path(ref).resolve())) if ref else (ref,)
        return [
            t
            for t in self.tracks()
            if (len(ref) >= 6 and t.digest.startswith(ref)) or ref in (t.title, Path(t.path).name) or t.path in names
        ]

    # -- changing ------------------------------------------------------------------------------------

    def _changed(self) -> None:
        self.store.index.set(f"library:{self.name}", {"revision": uuid.uuid4().hex, "changed": time.time()})

    def add(self, path: Path, *, title: str = "", artist: str = "", again: bool = False) -> tuple[LibraryTrack, bool]:
        """Fingerprint the file at `path` into the library: (its member record, whether it is new here). Title
        and artist come from the arguments, else the member's record, else the file's tags, else the file name
        (title). A file already a member is kept as it is unless a title or artist is given, `again` (fingerprint
        it with this code), or its fingerprint is stale or gone from the store. The file passes the intake checks
        of a job's audio (`offbeat.pipeline.intake`): what they refuse is an `AnalysisError` with their code."""
        # kept resolved: re-fingerprinting (`refreshed`) may run in another working directory
        path, sample_rate, ffmpeg = Path(path).resolve(), self.sample_rate, self.ffmpeg
        # the intake checks of a job's audio: the header's here, before any reading; the samples' while decoding
        source = intake.Intake(
            path,
            self.limits,
            sample_rate=None,
            analysis_rate=sample_rate,
            block_sec=DECODE_BLOCK_SEC,
            ffmpeg=ffmpeg,
            stage="library",
        )
        digest = self.store.source_digest(path)
        existing = self.store.record(self._record(digest))
        key = fingerprint_key(digest, sample_rate)
        if existing is not None and not (title or artist or again) and self._searchable(LibraryTrack(**existing)):
            return LibraryTrack(**existing), False
        tags = read_tags(path, source.info, ffmpeg)

        def compute(out: EntryWriter) -> None:
            parts = [mono for _, mono in source]
            audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
            intake.audible([audio], sample_rate, self.silence_threshold_db, len(audio) / sample_rate, "library")
            quads = reference_quads(audio, sample_rate)
            write_quads(out, quads)
            out.attrs.update(duration_sec=len(audio) / sample_rate, quads=len(quads.root_sec))

        self.store.produce(key, "fingerprint", compute, source=digest)
        entry = self.store.get(key)
        if entry is None:
            raise RuntimeError(f"the fingerprint of {path.name} was not stored")
        track = LibraryTrack(
            digest=digest,
            title=title or (existing or {}).get("title") or tags.get("title") or path.stem,
            artist=artist or (existing or {}).get("artist") or tags.get("artist") or "",
            path=str(path),
            duration_sec=round(float(entry.attrs["duration_sec"]), 3),
            fingerprint=key,
            quads=int(entry.attrs["quads"]),
            added=time.time() if existing is None else float(existing["added"]),
        )
        self.store.index.set(self._record(digest), asdict(track))
        self._changed()
        return track, existing is None

    def remove(self, tracks: list[LibraryTrack]) -> None:
        """Take members out, and out of the store the fingerprints that no library holds any more."""
        for track in tracks:
            self.store.index.delete(self._record(track.digest))
        if tracks:
            self._changed()
        held = {name.rsplit(":", 1)[1] for name in self.store.index.names("library:") if ":track:" in name}
        for track in tracks:
            if track.digest not in held:
                self.store.invalidate(track.fingerprint)

    # -- searching -----------------------------------------------------------------------------------

    def _searchable(self, track: LibraryTrack) -> bool:
        """Whether the member's fingerprint is made by this code at this rate and is in the store."""
        return track.fingerprint == fingerprint_key(track.digest, self.sample_rate) and (
            self.store.get(track.fingerprint) is not None
        )

    def _again(self, track: LibraryTrack, why: str) -> LibraryTrack | None:
        """The member fingerprinted again from its file, or None (with a warning in the log) when the file is gone
        or changed, or now refused: then it is not searched until it is added again."""
        path = Path(track.path)
        try:
            if not path.is_file() or self.store.source_digest(path) != track.digest:
                raise FileNotFoundError(track.path)
            track, _ = self.add(path, title=track.title, artist=track.artist, again=True)
        except (AnalysisError, OSError):
            log.warning(
                "library %s: '%s' %s and its file is gone, changed or refused: not searched until it is added again",
                self.name,
                loggable(track.title),
                why,
            )
            return None
        return track

    def refreshed(self, members: list[LibraryTrack]) -> list[LibraryTrack]:
        """`members`, those fingerprinted by other code (or at another rate) fingerprinted again from their files;
        a member whose file is gone or changed is left out of the search, with a warning in the log."""
        key = fingerprint_keys(self.sample_rate)
        stale = "was fingerprinted by older code (or at another rate)"
        return self._renewed(members, lambda track: track.fingerprint != key(track.digest), stale)

    def searchable(self, members: list[LibraryTrack]) -> list[LibraryTrack]:
        """`members` whose fingerprints are in the store (what building the search index reads): one whose entry
        is gone (deleted by hand, or forgotten as damaged) is fingerprinted again from its file, or left out of
        the search with a warning in the log when the file is gone or changed."""
        gone = "has no fingerprint in the store"
        return self._renewed(members, lambda track: self.store.get(track.fingerprint) is None, gone)

    def _renewed(
        self, members: list[LibraryTrack], stale: Callable[[LibraryTrack], bool], why: str
    ) -> list[LibraryTrack]:
        """`members`, each that is `stale` fingerprinted again from its file (`_again`) or left out."""
        current = []
        for track in members:
            if stale(track):
                again = self._again(track, why)
                if again is None:
                    continue
                track = again
            current.append(track)
        return current


# A library's search index by name, and its members in track-id order (None for an empty library).
SearchIndex = Callable[[str], tuple[fp.Index, list[LibraryTrack]] | None]


def library_revision(settings: Settings) -> str:
    """The revision of the library `settings` name, read without creating a store: '' when there is none."""
    store = open_existing_store(settings)
    if store is None:
        return ""
    try:
        return Library(store, settings.library).revision()
    finally:
        store.close()
