"""The package's rooms and who may import whom: signal code below the pipeline, the pipeline below Prefect, the
command line on top, and no module grown past what one person reads in a sitting."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "offbeat"
MAX_LINES = 300

# room -> offbeat modules/packages it must not import (directly).
FORBIDDEN = {
    "dsp": ("offbeat.media", "offbeat.storage", "offbeat.pipeline", "offbeat.flows", "offbeat.service",
            "offbeat.cli", "offbeat.settings", "prefect", "redis", "tensorflow", "spleeter"),
    "media": ("offbeat.storage", "offbeat.pipeline", "offbeat.flows", "offbeat.service", "offbeat.cli", "prefect"),
    "storage": ("offbeat.dsp", "offbeat.pipeline", "offbeat.flows", "offbeat.service", "offbeat.cli", "prefect"),
    "pipeline": ("offbeat.flows", "offbeat.service", "offbeat.cli", "prefect", "redis"),
    "service": ("offbeat.pipeline", "offbeat.flows", "offbeat.cli", "prefect"),
    "flows": ("offbeat.cli",),
}  # fmt: skip


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


@pytest.mark.parametrize("room", list(FORBIDDEN))
def test_rooms_import_only_what_is_below_them(room: str) -> None:
    for path in (PACKAGE / room).rglob("*.py"):
        bad = {
            name for name in _imports(path) for forbidden in FORBIDDEN[room]
            if name == forbidden or name.startswith(f"{forbidden}.")
        }  # fmt: skip
        assert not bad, f"{path.relative_to(PACKAGE.parent)} imports {sorted(bad)}"


def test_nothing_imports_the_command_line() -> None:
    for path in _modules():
        if "cli" not in path.relative_to(PACKAGE).parts:
            assert not any(n.startswith("offbeat.cli") for n in _imports(path)), path


def test_no_module_is_over_300_lines() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in _modules() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long
