"""Track library commands: library add, ls, rm (`offbeat.library`)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from offbeat.cli.app import library_app

LibraryOption = Annotated[
    str | None, typer.Option("--library", "-l", help="library name (default from settings)", show_default=False)
]
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".aif", ".aiff", ".wma")


def _library(name: str | None, *, create: bool):  # type: ignore[no-untyped-def]
    """The named library (settings' default), or None when nothing was ever stored and `create` is false."""
    from offbeat.library import Library, check_name
    from offbeat.settings import get_settings
    from offbeat.storage import open_existing_store, open_store

    name = name or get_settings().library
    try:
        check_name(name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    store = open_store() if create else open_existing_store()
    settings = get_settings()
    return (
        None
        if store is None
        else Library(
            store, name, sample_rate=settings.analysis_sample_rate, ffmpeg=settings.ffmpeg_path, settings=settings
        )
    )


@library_app.command("add")
def library_add(
    paths: Annotated[list[Path], typer.Argument(help="audio files, or folders searched for audio files")],
    library: LibraryOption = None,
    title: Annotated[str, typer.Option(help="title for a single file (default: its tags, else its name)")] = "",
    artist: Annotated[str, typer.Option(help="artist for a single file (default: its tags)")] = "",
) -> None:
    """Fingerprint reference tracks into the library. A file that cannot be read is reported and skipped; the
    exit status is 1 when any was."""
    from offbeat.errors import AnalysisError
    from offbeat.library import iter_paths

    files = list(iter_paths(paths, AUDIO_SUFFIXES))
    if (title or artist) and len(files) != 1:
        raise typer.BadParameter("--title and --artist name one file's tags: give one file")
    lib, failed = _library(library, create=True), 0
    for n, path in enumerate(files, start=1):
        started = time.perf_counter()
        try:
            track, new = lib.add(path, title=title, artist=artist)
        except AnalysisError as exc:
            failed += 1
            typer.echo(f"[{n}/{len(files)}] {path}: not added [{exc.code}] {exc.message}", err=True)
            continue
        state = "added" if new else "already in the library"
        typer.echo(
            f"[{n}/{len(files)}] {track.digest[:12]} {track.title!r} ({track.duration_sec:.0f} s, {track.quads} quads) "
            f"{state} in {time.perf_counter() - started:.1f} s",
            err=True,
        )
    update = lib.update_index()  # the batch indexed into one small segment: no rebuild of the library's index
    typer.echo(
        f"library {lib.name}: {len(lib.tracks())} tracks; search index: {update.indexed} indexed, "
        f"{update.merged} segments merged, {update.segments} segments",
        err=True,
    )
    if failed:
        raise typer.Exit(1)


@library_app.command("ls")
def library_ls(
    library: LibraryOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document instead of a table")] = False,
) -> None:
    """The library's tracks: id, duration, title, artist."""
    from offbeat.errors import loggable

    lib = _library(library, create=False)
    tracks = [] if lib is None else lib.tracks()
    if as_json:
        typer.echo(json.dumps([t.__dict__ for t in tracks], indent=2))
        return
    for t in tracks:  # tag text is the file's: escaped, so no control sequence reaches the terminal or forges a row
        artist = f" - {loggable(t.artist)}" if t.artist else ""
        typer.echo(f"{t.digest[:12]}  {t.duration_sec:7.1f} s  {loggable(t.title)}{artist}")
    typer.echo(f"{len(tracks)} tracks", err=True)


@library_app.command("rm")
def library_rm(
    refs: Annotated[list[str], typer.Argument(help="track ids (at least 6 leading characters), titles or file names")],
    library: LibraryOption = None,
) -> None:
    """Take tracks out of the library; exit status 1 when a reference matches no track or several."""
    lib = _library(library, create=False)
    missing = 0
    for ref in refs:
        found = [] if lib is None else lib.find(ref)
        if len(found) != 1:
            missing += 1
            what = "no track" if not found else f"{len(found)} tracks (give more of the id)"
            typer.echo(f"{ref}: matches {what}", err=True)
            continue
        lib.remove(found)
        typer.echo(f"removed {found[0].digest[:12]} {found[0].title!r}", err=True)
    if lib is not None and len(refs) > missing:
        lib.update_index()  # segments now mostly tombstones are rewritten
    if missing:
        raise typer.Exit(1)
