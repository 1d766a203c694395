"""Running stages through the store, without Prefect: look an entry up by its key, compute it when missing.

Both ways of running the graph walk it with `offbeat.pipeline.walk`: the Prefect flow (`flows.tasks`) with
tasks that call `Run.stage`, the benchmark and the fast tests with `run_all`, in this thread. Stage tasks hand
each other `StageRef`s, references to stored entries, never arrays.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offbeat.errors import AnalysisError, ErrorCode, bounded
from offbeat.media.decode import check_file
from offbeat.pipeline import context, registry
from offbeat.pipeline.stage import Progress, SinkContext, SinkInput, Stage, job_inputs
from offbeat.pipeline.walk import Sequential, walk
from offbeat.settings import Settings
from offbeat.storage import ArtifactStore, Entry, EntryWriter, entry_key
from offbeat.storage.keys import canonical

Cues = list[tuple[str, float]]


@dataclass(frozen=True)
class StageRef:
    """What tasks hand each other: a reference to a stored entry, never the arrays themselves."""

    stage: str
    key: str
    source: str  # content digest of the source file
    cached: bool
    seconds: float
    outputs: dict[str, str] = field(default_factory=dict)  # files a sink wrote outside the store
    summary: str | None = None  # digest of what readers depend on, where the stage declares it (`Stage.summary`)

    @property
    def identity(self) -> str:
        """What the stages reading this entry are keyed on: its summary's digest, else its key."""
        return self.summary or self.key


def digest(value: Any) -> str:
    """Digest of plain data (a stage's summary, a track's item), as a reader's key holds it."""
    return hashlib.blake2b(canonical(value).encode(), digest_size=16).hexdigest()


def summarized(stage: Stage, entry: Entry) -> str | None:
    """The digest of what `stage`'s readers depend on in its entry, when the stage declares it."""
    return None if stage.summary is None else digest(stage.summary(entry))


def reader_identities(stage: Stage, upstream: Mapping[str, StageRef], store: ArtifactStore, track: int | None):
    """What `stage`'s key holds of each input: the input's identity, or for the stage a mapped stage runs over,
    the digest of its own item (a track's span), so a track that did not move keeps its key."""
    found = {name: upstream[name].identity for name in stage.inputs}
    over = registry.STAGES.get(stage.mapped_over or "")
    if over is not None and over.item is not None and track is not None:
        found[over.name] = digest(over.item(read(store, upstream[over.name]), track))
    return found


def stage_key(
    stage: Stage,
    source: str,
    settings: Settings,
    upstream: Mapping[str, str],
    cues: Cues | None = None,
    track: int | None = None,
) -> str:
    """The entry key of `stage` for a source, given its inputs' identities (by stage name) and the job inputs."""
    params = {**stage.key_params(settings), **job_inputs(stage, cues, track)}
    return entry_key(source, stage.name, stage.version, params, {name: upstream[name] for name in stage.inputs})


def combined(name: str, refs: list[StageRef]) -> StageRef:
    """One reference standing for a mapped stage's runs (one per track): its key digests theirs."""
    source = refs[0].source if refs else ""
    key = entry_key(source, name, registry.STAGES[name].version, {}, {str(i): r.key for i, r in enumerate(refs)})
    return StageRef(name, key, source, all(r.cached for r in refs), sum(r.seconds for r in refs))


class StoreDamaged(AnalysisError):
    """Stored entries a stage read turned out damaged (a chunk failing its checksum, data gone); they have been
    forgotten, so running the graph again recomputes them. The flow does that once within the same run."""

    def __init__(self, stages: list[str], stage: str | None, cause: object) -> None:
        names = ", ".join(stages)
        message = f"stored {names} output was damaged or gone and has been forgotten ({bounded(cause)})"
        super().__init__(ErrorCode.INTERNAL, message, stage=stage, retryable=True)
        self.stages = stages


def read(store: ArtifactStore, ref: StageRef) -> Entry:
    """The entry behind a reference; losing it between stages is a retryable internal fault."""
    entry = store.get(ref.key)
    if entry is None:
        raise StoreDamaged([ref.stage], ref.stage, f"entry {ref.key} vanished")
    return entry


def damaged(store: ArtifactStore, refs: Mapping[str, StageRef]) -> list[str]:
    """The referenced entries that fail a full read (every chunk's checksum); the store forgets them."""
    return [name for name, ref in refs.items() if not store.verify(ref.key)]


@contextmanager
def healing(store: ArtifactStore, refs: Mapping[str, StageRef], stage: str | None) -> Iterator[None]:
    """Turn a failure while reading `refs` into StoreDamaged when one of them is damaged (and forgotten now);
    any other failure, and the refusals of bad input, pass through unchanged."""
    try:
        yield
    except AnalysisError:
        raise
    except Exception as exc:
        broken = damaged(store, refs)
        if broken:
            raise StoreDamaged(broken, stage, exc) from exc
        raise


