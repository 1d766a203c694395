"""The track library: reference tracks fingerprinted into the artifact store, and the search index over them that
mixes are identified against (`offbeat.dsp.fingerprint`).

Where things live, and why:
- A track's fingerprint is a store entry keyed by the file's content digest and the fingerprint code
  (`fingerprint_key`), so one file added to two libraries, or added twice, is fingerprinted once.
- Membership is one index record per track, `library:<name>:track:<digest>` (title, artist, where it was
  read from, its fingerprint's key), and a revision record `library:<name>` that changes with every add and
  removal. The index is the store's (diskcache on one host, Redis for many), so every host sees one library.
  `offbeat cache gc` keeps fingerprints (`KEPT_STAGES`); removing the last library's hold on one deletes it.
- The search index (every member's quads in one sorted table) is a store entry too, keyed by the members'
  fingerprint keys: built once by whichever process first needs it after a change (the store's lease makes the
  others wait), then read by all.
- An analysis keys its identifications by the library's name and revision (`revision`), so adding a track makes
  the next analysis identify again, and an unchanged library reads the cached answer.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from offbeat.dsp import fingerprint as fp
from offbeat.errors import AnalysisError, ErrorCode, bounded, loggable
from offbeat.media.decode import read_tags
from offbeat.pipeline import intake
from offbeat.pipeline.stage import path_constants
from offbeat.settings import LIBRARY_NAME, Settings, get_settings
from offbeat.storage import ArtifactStore, Entry, EntryWriter, entry_key, open_existing_store

NAME = re.compile(LIBRARY_NAME)
log = logging.getLogger("offbeat.library")
KEPT_STAGES = ("fingerprint",)  # never collected by `offbeat cache gc`: the file may be gone (see `Library.remove`)
DECODE_BLOCK_SEC = 30.0  # decoding a reference track streams blocks of this length


def check_name(name: str) -> str:
    """A library name, or ValueError: letters, digits, `_`, `.` and `-`, up to 64 characters (it is part of
    index record names and of cache keys)."""
    if not NAME.fullmatch(name):  # `$` alone also matches before a final newline
        raise ValueError(
            f"library name {name[:80]!r} is not allowed: use letters, digits, '_', '.' and '-' (at most 64), "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class LibraryTrack:
    """One reference track of a library."""

    digest: str  # content digest of the file: the track's id
    title: str
    artist: str
    path: str  # where it was read from when added, resolved (to fingerprint it again after a code change)
    duration_sec: float
    fingerprint: str  # key of its fingerprint entry in the store
    quads: int  # reference quads in it
    added: float  # time added (seconds since the epoch)


def fingerprint_key(digest: str, sample_rate: int) -> str:
    """The store key of the fingerprint of the file with content `digest`, decoded at `sample_rate`: what shapes
    it besides the audio is the fingerprint code's version and constants."""
    params = {"sample_rate": sample_rate, "dsp": path_constants(fp.__name__)}
    return entry_key(digest, "fingerprint", fp.VERSION, params, {})


def reference_quads(audio: np.ndarray, sr: int) -> fp.Quads:
    """The quads a library keeps of a track: the fingerprint module's reference extraction when it has one
    (references may be sparser than queries), else its only one."""
    extract = getattr(fp, "reference_fingerprint", fp.fingerprint)
    return extract(audio, sr)


def write_quads(out: EntryWriter, quads: fp.Quads, prefix: str = "") -> None:
    """Every field of `quads` as an array of the entry (named `prefix + field`)."""
    for field in fields(fp.Quads):
        out.put_array(prefix + field.name, np.ascontiguousarray(getattr(quads, field.name)))


def read_quads(entry: Entry, prefix: str = "") -> fp.Quads:
    """The quads `write_quads` stored."""
    return fp.Quads(*(entry[prefix + field.name][...] for field in fields(fp.Quads)))


