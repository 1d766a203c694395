"""What a stage is: one declaration (name, version, parameters, compute function) from which its inputs,
its cache key and its place in the graph all follow.

Inputs are not listed: they are the compute function's parameters named after other stages (the way Dagster
infers asset dependencies), so the key cannot leave out an entry the code reads. The other parameters a compute
function may take are the run's context (`CONTEXT`). Settings reach a compute function only through `params`,
the dict that is also hashed into the key, so a setting cannot shape the output without reaching the key; the
public constants of the `offbeat.dsp` modules a stage uses are added to the key automatically
(`dsp_constants`), so a tuned constant recomputes what it shapes without anyone listing it.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import sys
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from offbeat.settings import Settings
from offbeat.storage import ArtifactStore, Entry

# Parameters of a compute function that are not stage inputs. `params`: the stage's key parameters (from
# settings); `options`: settings that do not shape the output (tool paths, thread counts, refusal limits);
# `source_path`: the file (first stage only); `cues`, `track`: job inputs, part of the key; `progress`, `log`:
# side channels to the caller (the Prefect UI); `library`: the search index of a track library by name, from the
# run's store (`offbeat.library.Library.search_index`), for a stage whose `params` hold that library's revision.
CONTEXT = ("params", "options", "source_path", "cues", "track", "progress", "log", "library")
JOB_INPUTS = ("cues", "track")

Params = Callable[[Settings], dict[str, Any]]
Progress = Callable[[float], None] | None  # fraction done, for long stages


def no_params(settings: Settings) -> dict[str, Any]:
    """For stages shaped by nothing but their inputs and code."""
    return {}


@dataclass(frozen=True)
class Stage:
    """A cached stage: `compute(out, **inputs_and_context)` writes one store entry through `out`.

    `version`: bump it when the code changes the output (constants and settings are in the key already).
    `check`: runs on every run, cached or not, with the entry and the options (a refusal that depends on a
    setting outside the key, like the minimum duration).
    `after`: earlier stages that must have succeeded before this one starts, without being read (so not in its
    key): `separate` waits for `trim`, which refuses silent audio, instead of separating it for nothing.
    `items`: how many items (tracks) this stage's entry lists, for the stages mapped over it.
    `mapped_over`: the input stage this one is mapped over, one run per item of its entry; the compute function
    takes the item's index as `track`.
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

    @property
    def arguments(self) -> tuple[str, ...]:
        """The compute function's parameter names after `out`."""
        return tuple(inspect.signature(self.compute).parameters)[1:]

    @property
    def inputs(self) -> tuple[str, ...]:
        """Upstream stages, by name: every argument that is not run context."""
        return tuple(name for name in self.arguments if name not in CONTEXT)

    @property
    def per_track(self) -> bool:
        """Mapped once per item (track) of the entry of `mapped_over`."""
        return self.mapped_over is not None

    def key_params(self, settings: Settings) -> dict[str, Any]:
        """Everything besides inputs and job inputs that goes into the key."""
        constants = dsp_constants(self.compute.__module__)
        return {**self.params(settings), **({"dsp": constants} if constants else {})}


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

_CONSTANT = re.compile(r"^[A-Z][A-Z0-9_]*$")


def _plain(value: Any) -> Any:
    """A JSON-ready copy of a constant, or None when it is not plain data (then it is left out)."""
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | list):
        items = [_plain(v) for v in value]
        return None if any(i is None for i in items) else items
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # a frozen record of constants
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        entries = {k: _plain(v) for k, v in value.items()}
        return None if any(v is None for v in entries.values()) else entries
    return None


def _dsp_modules(module: types.ModuleType) -> set[str]:
    """`offbeat.dsp` modules `module` uses: imported as modules or through names imported from them."""
    found = set()
    for value in vars(module).values():
        name = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
        if isinstance(name, str) and name.startswith("offbeat.dsp.") and name != module.__name__:
            found.add(name)
    return found


@cache
def dsp_constants(module_name: str) -> dict[str, dict[str, Any]]:
    """Public constants (UPPER_CASE plain data) of every `offbeat.dsp` module the module uses, directly or
    through other dsp modules, by module: the part of a stage's key that follows its signal code.

    A module lists in `NOT_TUNING` the constants that leave every output as it is (block sizes and other memory
    or speed settings): they stay out, so changing one recomputes nothing. Following imports may take in a
    constant the stage never reaches; that costs a needless recompute, never a stale result."""
    module = sys.modules.get(module_name) or importlib.import_module(module_name)
    pending, seen = _dsp_modules(module), set()
    while pending:
        name = pending.pop()
        seen.add(name)
        pending |= _dsp_modules(importlib.import_module(name)) - seen
    constants: dict[str, dict[str, Any]] = {}
    for name in sorted(seen):
        kept = _own_constants(name)
        if kept:
            constants[name.removeprefix("offbeat.dsp.")] = kept
    return constants


def _own_constants(name: str) -> dict[str, Any]:
    """The public constants of one module, without its NOT_TUNING ones."""
    namespace = vars(sys.modules.get(name) or importlib.import_module(name))
    skipped = set(namespace.get("NOT_TUNING", ())) | {"NOT_TUNING"}
    values = {k: _plain(v) for k, v in namespace.items() if _CONSTANT.match(k) and k not in skipped}
    return {k: v for k, v in values.items() if v is not None}


def path_constants(module_name: str) -> dict[str, dict[str, Any]]:
    """The constants of an `offbeat.dsp` module and of those it uses, for a stage to put in its `params` where
    only one of its paths (chosen by a setting) runs that module: imported there rather than at the stage's top,
    the module then keys that path alone, and the other path's key stays what it was."""
    return {module_name.removeprefix("offbeat.dsp."): _own_constants(module_name), **dsp_constants(module_name)}


def job_inputs(stage: Stage, cues: list[tuple[str, float]] | None, track: int | None) -> dict[str, Any]:
    """The job inputs a stage takes, as they enter its key (no cues: an empty list)."""
    given: Mapping[str, Any] = {"cues": [list(cue) for cue in cues or []], "track": track}
    return {name: given[name] for name in JOB_INPUTS if name in stage.arguments}
