"""What a stage is: one declaration (name, version, parameters, compute function) from which its inputs,
its cache key and its place in the graph all follow.

Inputs are not listed: they are the compute function's parameters named after other stages (the way Dagster
infers asset dependencies), so the key cannot leave out an entry the code reads. The other parameters a compute
function may take are the run's context (`offbeat.pipeline.context`: registered providers). Settings reach a
compute function only through `params`, the dict that is also hashed into the key, so a setting cannot shape the
output without reaching the key; the stage's code (the normalized source and constants of its module and of every
project module it reaches, `offbeat.pipeline.code`) is added to the key automatically, so a code change or a tuned
constant recomputes what it shapes without anyone bumping a version.

Readers are keyed on what they read of an entry where its stage says what that is (`summary`, and `item` for the
stages mapped over it): a change that leaves the track list as it was recomputes nothing below it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from offbeat.pipeline import code, context
from offbeat.settings import Settings
from offbeat.storage import ArtifactStore, Entry

Params = Callable[[Settings], dict[str, Any]]
Progress = Callable[[float], None] | None  # fraction done, for long stages


def no_params(settings: Settings) -> dict[str, Any]:
    """For stages shaped by nothing but their inputs and code."""
    return {}


@dataclass(frozen=True)
class Stage:
    """A cached stage: `compute(out, **inputs_and_context)` writes one store entry through `out`.

    `version`: a manual override, bumped only when something outside the code and settings changes the output (a
    model file replaced in place); code, constants and settings are in the key already.
    `check`: runs on every run, cached or not, with the entry and the options (a refusal that depends on a
    setting outside the key, like the minimum duration).
    `after`: earlier stages that must have succeeded before this one starts, without being read (so not in its
    key): `separate` waits for `trim`, which refuses silent audio, instead of separating it for nothing.
    `items`: how many items (tracks) this stage's entry lists, for the stages mapped over it.
    `mapped_over`: the input stage this one is mapped over, one run per item of its entry; the compute function
    takes the item's index as `track`.
    `summary`: what the stages reading this one depend on, as plain data read from its entry; readers are keyed
    on it instead of on this entry's key, so a change that leaves it equal recomputes nothing below.
    `item`: for the stages mapped over this one, what one item's run depends on (a track's span), plain data;
    each run is keyed on its own item.
    """

    name: str
    version: int
    compute: Callable[..., None]
    params: Params = no_params
    options: Params = no_params
    check: Callable[[Any, dict[str, Any]], None] | None = None
    after: tuple[str, ...] = ()
    items: Callable[[Any], int] | None = None
    mapped_over: str | None = None
    summary: Callable[[Any], Any] | None = None
    item: Callable[[Any, int], Any] | None = None

    @property
    def arguments(self) -> tuple[str, ...]:
        """The compute function's parameter names after `out`."""
        return tuple(inspect.signature(self.compute).parameters)[1:]

    @property
    def inputs(self) -> tuple[str, ...]:
        """Upstream stages, by name: every argument that is not run context."""
        return tuple(name for name in self.arguments if name not in context.names())

    @property
    def per_track(self) -> bool:
        """Mapped once per item (track) of the entry of `mapped_over`."""
        return self.mapped_over is not None

    def key_params(self, settings: Settings) -> dict[str, Any]:
        """Everything besides inputs and job inputs that goes into the key: the params and the code."""
        return {**self.params(settings), "code": code.identity(self.compute.__module__)}


@dataclass(frozen=True)
class SinkContext:
    """What a sink works with besides its inputs: where entries live, the settings, the file analyzed."""

    store: ArtifactStore
    settings: Settings
    source_path: Path


@dataclass(frozen=True)
class SinkInput:
    """A stored entry a sink reads, with its source's content digest and whether this run computed it."""

    entry: Entry
    source: str
    fresh: bool


@dataclass(frozen=True)
class Sink:
    """A step that writes outside the store (exported files); not cached, so not refreshable.

    `run(context, **inputs)` gets a `SinkContext` and a `SinkInput` per input (named after the stages), and returns
    (files by name, whether every file was already up to date)."""

    name: str
    run: Callable[..., tuple[dict[str, str], bool]]
    after: tuple[str, ...] = ()

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(inspect.signature(self.run).parameters)[1:]

    per_track = False
    mapped_over = None


Step = Stage | Sink


def path_constants(module_name: str) -> dict[str, Any]:
    """The code identity of a module (its source and constants, and those of what it reaches), for a stage to put
    in its `params` where only one of its paths (chosen by a setting) runs that module: imported there rather than
    at the stage's top, the module then keys that path alone, and the other path's key stays what it was."""
    return code.identity(module_name)


def job_inputs(stage: Stage, cues: list[tuple[str, float]] | None, track: int | None) -> dict[str, Any]:
    """The job inputs a stage takes, as they enter its key (no cues: an empty list)."""
    given: Mapping[str, Any] = {"cues": [list(cue) for cue in cues or []], "track": track}
    return {name: given[name] for name in context.keyed() if name in stage.arguments}
