"""The safe YAML loader: plain data, exact locations, and located refusals."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ruleengine import yamlsource
from ruleengine.errors import Finding, PolicyError
from ruleengine.yamlsource import MAX_BYTES, MAX_DEPTH, MAX_NODES, Loc, load_file, load_text

TEXT = """\
# a comment
kind: risk
version: 1
capital: 1_000_000
rules:
  - id: daily-loss
    when: "account.day_pnl_pct <= -3"
    then: [halt, alert]
    message: |
      day P&L
      {account.day_pnl_pct:.2f}
limits: {NIFTY: {max_lots: 10}}
start: 2024-11-20
ratio: 0.5
flag: true
nothing: ~
"""


def refusal(text: str) -> Finding:
    with pytest.raises(PolicyError) as err:
        load_text(text, "p.yaml")
    assert len(err.value.findings) == 1
    return err.value.findings[0]


def test_plain_data() -> None:
    doc = load_text(TEXT, "p.yaml")
    assert doc.file == "p.yaml"
    assert doc.data == {
        "kind": "risk", "version": 1, "capital": 1_000_000,
        "rules": [{"id": "daily-loss", "when": "account.day_pnl_pct <= -3",
                   "then": ["halt", "alert"],
                   "message": "day P&L\n{account.day_pnl_pct:.2f}\n"}],
        "limits": {"NIFTY": {"max_lots": 10}},
        "start": "2024-11-20",  # dates stay text; the schema checks their form
        "ratio": 0.5, "flag": True, "nothing": None,
    }
    assert doc.lines[0] == "# a comment"


def test_locations_are_one_based() -> None:
    doc = load_text(TEXT, "p.yaml")
    assert doc.loc(("kind",)) == Loc(2, 7, None)
    assert doc.key_loc(("kind",)) == Loc(2, 1)
    assert doc.loc(("rules", 0)) == Loc(6, 5, None)
    assert doc.loc(("rules", 0, "when")) == Loc(7, 11, '"')
    assert doc.loc(("rules", 0, "then", 1)) == Loc(8, 18, None)
    assert doc.loc(("rules", 0, "message")) == Loc(9, 14, "|")
    assert doc.key_loc(("limits", "NIFTY", "max_lots")) == Loc(12, 18)
    assert doc.loc(("limits", "NIFTY", "max_lots")).col == 28


def test_missing_path_falls_back_to_nearest_ancestor() -> None:
    doc = load_text(TEXT, "p.yaml")
    assert doc.loc(("rules", 0, "severity")) == doc.loc(("rules", 0))
    assert doc.key_loc(("rules", 0, "severity")) == doc.loc(("rules", 0))
    assert doc.loc(("nope", 3)) == doc.loc(())
    finding = doc.finding(("rules", 0, "when"), "unknown-name", "m")
    assert (finding.file, finding.line, finding.col) == ("p.yaml", 7, 11)


def test_empty_file_has_no_data() -> None:
    assert load_text("", "p.yaml").data is None
    assert load_text("# only a comment\n", "p.yaml").data is None


def test_small_aliases_are_expanded() -> None:
    doc = load_text("a: &x [1, 2]\nb: *x\n", "p.yaml")
    assert doc.data == {"a": [1, 2], "b": [1, 2]}
    doc.data["b"].append(3)
    assert doc.data["a"] == [1, 2]  # expanded copies, not shared lists


REFUSALS = [
    ("a: [1, 2\nb: 3\n", "yaml-syntax", 2, 2),
    ("a: 1\n---\nb: 2\n", "yaml-syntax", 2, 1),
    ("a: b: c\n", "yaml-syntax", 1, 5),
    ("? [1, 2]\n: x\n", "yaml-syntax", 1, 3),
    ("a: 1\nb: 2\na: 3\n", "yaml-duplicate-key", 3, 1),
    ("x:\n  a: 1\n  a: 2\n", "yaml-duplicate-key", 3, 3),
    ("a: !!python/object/apply:os.system [ls]\n", "yaml-forbidden-tag", 1, 4),
    ("a: !!python/name:os.system\n", "yaml-forbidden-tag", 1, 4),
    ("a: !custom 3\n", "yaml-forbidden-tag", 1, 4),
    ("a: !!binary aGVsbG8=\n", "yaml-forbidden-tag", 1, 4),
    ("a: !!set {x, y}\n", "yaml-forbidden-tag", 1, 4),
    ("base: &b {x: 1}\nc:\n  <<: *b\n", "yaml-forbidden-tag", 3, 3),
    ("a: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n", "yaml-too-deep", 1, 67),
    ("a: .inf\n", "schema-value", 1, 4),
    ("a: .NaN\n", "schema-value", 1, 4),
    ("a: \ud800\n", "yaml-syntax", 1, 1),  # a lone surrogate: text that is not Unicode
]


@pytest.mark.parametrize(("text", "code", "line", "col"), REFUSALS)
def test_refusals_are_located(text: str, code: str, line: int, col: int) -> None:
    finding = refusal(text)
    assert (finding.file, finding.code, finding.line, finding.col) == ("p.yaml", code, line,
                                                                       col)


def test_syntax_error_names_where_the_construct_started() -> None:
    finding = refusal("a: [1, 2\nb: 3\n")
    assert "starts at line 1, column 4" in finding.message
    # libyaml says "did not find expected ',' or ']'"; the pure-Python wording names the culprit
    assert finding.message.startswith("expected ',' or ']', but got ':'")


@pytest.mark.parametrize("pure", [False, True], ids=["default-parser", "pure-python-parser"])
def test_both_parsers_give_the_same_answers(pure: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if pure:
        monkeypatch.setattr(yamlsource, "_FAST", yamlsource._PURE)
    doc = load_text(TEXT, "p.yaml")
    assert doc.loc(("kind",)) == Loc(2, 7, None)  # libyaml's '' plain style reads as None
    assert doc.loc(("rules", 0, "when")) == Loc(7, 11, '"')
    assert doc.loc(("rules", 0, "message")) == Loc(9, 14, "|")
    for text, code, line, col in REFUSALS:
        finding = refusal(text)
        assert (finding.code, finding.line, finding.col) == (code, line, col), text


@pytest.mark.parametrize(("written", "shown"), [
    ("!!python/object/apply:os.system [ls]", "'!!python/object/apply:os.system'"),
    ("!!python/name:os.system", "'!!python/name:os.system'"),
    ("!!binary aGVsbG8=", "'!!binary'"),
    ("!custom 3", "'!custom'"),
    ("!<tag:example.com,2024:x> 3", "'!<tag:example.com,2024:x>'"),
])
def test_forbidden_tag_is_shown_as_written(written: str, shown: str) -> None:
    finding = refusal(f"a: {written}\n")
    assert finding.code == "yaml-forbidden-tag"
    assert finding.message.startswith(f"tag {shown} is not allowed")
    assert "tag:yaml.org" not in finding.message


def test_too_many_plain_values_is_too_large_not_an_alias_bomb() -> None:
    finding = refusal("a: [" + "1, " * MAX_NODES + "1]\n")
    assert finding.code == "yaml-too-large"
    # The top mapping, 'a' and the list are three values: item 99,998 is the 100,001st.
    assert (finding.line, finding.col) == (1, 5 + 3 * (MAX_NODES - 3))
    assert finding.message.startswith(f"file holds more than {MAX_NODES:,} values;")


def test_a_small_alias_does_not_make_a_large_file_an_alias_bomb() -> None:
    finding = refusal("a: &a [x, x, x]\nb: [*a, *a]\nc: [" + "1, " * MAX_NODES + "1]\n")
    assert finding.code == "yaml-too-large"
    assert ", 8 of them copied by aliases;" in finding.message  # two aliases of four values


def test_aliases_supplying_most_values_are_an_alias_bomb() -> None:
    # Aliases copy 60,000 values; 50,000 plain values after them tip the count over.
    text = ("a: &a [" + ", ".join(["x"] * 999) + "]\nb: [" + ", ".join(["*a"] * 60) + "]\n"
            "c: [" + "1, " * 50_000 + "1]\n")
    finding = refusal(text)
    assert (finding.code, finding.line) == ("yaml-alias-bomb", 3)


def test_alias_bomb_points_at_the_alias() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for name, prev in zip("bcdef", "abcde", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    finding = refusal("\n".join(lines) + "\n")
    assert finding.code == "yaml-alias-bomb"
    # 'e' holds ten copies of 'd' (11,111 values each): its eighth '*d' passes 100,000.
    assert finding.line == 5
    assert finding.col == 8 + 4 * 7
    assert lines[4][finding.col - 1:].startswith("*d")


def test_deep_nesting_through_aliases() -> None:
    inner = "[" * 40 + "x" + "]" * 40
    finding = refusal(f"a: &a {inner}\nb: [{'[' * 30}*a{']' * 30}]\n")
    assert (finding.code, finding.line) == ("yaml-too-deep", 2)
    assert finding.col == 35  # the '*a' alias


def test_file_errors(tmp_path: Path, write_policy: Callable[[str, str], Path]) -> None:
    with pytest.raises(PolicyError) as err:
        load_file(tmp_path / "absent.yaml")
    assert err.value.findings[0].code == "yaml-syntax"
    assert "cannot read file" in err.value.findings[0].message

    latin = tmp_path / "latin.yaml"
    latin.write_bytes("description: caf\xe9\n".encode("latin-1"))
    with pytest.raises(PolicyError) as err:
        load_file(latin)
    assert err.value.findings[0].code == "yaml-syntax"
    assert "UTF-8" in err.value.findings[0].message

    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * MAX_BYTES + "\n", encoding="utf-8")
    with pytest.raises(PolicyError) as err:
        load_file(big, "shown.yaml")
    f = err.value.findings[0]
    assert (f.file, f.code, f.line, f.col) == ("shown.yaml", "yaml-too-large", 1, 1)

    ok = write_policy("ok.yaml", "kind: risk\nversion: 1\n")
    assert load_file(ok).file == str(ok)
    assert load_file(ok, "display.yaml").data == {"kind": "risk", "version": 1}


def test_finding_text_format() -> None:
    f = Finding(file="p.yaml", line=3, col=7, code="unknown-name", message="m")
    assert str(f) == "p.yaml:3:7: unknown-name: m"
    w = Finding(file="p.yaml", line=3, col=7, code="constant-condition", message="m",
                severity="warning")
    assert str(w) == "p.yaml:3:7: constant-condition (warning): m"
    early = Finding(file="p.yaml", line=2, col=9, code="yaml-syntax", message="m")
    assert sorted([w, f, early]) == [early, w, f]  # by file, line, column, then code
    assert f.as_dict() == {"file": "p.yaml", "line": 3, "col": 7, "code": "unknown-name",
                           "severity": "error", "message": "m"}
