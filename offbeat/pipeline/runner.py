"""Running stages through the store, without Prefect: look an entry up by its key, compute it when missing.

The Prefect flow (`flows.analyze`) calls `Run.stage` from its tasks; the benchmark and the fast tests
call `run_all`, the same stages in order in one thread. Stage tasks hand each other `StageRef`s, references to
stored entries, never arrays.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offbeat.errors import AnalysisError, ErrorCode, bounded
from offbeat.library import Library
from offbeat.media.decode import check_file
from offbeat.pipeline import registry
from offbeat.pipeline.stage import Progress, Sink, SinkContext, SinkInput, Stage, job_inputs
from offbeat.settings import Settings
from offbeat.storage import ArtifactStore, Entry, EntryWriter, entry_key

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


def stage_key(
    stage: Stage,
    source: str,
    settings: Settings,
    upstream: Mapping[str, str],
    cues: Cues | None = None,
    track: int | None = None,
) -> str:
    """The entry key of `stage` for a source, given its inputs' keys (by stage name) and the job inputs."""
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
        keys = {n: upstream[n].key for n in stage.inputs}
        key = stage_key(stage, source, self.settings, keys, self.cues, track)
        options = stage.options(self.settings)
        if name in self.refresh:
            self.store.invalidate(key)

        def compute(out: EntryWriter) -> None:
            context: dict[str, Any] = {
                "params": stage.params(self.settings),
                "options": options,
                "source_path": self.source_path,
                "cues": self.cues,
                "track": track,
                "progress": self.progress(name),
                "log": self.log,
                "library": lambda name: Library(
                    self.store, name, sample_rate=self.settings.analysis_sample_rate, ffmpeg=self.settings.ffmpeg_path
                ).search_index(),
                **entries,
            }
            stage.compute(out, **{arg: context[arg] for arg in stage.arguments})

        try:  # computed here, or read back: found, or computed meanwhile by another process holding its lease
            with healing(self.store, inputs, name):
                computed = self.store.produce(key, name, compute, source=source)
        except AnalysisError as exc:
            exc.stage = exc.stage or name
            raise
        if stage.check is not None:
            stage.check(read(self.store, StageRef(name, key, source, False, 0.0)), options)
        return StageRef(name, key, source, not computed, time.perf_counter() - started)

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
    """Every step of the graph in registry order in this thread (per-track stages track by track); returns the
    references by step name, a per-track stage's as one combined reference. `measure(name, work)` may wrap each
    step (the benchmark times it)."""
    measure = measure or (lambda name, work: work())
    refs: dict[str, StageRef] = {}
    for step in registry.steps():
        if isinstance(step, Sink):
            refs[step.name] = measure(step.name, lambda s=step: run.sink(s.name, refs))
        elif step.per_track:
            count = run.items(step, refs)
            per_track = measure(step.name, lambda s=step, n=count: [run.stage(s.name, refs, i) for i in range(n)])
            refs[step.name] = combined(step.name, per_track)
        else:
            refs[step.name] = measure(step.name, lambda s=step: run.stage(s.name, refs))
    return refs


def current_keys(store: ArtifactStore, source: str, settings: Settings) -> dict[str, str]:
    """The keys a run without cue hints would use now, stage by stage; per-track keys (`track_features:<i>`)
    once the segment entry exists to tell how many tracks there are."""
    keys: dict[str, str] = {}
    for stage in registry.STAGES.values():
        if not stage.per_track:
            keys[stage.name] = stage_key(stage, source, settings, keys)
            continue
        over = registry.STAGES[stage.mapped_over or ""]
        entry = store.get(keys[over.name])
        for index in range(over.items(entry) if entry is not None and over.items is not None else 0):
            keys[f"{stage.name}:{index}"] = stage_key(stage, source, settings, keys, track=index)
    return keys
