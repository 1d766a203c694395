"""The one graph walker: every step of the registry started as soon as what it reads (and waits for) is done,
a mapped stage fanned out over its items, a sink run like a stage; what runs a step is an executor.

`Sequential` runs each step in this thread when it is started (the benchmark and the fast tests); the Prefect
executor (`flows.tasks`) submits tasks to the flow's task runner. Both hand back `StageRef`s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from offbeat.pipeline import registry
from offbeat.pipeline.stage import Sink, Step

if TYPE_CHECKING:
    from offbeat.pipeline.runner import Run, StageRef


class Stuck(RuntimeError):
    """Steps that never became ready (a graph that `registry.check_graph` should have refused)."""


class Executor(Protocol):
    """Starts a step's runs (one per track of a mapped stage, else one with track None) and waits for them."""

    def start(self, step: Step, tracks: list[int | None], upstream: dict[str, StageRef]) -> list[Any]:
        """Handles of the started runs, in the order of `tracks`."""
        ...

    def next_done(self, handles: list[Any]) -> tuple[Any, StageRef]:
        """One finished run among `handles` and its reference; raises the step's AnalysisError when it failed."""
        ...


@dataclass
class Sequential:
    """Runs each step in this thread when it is started; `measure(name, work)` may wrap each step (all of a mapped
    stage's runs together)."""

    run: Run
    measure: Callable[[str, Callable[[], Any]], Any] | None = None
    done: dict[int, StageRef] = field(default_factory=dict)

    def start(self, step: Step, tracks: list[int | None], upstream: dict[str, StageRef]) -> list[Any]:
        def work() -> list[StageRef]:
            if isinstance(step, Sink):
                return [self.run.sink(step.name, upstream)]
            return [self.run.stage(step.name, upstream, track) for track in tracks]

        refs = self.measure(step.name, work) if self.measure else work()
        handles = [object() for _ in refs]
        self.done.update({id(h): ref for h, ref in zip(handles, refs, strict=True)})
        return handles

    def next_done(self, handles: list[Any]) -> tuple[Any, StageRef]:
        return handles[0], self.done.pop(id(handles[0]))


def walk(
    items: Callable[[Step, dict[str, StageRef]], int], executor: Executor
) -> tuple[dict[str, StageRef], dict[str, list[StageRef]]]:
    """Run the graph (`items(step, refs)`: how many runs a mapped step has, `Run.items`). Returns the
    references by step name, in registry order (a mapped stage's as one combined reference), and each mapped
    stage's references by track. The first failed step's error is raised."""
    from offbeat.pipeline.runner import combined  # the runner uses this walker

    refs: dict[str, StageRef] = {}
    tracks: dict[str, list[StageRef | None]] = {}
    running: dict[int, tuple[Any, str, int | None]] = {}
    pending = registry.steps()
    while pending or running:
        ready = [s for s in pending if all(name in refs for name in (*s.inputs, *s.after))]
        for step in ready:
            pending.remove(step)
            upstream = {name: refs[name] for name in step.inputs}
            if step.per_track:
                count = items(step, refs)
                tracks[step.name] = [None] * count
                started = executor.start(step, list(range(count)), upstream) if count else []
                running.update({id(h): (h, step.name, i) for i, h in enumerate(started)})
                if count == 0:
                    refs[step.name] = combined(step.name, [])
            else:
                (handle,) = executor.start(step, [None], upstream)
                running[id(handle)] = (handle, step.name, None)
        if not running:
            if ready:  # steps that finished without a run (no tracks): look for what they unblocked
                continue
            break
        handle, ref = executor.next_done([h for h, _, _ in running.values()])
        _, name, index = running.pop(id(handle))
        if index is None:
            refs[name] = ref
            continue
        tracks[name][index] = ref
        if all(r is not None for r in tracks[name]):
            refs[name] = combined(name, [r for r in tracks[name] if r is not None])
    if pending:
        raise Stuck(f"steps never became ready: {[s.name for s in pending]}")
    by_track = {name: [r for r in found if r is not None] for name, found in tracks.items()}
    return {step.name: refs[step.name] for step in registry.GRAPH}, by_track
