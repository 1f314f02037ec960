"""The broken-policy corpus: each file has one problem, and the linter must name it exactly.

Every file under ``tests/corpus/broken/`` starts with ``# expect: CODE LINE:COL``; an optional
second line ``# with: PATH ...`` names shipped files (relative to the repository) to lint it
with, for checks that need another file, such as the instruments data. The expected finding
must appear at exactly that 1-based line and column, and no other error may appear.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from ruleengine.errors import CODES
from ruleengine.policyset import lint

REPO_ROOT = Path(__file__).resolve().parents[1]
CORPUS = REPO_ROOT / "tests" / "corpus" / "broken"
FILES = sorted(CORPUS.glob("*.yaml"))

_EXPECT = re.compile(r"^# expect: (?P<code>[a-z-]+) (?P<line>[0-9]+):(?P<col>[0-9]+)$")
_WITH = re.compile(r"^# with: (?P<paths>\S.*)$")

#: Codes a small file cannot produce (the size bound needs a file over a megabyte); the
#: hostile-input tests cover them.
NOT_IN_CORPUS = {"yaml-too-large"}

#: Expression codes get several variants each.
EXPRESSION_CODES = {"expr-syntax", "expr-forbidden", "expr-too-large", "unknown-name",
                    "unknown-function", "type-mismatch", "constant-condition", "template-error"}


@dataclass(frozen=True)
class Expectation:
    code: str
    line: int
    col: int
    with_: tuple[Path, ...]


def expectation(path: Path) -> Expectation:
    lines = path.read_text(encoding="utf-8").splitlines()
    match = _EXPECT.match(lines[0]) if lines else None
    assert match, f"{path.name}: first line must be '# expect: CODE LINE:COL'"
    extra: tuple[Path, ...] = ()
    if len(lines) > 1 and (w := _WITH.match(lines[1])):
        extra = tuple(REPO_ROOT / p for p in w["paths"].split())
    return Expectation(match["code"], int(match["line"]), int(match["col"]), extra)


def test_corpus_is_large_enough() -> None:
    assert len(FILES) >= 35


def test_corpus_covers_every_file_code() -> None:
    counts = Counter(expectation(p).code for p in FILES)
    assert set(counts) <= set(CODES), f"unknown codes in corpus: {set(counts) - set(CODES)}"
    assert set(CODES) - NOT_IN_CORPUS <= set(counts), \
        f"codes without a corpus file: {sorted(set(CODES) - NOT_IN_CORPUS - set(counts))}"
    thin = {c: counts[c] for c in EXPRESSION_CODES if counts[c] < 2}
    assert not thin, f"expression codes need several variants: {thin}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_corpus_file(path: Path) -> None:
    want = expectation(path)
    text_lines = path.read_text(encoding="utf-8").splitlines()
    # The expected place exists in the file (a column may sit one past a line's end, where an
    # expression that stops too early would continue).
    assert 1 <= want.line <= len(text_lines)
    assert 1 <= want.col <= len(text_lines[want.line - 1]) + 1

    findings = lint([path, *want.with_])

    hits = [f for f in findings if f.file == str(path) and f.code == want.code
            and (f.line, f.col) == (want.line, want.col)]
    assert hits, (f"expected {want.code} at {want.line}:{want.col}; got:\n"
                  + "\n".join(str(f) for f in findings))
    expected_severity = "warning" if want.code == "constant-condition" else "error"
    assert all(f.severity == expected_severity for f in hits)
    others = [f for f in findings if f.severity == "error" and f not in hits]
    assert not others, "unexpected errors:\n" + "\n".join(str(f) for f in others)


@pytest.mark.parametrize("path", [p for p in FILES if expectation(p).with_],
                         ids=lambda p: p.name)
def test_companion_files_lint_clean_alone(path: Path) -> None:
    """The shipped files a corpus file is linted with contribute no finding of their own."""
    assert lint(list(expectation(path).with_)) == []