class Library:
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
        job's audio is held to."""
        self.store, self.name = store, check_name(name)
        self.sample_rate, self.ffmpeg = sample_rate, ffmpeg
        settings = settings or get_settings()
        self.limits, self.silence_threshold_db = intake.limits(settings), settings.silence_threshold_db

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
        current = []
        for track in members:
            if track.fingerprint != fingerprint_key(track.digest, self.sample_rate):
                again = self._again(track, "was fingerprinted by older code (or at another rate)")
                if again is None:
                    continue
                track = again
            current.append(track)
        return current

    def searchable(self, members: list[LibraryTrack]) -> list[LibraryTrack]:
        """`members` whose fingerprints are in the store (what building the search index reads): one whose entry
        is gone (deleted by hand, or forgotten as damaged) is fingerprinted again from its file, or left out of
        the search with a warning in the log when the file is gone or changed."""
        current = []
        for track in members:
            if self.store.get(track.fingerprint) is None:
                again = self._again(track, "has no fingerprint in the store")
                if again is None:
                    continue
                track = again
            current.append(track)
        return current

    def search_index(self) -> tuple[fp.Index, list[LibraryTrack]] | None:
        """The search index over every member, and the members in track-id order; None for an empty library.
        Built from the members' fingerprints into the store on first use after a change; read back after.

        Stored entries found damaged while read (a chunk failing its checksum) heal here, as stage entries do in
        a run: they are forgotten, made again (a fingerprint from its file, or its member left out; the index
        from the fingerprints) and read again, each once; damage found again in a remade entry is a retryable
        internal fault."""
        healed: set[str] = set()
        while True:
            try:
                return self._search_index()
            except _Damaged as damage:
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

    def _search_index(self) -> tuple[fp.Index, list[LibraryTrack]] | None:
        members = self.refreshed(self.tracks())
        if not members:
            return None
        key = index_key(members)
        cached = _LOADED.get(key)
        if cached is not None:
            return cached, members
        if self.store.get(key) is None:  # to be built, from the fingerprints: those gone are made again or left out
            members = self.searchable(members)
            if not members:
                return None
            key = index_key(members)

        def compute(out: EntryWriter) -> None:
            quads, broken = {}, []
            for tid, track in enumerate(members):
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
                raise _Damaged([t.fingerprint for t, _ in broken], f"fingerprint of {titles}") from broken[0][1]
            index = fp.build_index(quads)
            out.put_array("keys", index.keys)
            out.put_array("track", index.track)
            write_quads(out, index.quads, "quads.")
            out.attrs.update(tracks=[t.digest for t in members])

        self.store.produce(key, "search_index", compute, source=f"library:{self.name}")
        entry = self.store.get(key)
        if entry is None:
            raise AnalysisError(
                ErrorCode.INTERNAL, f"library {self.name}: the search index went from the store", retryable=True
            )
        try:
            index = fp.Index(entry["keys"][...], entry["track"][...], read_quads(entry, "quads."))
        except Exception as exc:  # damage (then forgotten by `verify`), or an entry made again meanwhile: read again
            self.store.verify(key)
            raise _Damaged([key], "search index") from exc
        _LOADED.clear()  # one index in memory per process: a large library is large
        _LOADED[key] = index
        return index, members


class _Damaged(Exception):
    """Library entries (`keys`) that failed to read while the search index was made or read, and were forgotten
    when damaged: `Library.search_index` makes them again (or reads them again, when another process had made them
    again meanwhile)."""

    def __init__(self, keys: list[str], what: str) -> None:
        super().__init__(what)
        self.keys, self.what = keys, what


def index_key(members: list[LibraryTrack]) -> str:
    """The store key of the search index over `members` (made from their fingerprints' keys)."""
    return entry_key("library", "search_index", fp.VERSION, {}, {t.digest: t.fingerprint for t in members})


_LOADED: dict[str, fp.Index] = {}
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


def window_quads(audio: np.ndarray, sr: int, spans: list[tuple[float, float]]) -> fp.Quads:
    """The query quads of the spans (seconds of `audio`) of one track, with times on `audio`'s clock; spans
    shorter than a second give none."""
    parts = []
    for start, end in spans:
        a, b = int(start * sr), int(end * sr)
        if b - a < sr:
            continue
        quads = fp.fingerprint(audio[a:b], sr)
        parts.append(replace(quads, root_sec=quads.root_sec + np.float32(a / sr)))
    return fp.concat(parts)


def iter_paths(paths: list[Path], suffixes: tuple[str, ...]) -> Iterator[Path]:
    """The files named, and those under the folders named whose suffix is one of `suffixes`, sorted."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        else:
            yield path
