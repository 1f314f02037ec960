"""Hostile policy files are refused at load with a located finding, quickly, and never run.

Each case goes through a real file and the real ``lint``. The time bound is a correctness bound
on the refusal (a bomb must be stopped, not survived), so it is generous: one second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ruleengine import yamlsource
from ruleengine.errors import ExpressionError, Finding, PolicyError
from ruleengine.expr import compile_expr
from ruleengine.names import Registry
from ruleengine.policyset import lint
from ruleengine.yamlsource import MAX_BYTES, MAX_NODES, load_text

LIMIT_S = 1.0


def timed_lint(path: Path) -> tuple[list[Finding], float]:
    start = time.perf_counter()
    findings = lint([path])
    return findings, time.perf_counter() - start


def only_error(findings: list[Finding]) -> Finding:
    errors = [f for f in findings if f.severity == "error"]
    assert len(errors) == 1, "\n".join(str(f) for f in findings)
    return errors[0]


# -- expressions -------------------------------------------------------------------------------

HOSTILE_EXPRESSIONS = [
    pytest.param("().__class__.__mro__", "expr-forbidden", id="mro"),
    pytest.param("account.__class__", "expr-forbidden", id="dunder-attribute"),
    pytest.param("market.vix.__class__.__bases__ == 0", "expr-forbidden", id="dunder-chain"),
    pytest.param("9**9**9", "expr-too-large", id="power-tower"),
    pytest.param("market.vix > 9**9**9", "expr-too-large", id="power-tower-compared"),
    pytest.param("'a'*10**9", "type-mismatch", id="huge-string"),
    pytest.param("(lambda: 1)()", "expr-forbidden", id="lambda-call"),
    pytest.param("max(lambda: 1, 2) > 0", "expr-forbidden", id="lambda-argument"),
    pytest.param("[x for x in [1, 2]]", "expr-forbidden", id="list-comprehension"),
    pytest.param("max(x for x in [1, 2]) > 0", "expr-forbidden", id="generator"),
    pytest.param("{x: 1 for x in [1]}", "expr-forbidden", id="dict-comprehension"),
    pytest.param("(x := market.vix) > 0", "expr-forbidden", id="walrus"),
    pytest.param("f'{market.vix}' == 'x'", "expr-forbidden", id="f-string"),
    pytest.param("getattr(account, 'capital') > 0", "unknown-function", id="getattr"),
    pytest.param("open('/etc/passwd') == 'x'", "unknown-function", id="open"),
    pytest.param("max.__globals__ == 0", "expr-forbidden", id="function-globals"),
]


@pytest.mark.parametrize(("source", "code"), HOSTILE_EXPRESSIONS)
def test_hostile_expression_refused(source: str, code: str,
                                    risk_with_rule: Callable[[str], Path],
                                    registry: Registry) -> None:
    path = risk_with_rule(source)
    findings, elapsed = timed_lint(path)
    finding = only_error(findings)
    assert (finding.code, finding.file, finding.line) == (code, str(path), 13)
    assert elapsed < LIMIT_S
    with pytest.raises(ExpressionError) as err:
        compile_expr(source, registry)
    assert err.value.finding.code == code


def test_import_is_refused_and_never_runs(tmp_path: Path,
                                         risk_with_rule: Callable[[str], Path],
                                         registry: Registry) -> None:
    marker = tmp_path / "pwned"
    source = f"__import__('os').system('touch {marker}')"
    path = risk_with_rule(source)
    findings, elapsed = timed_lint(path)
    finding = only_error(findings)
    assert (finding.code, finding.line, finding.col) == ("expr-forbidden", 13, 12)
    assert elapsed < LIMIT_S
    for text in (source, f"__import__('os').system('touch {marker}') == 0",
                 f"__import__('os') == 0 or max(__import__('os').system('touch {marker}'))"):
        with pytest.raises(ExpressionError) as err:
            compile_expr(text, registry)
        assert err.value.finding.code == "expr-forbidden"
    assert not marker.exists()


# -- YAML ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system", "!!python/object/new:os.system",
                                 "!!python/name:os.system", "!!python/module:os"])
def test_python_tags_refused_and_never_constructed(tag: str, tmp_path: Path,
                                                    write_policy: Callable[[str, str], Path],
                                                    ) -> None:
    marker = tmp_path / "pwned"
    path = write_policy("risk.yaml", f"""\
        kind: risk
        version: 1
        description: {tag} ["touch {marker}"]
        """)
    findings, elapsed = timed_lint(path)
    finding = only_error(findings)
    assert (finding.code, finding.line, finding.col) == ("yaml-forbidden-tag", 3, 14)
    assert elapsed < LIMIT_S
    assert not marker.exists()


def test_billion_laughs_refused(write_policy: Callable[[str, str], Path]) -> None:
    # 9 levels of 10 aliases: a billion strings if expanded.
    lines = ["kind: risk", "version: 1", 'l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", '
             '"lol", "lol", "lol", "lol"]']
    for level in range(1, 10):
        refs = ", ".join([f"*l{level - 1}"] * 10)
        lines.append(f"l{level}: &l{level} [{refs}]")
    path = write_policy("laughs.yaml", "\n".join(lines) + "\n")
    findings, elapsed = timed_lint(path)
    finding = only_error(findings)
    assert finding.code == "yaml-alias-bomb"
    assert finding.line <= len(lines)
    assert elapsed < LIMIT_S


@pytest.mark.parametrize("closed", [True, False], ids=["balanced", "unclosed"])
def test_ten_thousand_deep_nesting_refused(closed: bool,
                                           write_policy: Callable[[str, str], Path]) -> None:
    path = write_policy("deep.yaml", "[" * 10_000 + ("]" * 10_000 if closed else ""))
    findings, elapsed = timed_lint(path)
    finding = only_error(findings)
    assert (finding.code, finding.line, finding.col) == ("yaml-too-deep", 1, 65)
    assert elapsed < LIMIT_S


def test_deep_mappings_refused(write_policy: Callable[[str, str], Path]) -> None:
    path = write_policy("deep.yaml", "a: {" * 5_000 + "}" * 5_000)
    finding = only_error(lint([path]))
    assert finding.code == "yaml-too-deep"


def test_fifty_megabyte_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    chunk = "# " + "x" * 1021 + "\n"
    with path.open("w", encoding="utf-8") as out:
        out.write("kind: risk\nversion: 1\n")
        for _ in range(50 * 1024):
            out.write(chunk)
    assert path.stat().st_size > 50_000_000
    findings, elapsed = timed_lint(path)
    finding = only_error(findings)
    assert (finding.code, finding.line, finding.col) == ("yaml-too-large", 1, 1)
    assert f"{path.stat().st_size:,} bytes" in finding.message
    assert elapsed < LIMIT_S


def test_large_text_refused_before_parsing() -> None:
    start = time.perf_counter()
    with pytest.raises(PolicyError) as err:
        load_text("a: [" + "1, " * (MAX_BYTES // 2) + "1]")
    assert [f.code for f in err.value.findings] == ["yaml-too-large"]
    assert time.perf_counter() - start < LIMIT_S



def plain_values_policy(path: Path) -> tuple[Path, int]:
    """A file just under the byte bound holding ~330,000 plain values and no alias.

    Returns the path and the column of the value that passes the value budget: the values
    before the list are the top mapping, 'kind', 'risk', 'version', '1', 'values' and the list.
    """
    head = "kind: risk\nversion: 1\nvalues: ["
    count = (MAX_BYTES - len(head) - 3) // 3
    path.write_text(head + "1, " * count + "1]\n", encoding="utf-8")
    assert MAX_BYTES - 1_000 < path.stat().st_size <= MAX_BYTES
    item = MAX_NODES + 1 - 7  # the list item that is the 100,001st value
    return path, len("values: [") + 1 + 3 * (item - 1)


def test_many_plain_values_refused_as_too_large_not_as_alias_bomb(tmp_path: Path) -> None:
    path, col = plain_values_policy(tmp_path / "values.yaml")
    finding = only_error(lint([path]))
    assert (finding.code, finding.line, finding.col) == ("yaml-too-large", 3, col)
    assert f"more than {MAX_NODES:,} values" in finding.message
    assert "alias" not in finding.message


@pytest.mark.skipif(yamlsource._FAST is yamlsource._PURE, reason="PyYAML was built without "
                    "libyaml; the pure-Python parser needs seconds to read 100,000 values")
def test_many_plain_values_refused_quickly(tmp_path: Path) -> None:
    path, _ = plain_values_policy(tmp_path / "values.yaml")
    findings, elapsed = timed_lint(path)
    assert only_error(findings).code == "yaml-too-large"
    assert elapsed < LIMIT_S
