"""The compiled core and its pure-Python sources: which one runs, and that they decide alike."""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import ruleengine
from ruleengine.corebuild import STAMP, choose, compiled_modules

REPO = Path(__file__).resolve().parents[1]
PACKAGE = Path(ruleengine.__file__).resolve().parent
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def _write_stamp(pkg: Path) -> None:
    """What setup.py records: every source of the package, compiled or not."""
    (pkg / STAMP).write_text(json.dumps({path.name: hashlib.sha256(path.read_bytes()).hexdigest()
                                         for path in pkg.glob("*.py")}))


def _fake_build(tmp_path: Path, names: tuple[str, ...], stamp: bool = True) -> Path:
    """A package folder with sources, extension files beside some of them and, optionally, the
    stamp. The extensions are never imported here, only looked at."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "events.py").write_text("Y = 1\n")  # imported by compiled code, not compiled itself
    for name in names:
        (pkg / f"{name}.py").write_text(f"X = {name!r}\n")
        (pkg / f"{name}{SUFFIX}").write_bytes(b"\x7fELF")
    (pkg / f"_core__mypyc{SUFFIX}").write_bytes(b"\x7fELF")  # the shared library: no source
    if stamp:
        _write_stamp(pkg)
    return pkg


def test_no_extensions_is_plain_pure(tmp_path: Path) -> None:
    (tmp_path / "engine.py").write_text("")
    build = choose(tmp_path, {})
    assert (build.kind, build.modules, build.stale) == ("pure", (), ())
    assert "no compiled core in this install" in build.describe()


def test_matching_sources_run_compiled(tmp_path: Path) -> None:
    pkg = _fake_build(tmp_path, ("engine", "market"))
    assert compiled_modules(pkg) == ("engine", "market")  # not the shared library
    build = choose(pkg, {"RULEENGINE_PURE": "0"})
    assert build.kind == "compiled"
    assert build.describe() == "compiled core (mypyc: 2 modules)"


def test_an_edited_source_makes_the_whole_core_pure(tmp_path: Path) -> None:
    pkg = _fake_build(tmp_path, ("engine", "market"))
    with (pkg / "market.py").open("a") as f:
        f.write("# edited after the build\n")
    build = choose(pkg, {})
    assert build.kind == "pure"
    assert build.modules == ("engine", "market")  # both routed to source, not just market
    assert build.stale == ("market.py",)
    assert "market.py changed since the core was compiled" in build.reason
    assert "reinstall" in build.reason


def test_an_edited_module_that_is_not_compiled_also_counts(tmp_path: Path) -> None:
    """Compiled code bakes in the field types of the modules it imports (events.py)."""
    pkg = _fake_build(tmp_path, ("engine",))
    (pkg / "events.py").write_text("Y: str | None = None\n")
    assert choose(pkg, {}).stale == ("events.py",)
    (pkg / "events.py").unlink()
    assert choose(pkg, {}).stale == ("events.py",)


def test_a_missing_stamp_trusts_nothing(tmp_path: Path) -> None:
    build = choose(_fake_build(tmp_path, ("engine",), stamp=False), {})
    assert (build.kind, build.stale) == ("pure", (STAMP,))
    assert f"{STAMP} is missing" in build.reason


def test_the_environment_can_ask_for_pure(tmp_path: Path) -> None:
    build = choose(_fake_build(tmp_path, ("engine",)), {"RULEENGINE_PURE": "1"})
    assert (build.kind, build.stale, build.reason) == ("pure", (), "RULEENGINE_PURE is set")


def _copy_package(tmp_path: Path) -> Path:
    target = tmp_path / "site" / "ruleengine"
    shutil.copytree(PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def _import_in_child(site: Path, env_extra: dict[str, str] | None = None
                     ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "RULEENGINE_PURE"}
    env.update(env_extra or {})
    env["PYTHONPATH"] = str(site)
    code = ("import ruleengine, ruleengine.engine as e; "
            "print(ruleengine.core_build().kind, e.__file__.rsplit('.', 1)[-1])")
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=site,
                          capture_output=True, text=True, timeout=120)


def _broken_engine_extension(tmp_path: Path) -> Path:
    """A copy of the package whose only extension is a stand-in `engine` that cannot load:
    importing it is an ImportError, so a child that imports it fails visibly."""
    pkg = _copy_package(tmp_path)
    for path in pkg.glob(f"*{SUFFIX}"):
        path.unlink()
    (pkg / STAMP).unlink(missing_ok=True)
    (pkg / f"engine{SUFFIX}").write_bytes(b"not a shared library")
    return pkg


def test_a_stale_extension_is_never_imported(tmp_path: Path) -> None:
    """Python prefers an extension module to its source. A stand-in `engine` extension without
    a matching record must not be imported: the source is."""
    pkg = _broken_engine_extension(tmp_path)
    child = _import_in_child(pkg.parent)
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == ["pure", "py"]
    assert f"{STAMP} is missing" in child.stderr  # the warning says why, and how to rebuild

    # With a record that matches, the same folder does import the broken extension, so the
    # check above is what kept it out: the test can fail.
    _write_stamp(pkg)
    child = _import_in_child(pkg.parent)
    assert child.returncode != 0 and "ImportError" in child.stderr


def test_RULEENGINE_PURE_routes_a_current_extension_to_its_source(tmp_path: Path) -> None:
    """The pure pass of CI relies on this: with the variable set, nothing compiled loads even
    when the record matches (the broken stand-in would fail the import if it did)."""
    pkg = _broken_engine_extension(tmp_path)
    _write_stamp(pkg)
    child = _import_in_child(pkg.parent, {"RULEENGINE_PURE": "1"})
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == ["pure", "py"]
    assert "WARNING" not in child.stderr  # asked for, so nothing to warn about


needs_compiled = pytest.mark.skipif(
    not compiled_modules(PACKAGE) or ruleengine.core_build().kind != "compiled",
    reason="this run uses pure Python (no compiled core installed, or RULEENGINE_PURE is set)")


@needs_compiled
def test_the_installed_compiled_core_is_used_and_yields_to_an_edit(tmp_path: Path) -> None:
    pkg = _copy_package(tmp_path)
    assert _import_in_child(pkg.parent).stdout.split() == ["compiled", "so"]
    with (pkg / "events.py").open("a") as f:  # not compiled, but compiled code relies on it
        f.write("\n# an edit after the build\n")
    child = _import_in_child(pkg.parent)
    assert child.stdout.split() == ["pure", "py"], child.stderr


def _tables(db: Path) -> dict[str, list[tuple[object, ...]]]:
    queries = {
        "decisions": "SELECT id, ts, revision, kind, scope, rule_id, location, inputs, result, "
                     "message, prev_hash, hash FROM decisions ORDER BY id",
        "orders": "SELECT client_id, ts, strategy_id, leg_id, symbol, side, qty, limit_price, "
                  "purpose, status, filled_qty FROM orders ORDER BY ts, client_id",
        "fills": "SELECT decision_id, ts, client_id, symbol, side, qty, price, charges, ltp "
                 "FROM fills ORDER BY decision_id",
    }
    with sqlite3.connect(db) as conn:
        return {name: list(conn.execute(sql)) for name, sql in queries.items()}


RUN_IN_CHILD = """
import sys
import ruleengine
import ruleengine.engine as engine
from ruleengine.cli import main
print("BUILD", ruleengine.core_build().kind, engine.__file__.rsplit(".", 1)[-1], flush=True)
sys.exit(main(sys.argv[1:]))
"""


@needs_compiled
def test_compiled_and_pure_write_the_same_audit_trail(tmp_path: Path) -> None:
    """The flash-crash day fires circuit breakers, halts and exits: the same decisions, orders,
    fills and hash chain from both builds. Each child says which build it ran, from outside
    the checkout, so an install that is not the checkout cannot compare pure with pure."""
    tables = {}
    for build, extra, suffix in (("compiled", {}, "so"), ("pure", {"RULEENGINE_PURE": "1"}, "py")):
        db = tmp_path / f"{build}.db"
        env = {k: v for k, v in os.environ.items() if k != "RULEENGINE_PURE"} | extra
        done = subprocess.run(
            [sys.executable, "-c", RUN_IN_CHILD, "run", "--scenario", "flash-crash",
             "--policies", str(REPO / "policies"), "--strategies", str(REPO / "strategies"),
             "--db", str(db)], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.splitlines()[0] == f"BUILD {build} {suffix}"
        tables[build] = _tables(db)
    assert all(tables["compiled"][name] for name in ("decisions", "orders", "fills"))
    assert tables["compiled"] == tables["pure"]
