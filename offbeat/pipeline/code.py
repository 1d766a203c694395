"""What of the project's code shapes a stage's output, for its cache key: the normalized source of the stage's
module and of every project module it reaches through module-level imports, and the current values of their
public constants.

The source is parsed and written back without docstrings and comments (`ast.unparse`), so rewording a docstring
recomputes nothing while any change to what runs does, without anyone bumping a version. The constants' values
are keyed too, as they are at run time, so a bench that sets a constant (`bench ... --set`) recomputes what it
shapes. Constants a module lists in `NOT_TUNING` (block sizes and other memory or speed settings that leave every
output as it is) are left out of both.

Imports inside functions are not followed: a stage imports there the module of one path chosen by a setting, and
keys that path alone with `path_constants` in its `params`, so the other path's key stays what it was. Modules
that move data rather than shape it (`PLUMBING`: the store, settings, errors, the graph machinery, Prefect and
Redis) are not followed either; their changes are checked by tests, not by keys.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib
import importlib.util
import re
import sys
import threading
import types
from functools import cache
from typing import Any

import numpy as np

PROJECT = "offbeat"
# Modules (and packages) that carry data between stages without shaping it: not part of any stage's code.
PLUMBING = (
    "offbeat.storage",
    "offbeat.settings",
    "offbeat.errors",
    "offbeat.console",
    "offbeat.paths",
    "offbeat.redis_client",
    "offbeat.service",
    "offbeat.cli",
    "offbeat.pipeline.stage",
    "offbeat.pipeline.code",
    "offbeat.pipeline.context",
    "offbeat.pipeline.registry",
    "offbeat.pipeline.runner",
    "offbeat.pipeline.walk",
)

_CONSTANT = re.compile(r"^[A-Z][A-Z0-9_]*$")
# CPython 3.11's parser is not safe to run from several threads at once ("AST constructor recursion depth
# mismatch"); the flow's task threads key their stages side by side, so every parse goes through this lock.
_PARSING = threading.Lock()


def _parse(source: str) -> ast.Module:
    with _PARSING:
        return ast.parse(source)


def _plumbing(name: str) -> bool:
    return any(name == p or name.startswith(f"{p}.") for p in PLUMBING)


def _module(name: str) -> types.ModuleType:
    return sys.modules.get(name) or importlib.import_module(name)


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _top_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """Statements that run when the module is imported (inside `if`, `try` and `with` too, not in functions)."""
    found: list[ast.stmt] = []
    for stmt in body:
        found.append(stmt)
        if isinstance(stmt, ast.If | ast.With | ast.Try):
            found += _top_level(stmt.body)
            for handler in getattr(stmt, "handlers", []):
                found += _top_level(handler.body)
            found += _top_level(getattr(stmt, "orelse", []) + getattr(stmt, "finalbody", []))
    return found


@cache
def imported(name: str) -> frozenset[str]:
    """The project modules (plumbing aside) that module `name` imports at module level."""
    module = _module(name)
    tree = _parse(_source(module))
    package = module.__package__ or ""
    found: set[str] = set()
    for stmt in _top_level(tree.body):
        if isinstance(stmt, ast.Import):
            found |= {alias.name for alias in stmt.names}
        elif isinstance(stmt, ast.ImportFrom):
            base = stmt.module or ""
            if stmt.level:
                parts = package.split(".")[: len(package.split(".")) - stmt.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in stmt.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if _is_module(submodule) else base)
    return frozenset(
        n for n in found if (n == PROJECT or n.startswith(f"{PROJECT}.")) and not _plumbing(n) and n != name
    )


@cache
def reached(name: str) -> tuple[str, ...]:
    """Module `name` and every project module it reaches through module-level imports, sorted."""
    pending, seen = {name}, set()
    while pending:
        current = pending.pop()
        seen.add(current)
        pending |= imported(current) - seen
    return tuple(sorted(seen))


def _source(module: types.ModuleType) -> str:
    spec = module.__spec__
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return ""
    with open(spec.origin, encoding="utf-8") as file:
        return file.read()


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0] if body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return body[1:] or [ast.Pass()]
    return body


def _assigned(stmt: ast.stmt) -> set[str]:
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
    return {t.id for t in targets if isinstance(t, ast.Name)}


def normalized(name: str) -> str:
    """Module `name`'s source as it runs: docstrings, comments, layout and `NOT_TUNING` constants left out."""
    module = _module(name)
    tree = _parse(_source(module))
    skipped = set(getattr(module, "NOT_TUNING", ())) | {"NOT_TUNING"}
    tree.body = [s for s in _without_docstring(tree.body) if not (_assigned(s) & skipped)]
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            node.body = _without_docstring(node.body)
    with _PARSING:
        return ast.unparse(tree)


@cache
def source_digest(name: str) -> str:
    """Digest of the normalized source of module `name` and of every module it reaches."""
    digest = hashlib.blake2b(digest_size=16)
    for module in reached(name):
        digest.update(f"{module}\n{normalized(module)}\n".encode())
    return digest.hexdigest()


def plain(value: Any) -> Any:
    """A JSON-ready copy of a constant, or None when it is not plain data (then it is left out)."""
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | list | frozenset):
        items = [plain(v) for v in (sorted(value) if isinstance(value, frozenset) else value)]
        return None if any(i is None for i in items) else items
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # a frozen record of constants
        return plain(dataclasses.asdict(value))
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        entries = {k: plain(v) for k, v in value.items()}
        return None if any(v is None for v in entries.values()) else entries
    return None


def own_constants(name: str) -> dict[str, Any]:
    """The public constants (UPPER_CASE plain data) of one module, without its NOT_TUNING ones."""
    namespace = vars(_module(name))
    skipped = set(namespace.get("NOT_TUNING", ())) | {"NOT_TUNING"}
    values = {k: plain(v) for k, v in namespace.items() if _CONSTANT.match(k) and k not in skipped}
    return {k: v for k, v in values.items() if v is not None}


def constants(name: str) -> dict[str, dict[str, Any]]:
    """The current public constants of module `name` and of every module it reaches, by module (short name)."""
    found = {module.removeprefix(f"{PROJECT}."): own_constants(module) for module in reached(name)}
    return {module: values for module, values in found.items() if values}


def identity(name: str) -> dict[str, Any]:
    """What of the code keys a stage whose compute function lives in module `name`."""
    return {"source": source_digest(name), "constants": constants(name)}
