"""Artifact store commands: cache ls, show, gc."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from offbeat.cli.app import cache_app

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_SPANS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _bytes(text: str) -> int:
    """'500M', '10G', '123' (bytes)."""
    number, unit = text.strip().upper().removesuffix("B"), ""
    if number and number[-1] in _UNITS:
        number, unit = number[:-1], number[-1]
    try:
        return int(float(number) * _UNITS[unit])
    except ValueError as exc:
        raise typer.BadParameter(f"not a size: {text} (e.g. 500M, 10G)") from exc


def _seconds(text: str) -> float:
    """'90s', '45m', '12h', '30d', '2w'."""
    text = text.strip().lower()
    try:
        return float(text[:-1]) * _SPANS[text[-1]] if text and text[-1] in _SPANS else float(text)
    except ValueError as exc:
        raise typer.BadParameter(f"not a duration: {text} (e.g. 45m, 12h, 30d)") from exc


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _age(seconds: float) -> str:
    for unit, span in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= span:
            return f"{seconds / span:.1f}{unit}"
    return f"{seconds:.0f}s"


@cache_app.command("ls")
def cache_ls() -> None:
    """Entries per source: stage, key, size, age and time since last use. A store not created yet lists nothing
    and stays uncreated (a read does not write)."""
    from offbeat.settings import get_settings
    from offbeat.storage import open_existing_store

    store, now = open_existing_store(), time.time()
    if store is None:
        typer.echo(f"0 entries, 0 B in {get_settings().artifact_store} (no store there yet)")
        return
    names = store.source_names()
    by_source: dict[str, list[dict[str, Any]]] = {}
    for record in store.entries():
        by_source.setdefault(record.get("source", ""), []).append(record)
    total = 0
    for source, records in sorted(by_source.items(), key=lambda item: names.get(item[0], item[0])):
        size = sum(r["nbytes"] for r in records)
        total += size
        typer.echo(f"{source[:12]}  {names.get(source, '(unknown file)')}  {len(records)} entries, {_size(size)}")
        for r in sorted(records, key=lambda r: r["created"]):
            typer.echo(
                f"  {r['stage']:<15} {r['key'][:12]}  {_size(r['nbytes']):>10}  age {_age(now - r['created']):>6}"
                f"  used {_age(now - store.last_used(r)):>6} ago"
            )
    typer.echo(f"{sum(len(r) for r in by_source.values())} entries, {_size(total)} in {store.root}")


@cache_app.command("show")
def cache_show(source: Annotated[Path, typer.Argument(help="audio file")]) -> None:
    """Which stages of a file are cached with the current settings and versions (a run without cue hints)."""
    from offbeat.pipeline.runner import current_keys
    from offbeat.settings import get_settings
    from offbeat.storage import open_existing_store

    if not source.is_file():
        typer.echo(f"error: no such file: {source}", err=True)
        raise typer.Exit(1)
    store = open_existing_store()
    if store is None:
        typer.echo(f"{source}: nothing cached (no store at {get_settings().artifact_store} yet)")
        return
    digest = store.source_digest(source)
    keys = current_keys(store, digest, get_settings())
    others = {r["key"]: r for r in store.entries() if r.get("source") == digest}
    typer.echo(f"{source} (content {digest[:12]})")
    for stage, key in keys.items():
        record = store.record(f"entry:{key}") if store.get(key) is not None else None
        where = f"  computed on {record.get('host', '?')} (pid {record.get('pid', '?')})" if record else ""
        typer.echo(f"  {stage:<18} {'cached' if record else 'missing':<8} {key[:12]}{where}")
    stale = [r for key, r in others.items() if key not in keys.values()]
    if stale:
        typer.echo(
            f"  and {len(stale)} entries under other settings, versions or cue hints: "
            + ", ".join(sorted({r["stage"] for r in stale}))
        )


@cache_app.command("gc")
def cache_gc(
    max_size: Annotated[str | None, typer.Option(help="shrink the store to this size (e.g. 20G)")] = None,
    older_than: Annotated[str | None, typer.Option(help="remove entries unused for this long (e.g. 30d)")] = None,
    grace: Annotated[str, typer.Option(help="never remove entries used this recently (running analyses)")] = "1h",
) -> None:
    """Remove least recently used entries, safely while analyses run (entries in use are kept). The track
    libraries' fingerprints are kept (`offbeat library rm` removes those no library holds)."""
    from offbeat.library import KEPT_STAGES
    from offbeat.storage import ArtifactStore, open_store

    if max_size is None and older_than is None:
        raise typer.BadParameter("give --max-size and/or --older-than")
    grace_sec = _seconds(grace)
    if grace_sec < ArtifactStore.MIN_GRACE_SEC:
        raise typer.BadParameter(
            f"--grace {grace} is too short: readers renew an entry's use time once a minute, so entries a running "
            f"analysis reads may look unused for that long; at least {ArtifactStore.MIN_GRACE_SEC:.0f}s",
            param_hint="--grace",
        )
    store = open_store()
    removed = store.collect_garbage(
        max_bytes=_bytes(max_size) if max_size else None,
        older_than_sec=_seconds(older_than) if older_than else None,
        grace_sec=grace_sec,
        keep_stages=KEPT_STAGES,
    )
    left = sum(r["nbytes"] for r in store.entries())
    typer.echo(f"removed {len(removed)} entries ({_size(sum(r['nbytes'] for r in removed))}); {_size(left)} left")
