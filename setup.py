"""Build hook: compile the engine's per-tick modules with mypyc when this machine can.

Why: the pure-Python tick runs ~10,000-15,000 ticks/s on a 2-core machine; the same modules
compiled by mypyc run 2-3x faster (benchmarks/engine.py). The source is the same `.py` files,
so the compiled core makes the same decisions; pure Python stays the reference and the fallback.

- `pip install .` / `pip install -e .` compile when mypy (a build requirement) and a C compiler
  work; if either fails, the install goes on as pure Python (`pip install -v` shows why).
- `RULEENGINE_PURE=1 pip install ...` skips the compile.
- The build records the sha256 of every `ruleengine/*.py` as it was read for the compile
  (compiled code also bakes in the types of the modules it imports). `ruleengine/corebuild.py`
  compares them on import and runs pure Python when any differs (an edited checkout).

Everything else about the package is declared in pyproject.toml.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
PACKAGE = ROOT / "ruleengine"

# The modules a tick runs through; each must stay mypyc-compatible (tests run on both builds).
CORE = (
    "context",
    "dataquality",
    "engine",
    "guards",
    "market",
    "portfolio",
    "signals",
    "state",
    "tradingstate",
)
STAMP = "_core_sources.json"  # file name -> sha256 of every package source at compile time
EDITABLE_COMMANDS = ("editable_wheel", "develop")  # builds whose output lands in the checkout


def _note(message: str) -> None:
    print(f"ruleengine build: {message}", file=sys.stderr)


def _command() -> str:
    return sys.argv[1] if len(sys.argv) > 1 else ""


def _wants_pure() -> bool:
    return os.environ.get("RULEENGINE_PURE", "").strip().lower() not in ("", "0", "false", "no")


def _source_hashes() -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(PACKAGE.glob("*.py"))}


def _remove_inplace_core() -> None:
    """A pure or failed editable install must not leave an earlier editable build's compiled
    core in the checkout: its stamp could still match, and Python would import it. Other
    builds (a wheel, a plain install) never touch the checkout's own build."""
    if _command() not in EDITABLE_COMMANDS:
        return
    for name in (*CORE, "_core__mypyc"):
        for path in PACKAGE.glob(f"{name}.*"):
            if path.suffix in (".so", ".pyd"):
                path.unlink()
    (PACKAGE / STAMP).unlink(missing_ok=True)


# Hashed before mypy reads the sources, so an edit saved during the build makes the stamp
# disagree with the file and the edited source runs (never the reverse).
SOURCES = _source_hashes()


def _core_extensions() -> list[Any]:
    if _command() in ("egg_info", "dist_info", "sdist"):
        return []  # pip's requirement and metadata queries: only the build needs the compile
    if _wants_pure():
        _note("RULEENGINE_PURE is set: installing pure Python")
        _remove_inplace_core()
        return []
    try:
        from mypyc.build import mypycify

        paths = [f"ruleengine/{name}.py" for name in CORE]
        # The build environment has no third-party stubs: their types are Any here, which
        # compiles to generic object operations (the same behaviour, just not specialised).
        # Its own mypy cache: the project's strict `mypy` runs keep theirs.
        return list(mypycify(["--ignore-missing-imports", "--config-file", "",
                              "--cache-dir", "build/.mypy_cache", *paths],
                             group_name="ruleengine._core", opt_level="3"))
    except (Exception, SystemExit) as exc:  # mypy missing, a type error (mypy exits): pure
        _note(f"compiled core not built ({type(exc).__name__}: {exc}); installing pure Python")
        _remove_inplace_core()
        return []


class OptionalBuildExt(build_ext):
    """All or nothing: a partly built core would import half compiled, so any failure removes
    what was built and leaves the pure `.py` modules in charge."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            _note(f"compiling the core failed ({exc}); installing pure Python")
            for ext in self.extensions:
                Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)
            _remove_inplace_core()
            return
        if self.extensions:
            target = Path(self.get_ext_fullpath("ruleengine._core__mypyc")).parent / STAMP
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(SOURCES, indent=1, sort_keys=True) + "\n")


setup(ext_modules=_core_extensions(), cmdclass={"build_ext": OptionalBuildExt})
