"""The run's context: what a compute function may take besides its inputs, each from a registered provider.

A compute function's parameters that are not earlier stages must be named here. A stage that needs something new
from the run (a side channel, a shared resource) registers a provider with `provide` in its own module or here,
and nothing else changes: the runner asks the providers for exactly the names a compute function takes.
Providers marked `keyed` are job inputs: their values enter the stage's key (`stage.job_inputs`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from offbeat.pipeline.runner import Run
    from offbeat.pipeline.stage import Stage


@dataclass(frozen=True)
class Provider:
    """Gives one context value for a stage's run on one track (None for a whole-mix stage)."""

    name: str
    get: Callable[[Run, Stage, int | None], Any]
    keyed: bool = False  # a job input: part of the key


PROVIDERS: dict[str, Provider] = {}


def provide(name: str, get: Callable[[Run, Stage, int | None], Any], keyed: bool = False) -> None:
    """Register (or replace) the provider of context value `name`."""
    PROVIDERS[name] = Provider(name, get, keyed)


def names() -> tuple[str, ...]:
    """Every context name a compute function may take."""
    return tuple(PROVIDERS)


def keyed() -> tuple[str, ...]:
    """The context names that are job inputs, part of the key."""
    return tuple(name for name, provider in PROVIDERS.items() if provider.keyed)


def values(run: Run, stage: Stage, track: int | None, wanted: tuple[str, ...]) -> dict[str, Any]:
    """The context values named in `wanted` (the compute function's non-input parameters)."""
    return {name: PROVIDERS[name].get(run, stage, track) for name in wanted if name in PROVIDERS}


def _library(run: Run, stage: Stage, track: int | None) -> Callable[[str], Any]:
    """The search index of a track library by name, from the run's store, built when first asked for."""
    from offbeat.library import Library  # the library's fingerprint code loads only for stages that search

    settings = run.settings
    return lambda name: Library(
        run.store, name, sample_rate=settings.analysis_sample_rate, ffmpeg=settings.ffmpeg_path
    ).search_index()


# `params`: the stage's key parameters (from settings); `options`: settings that do not shape the output (tool
# paths, thread counts, refusal limits); `source_path`: the file (first stage only); `cues`, `track`: job inputs,
# part of the key; `progress`, `log`: side channels to the caller (the Prefect UI); `library`: the search index
# of a track library by name, for a stage whose `params` hold that library's revision.
provide("params", lambda run, stage, track: stage.params(run.settings))
provide("options", lambda run, stage, track: stage.options(run.settings))
provide("source_path", lambda run, stage, track: run.source_path)
provide("cues", lambda run, stage, track: run.cues, keyed=True)
provide("track", lambda run, stage, track: track, keyed=True)
provide("progress", lambda run, stage, track: run.progress(stage.name))
provide("log", lambda run, stage, track: run.log)
provide("library", _library)
