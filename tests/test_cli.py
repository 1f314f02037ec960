"""The ``ruleengine`` command: output formats and exit codes (0 clean, 1 findings, 2 usage)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ruleengine.cli import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, main
from ruleengine.functions import FUNCTIONS
from ruleengine.schema import kinds

BROKEN = """\
kind: risk
version: 1
rules:
  - id: kill-switch
    when: operator.kill_switch
    then: [halt]
  - id: daily-loss
    when: account.day_pnl_pc <= -3
    then: [halt]
"""

LINE = re.compile(r"^(?P<file>.+):(?P<line>[0-9]+):(?P<col>[0-9]+): (?P<code>[a-z-]+)"
                  r"(?P<warning> \(warning\))?: (?P<message>.+)$")


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ruleengine.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False, cwd=cwd)


def shipped(repo_root: Path) -> list[str]:
    return [str(repo_root / "policies"), str(repo_root / "strategies")]


def test_shipped_lint_clean_in_process(repo_root: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", *shipped(repo_root)]) == EXIT_OK
    out = capsys.readouterr()
    assert out.out == ""
    assert "no problems found" in out.err


def test_shipped_lint_clean_subprocess(repo_root: Path) -> None:
    proc = run("lint", "policies", "strategies", cwd=repo_root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == ""
    assert "no problems found" in proc.stderr


def test_findings_print_one_per_line_and_exit_1(
        write_policy: Callable[[str, str], Path], capsys: pytest.CaptureFixture[str]) -> None:
    path = write_policy("risk.yaml", BROKEN)
    assert main(["lint", str(path)]) == EXIT_FINDINGS
    out = capsys.readouterr()
    lines = out.out.splitlines()
    matches = [LINE.match(line) for line in lines]
    assert all(matches), lines
    got = [(m["file"], m["line"], m["col"], m["code"]) for m in matches if m]
    assert (str(path), "8", "11", "unknown-name") in got
    assert "did you mean 'account.day_pnl_pct'?" in out.out
    assert re.search(r"[0-9]+ error\(s\), 0 warning\(s\)", out.err)


def test_json_format(write_policy: Callable[[str, str], Path],
                     capsys: pytest.CaptureFixture[str]) -> None:
    path = write_policy("risk.yaml", BROKEN)
    assert main(["lint", "--format", "json", str(path)]) == EXIT_FINDINGS
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data, list) and data
    for item in data:
        assert set(item) == {"file", "line", "col", "code", "severity", "message"}
    assert {"file": str(path), "line": 8, "col": 11, "code": "unknown-name",
            "severity": "error"}.items() <= data[-1].items()


def test_json_format_clean_is_an_empty_list(repo_root: Path) -> None:
    proc = run("lint", "--format", "json", *shipped(repo_root))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_strict_turns_warnings_into_failures(write_policy: Callable[[str, str], Path],
                                             capsys: pytest.CaptureFixture[str],
                                             constant_rule_yaml: str) -> None:
    path = write_policy("risk.yaml", constant_rule_yaml)
    assert main(["lint", str(path)]) == EXIT_OK
    out = capsys.readouterr()
    assert "constant-condition (warning)" in out.out
    assert "0 error(s), 1 warning(s)" in out.err

    assert main(["lint", "--strict", str(path)]) == EXIT_FINDINGS
    out = capsys.readouterr()
    assert f"{path}:11:11: constant-condition: " in out.out
    assert "1 error(s), 0 warning(s)" in out.err

    assert main(["lint", "--strict", "--format", "json", str(path)]) == EXIT_FINDINGS
    assert [d["severity"] for d in json.loads(capsys.readouterr().out)] == ["error"]


def test_strict_subprocess(write_policy: Callable[[str, str], Path],
                           constant_rule_yaml: str) -> None:
    path = write_policy("risk.yaml", constant_rule_yaml)
    assert run("lint", str(path)).returncode == 0
    assert run("lint", "--strict", str(path)).returncode == 1


@pytest.mark.parametrize("argv", [
    [], ["lint"], ["lint", "--format", "xml", "policies"], ["frobnicate"], ["lint", "--nope", "x"],
])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == EXIT_USAGE
    assert "usage:" in capsys.readouterr().err


def test_usage_error_subprocess() -> None:
    proc = run("lint")
    assert proc.returncode == 2
    assert "usage:" in proc.stderr


def test_unknown_schema_kind_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "rsik"]) == EXIT_USAGE
    assert "unknown kind 'rsik'" in capsys.readouterr().err


def test_schema_lists_kinds_and_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == EXIT_OK
    assert capsys.readouterr().out.split() == list(kinds())
    for kind in (*kinds(), "common"):
        assert main(["schema", kind]) == EXIT_OK
        assert json.loads(capsys.readouterr().out)["$schema"].endswith("2020-12/schema")


def test_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["names"]) == EXIT_OK
    out = capsys.readouterr().out
    assert re.search(r"^market\.vix +number +\[points\] +India VIX", out, re.MULTILINE)
    assert main(["names", "--format", "json"]) == EXIT_OK
    data = json.loads(capsys.readouterr().out)
    assert data["market.vix"]["range"] == [0, 200]
    assert data["operator.kill_switch"]["type"] == "bool"
    assert main(["names", "--functions"]) == EXIT_OK
    out = capsys.readouterr().out
    assert len(out.splitlines()) == len(FUNCTIONS)
    assert "t(str) -> number" in out
