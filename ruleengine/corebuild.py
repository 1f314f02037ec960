"""Which build of the per-tick modules runs: compiled by mypyc, or the pure-Python sources.

setup.py compiles the modules a tick runs through when it can, and writes a stamp with the
sha256 of each source it compiled. Python imports a compiled module in preference to its
`.py`, so after an edit (an editable checkout, a hand-patched install) the old compiled code
would run silently. This module runs first, on `import ruleengine`, and when any compiled module
no longer matches its source — or the stamp is missing, or `RULEENGINE_PURE` is set — it makes
every compiled module import from its `.py` instead. All or nothing: compiled modules call each
other directly, so one pure module beside compiled ones would still leave old code running.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from loguru import logger

PACKAGE = "ruleengine"
STAMP = "_core_sources.json"  # written by setup.py next to the compiled modules


@dataclass(frozen=True)
class CoreBuild:
    """`kind` is "compiled" or "pure"; `reason` says why pure when compiled modules exist."""

    kind: str
    modules: tuple[str, ...]
    reason: str = ""
    stale: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.kind == "compiled":
            return f"compiled core (mypyc: {len(self.modules)} modules)"
        return f"pure Python ({self.reason})" if self.reason else "pure Python"


def compiled_modules(package_dir: Path) -> tuple[str, ...]:
    """Modules with both a `.py` source and a compiled extension beside it."""
    names = set()
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        for path in package_dir.glob(f"*{suffix}"):
            name = path.name[: -len(suffix)]
            if (package_dir / f"{name}.py").exists():
                names.add(name)
    return tuple(sorted(names))


def stale_modules(package_dir: Path, modules: Sequence[str]) -> list[str]:
    """Compiled modules whose source no longer matches the stamp (all of them without one)."""
    try:
        stamp = json.loads((package_dir / STAMP).read_text())
    except (OSError, ValueError):
        return list(modules)
    return [name for name in modules
            if stamp.get(name) != hashlib.sha256((package_dir / f"{name}.py").read_bytes())
            .hexdigest()]


def wants_pure(environ: Mapping[str, str]) -> bool:
    return environ.get("RULEENGINE_PURE", "").strip().lower() not in ("", "0", "false", "no")


def choose(package_dir: Path, environ: Mapping[str, str]) -> CoreBuild:
    modules = compiled_modules(package_dir)
    if not modules:
        return CoreBuild("pure", ())
    if wants_pure(environ):
        return CoreBuild("pure", modules, "RULEENGINE_PURE is set")
    stale = stale_modules(package_dir, modules)
    if stale:
        return CoreBuild("pure", modules, f"the compiled core is older than {', '.join(stale)}"
                         "; reinstall (pip install -e .) to compile it again", tuple(stale))
    return CoreBuild("compiled", modules)


class _SourcesFirst(importlib.abc.MetaPathFinder):
    """Imports the listed modules from their `.py` files, bypassing the compiled extension."""

    def __init__(self, package_dir: Path, modules: Sequence[str]) -> None:
        self._files = {f"{PACKAGE}.{name}": package_dir / f"{name}.py" for name in modules}

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        source = self._files.get(fullname)
        return None if source is None else importlib.util.spec_from_file_location(fullname, source)


def install(package_dir: Path) -> CoreBuild:
    """Decide, and when pure, route the compiled modules to their sources. Call before any of
    them is imported (ruleengine/__init__.py does)."""
    build = choose(package_dir, os.environ)
    if build.kind == "pure" and build.modules:
        sys.meta_path.insert(0, _SourcesFirst(package_dir, build.modules))
    if build.stale:
        logger.warning("ruleengine runs as {}", build.describe())
    return build


CORE = install(Path(__file__).resolve().parent)


def core_build() -> CoreBuild:
    """The build this process runs (decided once, on `import ruleengine`)."""
    return CORE
