"""Build hook: compile the engine's per-tick modules with mypyc when this machine can.

Why: the pure-Python tick runs ~10,000 ticks/s on a 2-core machine; the same modules compiled
by mypyc run 2-3x faster (benchmarks/engine.py). The source is the same `.py` files, so the
compiled core makes the same decisions; pure Python stays the reference and the fallback.

- `pip install .` / `pip install -e .` compile when mypy (a build requirement) and a C compiler
  work; if either fails, the install goes on as pure Python and says why.
- `RULEENGINE_PURE=1 pip install ...` skips the compile.
- `ruleengine/corebuild.py` checks at import that the compiled modules still match their
  `.py` sources, and runs pure Python when they do not (an edited checkout).

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
STAMP = "_core_sources.json"  # module -> sha256 of the source it was compiled from


def _note(message: str) -> None:
    print(f"ruleengine build: {message}", file=sys.stderr)


def _wants_pure() -> bool:
    return os.environ.get("RULEENGINE_PURE", "").strip().lower() not in ("", "0", "false", "no")


def _remove_inplace_core() -> None:
    """A pure install must not leave an earlier editable build's compiled core in the source
    tree: its stamp could still match, and Python would import it."""
    package = ROOT / "ruleengine"
    for name in (*CORE, "_core__mypyc"):
        for path in package.glob(f"{name}.*"):
            if path.suffix in (".so", ".pyd"):
                path.unlink()
    (package / STAMP).unlink(missing_ok=True)


def _metadata_only() -> bool:
    """pip runs this file three times per install; only the build itself needs the core
    compiled (about a minute), not the requirement and metadata queries before it."""
    return len(sys.argv) > 1 and sys.argv[1] in ("egg_info", "dist_info", "sdist")


def _core_extensions() -> list[Any]:
    if _metadata_only():
        return []
    if _wants_pure():
        _note("RULEENGINE_PURE is set: installing pure Python")
        _remove_inplace_core()
        return []
    try:
        from mypyc.build import mypycify

        paths = [f"ruleengine/{name}.py" for name in CORE]
        # The build environment has no third-party stubs: their types are Any here, which
        # compiles to generic object operations (the same behaviour, just not specialised).
        return list(mypycify(["--ignore-missing-imports", "--config-file", "", *paths],
                             group_name="ruleengine._core", opt_level="3"))
    except BaseException as exc:  # mypy missing, a type error, anything: pure Python still works
        if isinstance(exc, KeyboardInterrupt):
            raise
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
            self._remove_outputs()
            _remove_inplace_core()
            return
        if self.extensions:
            self._write_stamp()

    def _package_dir(self) -> Path:
        return Path(self.get_ext_fullpath("ruleengine._core__mypyc")).parent

    def _remove_outputs(self) -> None:
        for ext in self.extensions:
            Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)

    def _write_stamp(self) -> None:
        sources = {name: hashlib.sha256((ROOT / "ruleengine" / f"{name}.py").read_bytes())
                   .hexdigest() for name in CORE}
        target = self._package_dir() / STAMP
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(sources, indent=1, sort_keys=True) + "\n")


setup(ext_modules=_core_extensions(), cmdclass={"build_ext": OptionalBuildExt})
