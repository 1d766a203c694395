"""The stage graph, declared once: every step in the order a single thread would run them.

Everything else is derived from this list: the Prefect tasks and their wiring (`flows.tasks`), cache
keys (each stage's inputs are its compute function's parameters named after earlier stages), what `refresh`
recomputes (`dependents`), `offbeat cache show` and `rerun` (`runner.current_keys`), the benchmark's
stage-by-stage run (`runner.run_all`) and the `StageName` choices of the flow parameter.

Adding a stage: write `offbeat/pipeline/stages/<name>.py` declaring `STAGE`, import it and list it below.
"""

from __future__ import annotations

from typing import Any, Literal

from offbeat.pipeline import code, context
from offbeat.pipeline.stage import Sink, Stage, Step
from offbeat.pipeline.stages import (
    activations,
    beats,
    decode,
    description,
    drum_beats,
    envelopes,
    export_stems,
    identify,
    library_plays,
    partition,
    segment,
    separate,
    track_features,
    trim,
)

GRAPH: tuple[Step, ...] = (
    decode.STAGE,
    trim.STAGE,
    activations.STAGE,
    separate.STAGE,
    envelopes.STAGE,
    beats.STAGE,
    drum_beats.STAGE,
    export_stems.SINK,
    description.STAGE,
    library_plays.STAGE,
    partition.STAGE,
    segment.STAGE,
    track_features.STAGE,
    identify.STAGE,
)

# Stored (cached) stages and sinks by name. Looked up at run time, so a test may swap a declaration.
STAGES: dict[str, Stage] = {step.name: step for step in GRAPH if isinstance(step, Stage)}
SINKS: dict[str, Sink] = {step.name: step for step in GRAPH if isinstance(step, Sink)}

# The stored stages by name, for flow parameters (the Prefect UI offers them as choices).
StageName = Literal[tuple(STAGES)]  # type: ignore[valid-type]


def steps() -> list[Step]:
    """The graph in order, with the current declaration of each stage."""
    return [STAGES.get(step.name, step) for step in GRAPH]


def dependents(names: set[str]) -> set[str]:
    """The named stages and every stage that reads from them, directly or not."""
    result = set(names)
    for step in steps():  # in order: a step's inputs come before it
        if isinstance(step, Stage) and result.intersection(step.inputs):
            result.add(step.name)
    return result


def needed_by(name: str) -> tuple[str, ...]:
    """The stored stages `name` reads, directly or not, and itself, in graph order (what a run of it alone needs)."""
    needed = {name}
    for step in reversed(steps()):  # in reverse order: a step's readers come after it
        if step.name in needed and isinstance(step, Stage):
            needed |= set(step.inputs)
    return tuple(step.name for step in steps() if step.name in needed and isinstance(step, Stage))


def check_graph(graph: tuple[Step, ...] = GRAPH) -> None:
    """Refuse a graph whose steps read a stage declared after them (or none), or take unknown context."""
    seen: dict[str, Any] = {}
    for step in graph:
        if step.name in seen:
            raise ValueError(f"step {step.name} is declared twice")
        for name in step.inputs:
            if not isinstance(seen.get(name), Stage):
                raise ValueError(
                    f"{step.name} reads {name!r}, which is no stage declared before it "
                    f"(compute parameters are earlier stages or one of {', '.join(context.names())})"
                )
        if step.mapped_over is not None:
            over = seen.get(step.mapped_over)
            if step.mapped_over not in step.inputs or not isinstance(over, Stage) or over.items is None:
                raise ValueError(
                    f"{step.name} is mapped over {step.mapped_over!r}: it must read it, and that "
                    "stage must declare how many items its entry lists (`items`)"
                )
            if "track" not in step.arguments:
                raise ValueError(f"{step.name} is mapped over {step.mapped_over}, so it must take `track`")
        if any(not isinstance(seen.get(name), Stage) for name in step.after):
            raise ValueError(f"{step.name} waits for {step.after}, which must be stages declared before it")
        seen[step.name] = step


check_graph()


def read_code() -> None:
    """Read every stage's code identity now, in this thread (`code.source_digest` keeps it), so that task threads
    never parse source side by side (CPython 3.11's parser is not thread-safe). About a second, once a process."""
    import pkgutil

    from offbeat import dsp

    signal_code = [f"offbeat.dsp.{m.name}" for m in pkgutil.iter_modules(dsp.__path__)]  # `path_constants` reads
    for module in [stage.compute.__module__ for stage in STAGES.values()] + signal_code:
        code.source_digest(module)