@dataclass
class Run:
    """One analysis of one file: the store, the settings, the job inputs and which stages to recompute."""

    store: ArtifactStore
    settings: Settings
    source_path: Path
    cues: Cues | None = None
    refresh: frozenset[str] = frozenset()  # stages to recompute (their dependents included)
    progress: Callable[[str], Progress] = lambda name: None  # progress callback per stage
    log: Callable[[str], None] = lambda message: None  # remarks of a stage (unmeasured features)

    def source(self) -> str:
        """The source file's content digest, after refusing what is no readable file."""
        check_file(self.source_path)
        return self.store.source_digest(self.source_path)

    def stage(self, name: str, upstream: Mapping[str, StageRef], track: int | None = None) -> StageRef:
        """Read stage `name`'s entry back, or compute and commit it (always, when it is to be refreshed); under the
        entry's lease (`ArtifactStore.produce`), so processes and hosts sharing the store compute it once."""
        stage = registry.STAGES[name]
        started = time.perf_counter()
        inputs = {n: upstream[n] for n in stage.inputs}
        entries = {n: read(self.store, ref) for n, ref in inputs.items()}
        source = upstream[stage.inputs[0]].source if stage.inputs else self.source()
        with healing(self.store, inputs, name):
            identities = reader_identities(stage, upstream, self.store, track)
        key = stage_key(stage, source, self.settings, identities, self.cues, track)
        options = stage.options(self.settings)
        if name in self.refresh:
            self.store.invalidate(key)

        def compute(out: EntryWriter) -> None:
            given = {**context.values(self, stage, track, stage.arguments), **entries}
            stage.compute(out, **{arg: given[arg] for arg in stage.arguments})

        try:  # computed here, or read back: found, or computed meanwhile by another process holding its lease
            with healing(self.store, inputs, name):
                computed = self.store.produce(key, name, compute, source=source)
        except AnalysisError as exc:
            exc.stage = exc.stage or name
            raise
        entry = read(self.store, StageRef(name, key, source, False, 0.0))
        if stage.check is not None:
            stage.check(entry, options)
        summary = summarized(stage, entry)
        return StageRef(name, key, source, not computed, time.perf_counter() - started, summary=summary)

    def sink(self, name: str, upstream: Mapping[str, StageRef]) -> StageRef:
        """Run a sink; its reference carries the files it wrote, and `cached` when all were up to date."""
        sink = registry.SINKS[name]
        started = time.perf_counter()
        inputs = {n: upstream[n] for n in sink.inputs}
        context = SinkContext(self.store, self.settings, self.source_path)
        with healing(self.store, inputs, name):
            given = {n: SinkInput(read(self.store, ref), ref.source, not ref.cached) for n, ref in inputs.items()}
            files, reused = sink.run(context, **given)
        first = upstream[sink.inputs[0]]
        return StageRef(name, first.key, first.source, reused, time.perf_counter() - started, files)

    def items(self, step: Stage, upstream: Mapping[str, StageRef]) -> int:
        """How many runs the mapped stage `step` has: the items its `mapped_over` stage's entry lists."""
        over = registry.STAGES[step.mapped_over or ""]
        assert over.items is not None  # checked by registry.check_graph
        return over.items(read(self.store, upstream[over.name]))


def run_all(run: Run, measure: Callable[[str, Callable[[], Any]], Any] | None = None) -> dict[str, StageRef]:
    """Every step of the graph in this thread, each as soon as its inputs are done (per-track stages track by
    track); returns the references by step name, a per-track stage's as one combined reference.
    `measure(name, work)` may wrap each step (the benchmark times it)."""
    refs, _ = walk(run.items, Sequential(run, measure))
    return refs


def current_keys(store: ArtifactStore, source: str, settings: Settings) -> dict[str, str]:
    """The keys a run without cue hints would use now, stage by stage, as far as the stored entries tell: a stage
    whose readers are keyed on its entry's summary (or items) lists its readers once that entry exists;
    per-track keys are listed as `track_features:<i>`."""
    keys: dict[str, str] = {}
    refs: dict[str, StageRef] = {}
    for stage in registry.STAGES.values():
        if not all(name in refs for name in stage.inputs):
            continue
        identities = {name: refs[name].identity for name in stage.inputs}
        if not stage.per_track:
            keys[stage.name] = stage_key(stage, source, settings, identities)
            entry = store.get(keys[stage.name])
            if stage.summary is None or entry is not None:
                summary = summarized(stage, entry) if entry is not None else None
                refs[stage.name] = StageRef(stage.name, keys[stage.name], source, True, 0.0, summary=summary)
            continue
        over = registry.STAGES[stage.mapped_over or ""]
        entry = store.get(keys[over.name])
        if entry is None or over.items is None:
            continue
        per_track = []
        for index in range(over.items(entry)):
            mine = {**identities, **({over.name: digest(over.item(entry, index))} if over.item else {})}
            keys[f"{stage.name}:{index}"] = stage_key(stage, source, settings, mine, track=index)
            per_track.append(StageRef(stage.name, keys[f"{stage.name}:{index}"], source, True, 0.0))
        refs[stage.name] = combined(stage.name, per_track)
    return keys
