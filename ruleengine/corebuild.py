"""Which build of the per-tick modules runs: compiled by mypyc, or the pure-Python sources.

setup.py compiles the modules a tick runs through when it can, and records the sha256 of every
package source as it read them. Python imports a compiled module in preference to its `.py`,
so after an edit (an editable checkout, a hand-patched install) the old compiled code would run
silently. This module runs first, on `import ruleengine`. When any source no longer matches the
record, or the record is missing, or `RULEENGINE_PURE` is set, it makes every compiled module
import from its `.py` instead. All or nothing: compiled modules call each other directly, so
one pure module beside compiled ones would still leave old code running.
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
STAMP = "_core_sources.json"  # setup.py: file name -> sha256 of every package source it compiled


@dataclass(frozen=True)
class CoreBuild:
    """`kind` is "compiled" or "pure"; `reason` says why pure; `stale` names the changed
    sources when a compiled core was set aside for them."""

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


def changed_sources(package_dir: Path) -> tuple[str, ...]:
    """Package sources that differ from the build's record (compiled code also depends on the
    types of the modules it imports, so every source counts, not only the compiled ones)."""
    try:
        recorded = json.loads((package_dir / STAMP).read_text())
    except (OSError, ValueError):
        return (STAMP,)  # no record of what was compiled: trust none of it
    changed = []
    for name, digest in sorted(recorded.items()):
        try:
            current = hashlib.sha256((package_dir / name).read_bytes()).hexdigest()
        except OSError:
            current = None
        if current != digest:
            changed.append(name)
    return tuple(changed)


def wants_pure(environ: Mapping[str, str]) -> bool:
    return environ.get("RULEENGINE_PURE", "").strip().lower() not in ("", "0", "false", "no")


def choose(package_dir: Path, environ: Mapping[str, str]) -> CoreBuild:
    modules = compiled_modules(package_dir)
    if not modules:
        return CoreBuild("pure", (), "no compiled core in this install; `pip install -v` "
                         "shows why the build skipped it")
    if wants_pure(environ):
        return CoreBuild("pure", modules, "RULEENGINE_PURE is set")
    changed = changed_sources(package_dir)
    if changed:
        what = (f"{STAMP} is missing" if changed == (STAMP,)
                else f"{', '.join(changed)} changed since the core was compiled")
        return CoreBuild("pure", modules, f"{what}; reinstall to compile it again "
                         "(pip install -e . in a checkout)", changed)
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
