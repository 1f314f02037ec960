"""``docs/errors/`` has exactly one page per finding code, and each page's example is true.

A page shows a broken ``policy.yaml``, the command that lints it, the exact output, and the
corrected file. These tests run that command on that file and compare the output line for line,
then lint the corrected file and expect no finding at all.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from ruleengine.errors import CODES
from ruleengine.policyset import lint

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS = REPO_ROOT / "docs" / "errors"
PAGES = sorted(p for p in DOCS.glob("*.md") if p.name != "README.md")

_FENCE = re.compile(r"```(?P<lang>[a-z]*)\n(?P<body>.*?)\n```", re.DOTALL)
_COMMAND = re.compile(r"^`ruleengine lint (?P<args>[^`]+)` reports:$", re.MULTILINE)


def test_one_page_per_code() -> None:
    assert {p.stem for p in PAGES} == set(CODES)


def test_index_links_every_page() -> None:
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\(([a-z-]+)\.md\)", index))
    assert linked == set(CODES)


def blocks(section: str) -> list[tuple[str, str]]:
    return [(m["lang"], m["body"]) for m in _FENCE.finditer(section)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_page_shape(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    code = page.stem
    assert text.startswith(f"# {code}\n")
    assert CODES[code] in text
    assert "## Example" in text and "## How to fix" in text
    example, fix = text.split("## How to fix")
    output = [body for lang, body in blocks(example) if lang == "text"]
    assert len(output) == 1
    assert all(f": {code}" in line for line in output[0].splitlines())
    assert fix.strip(), "the fix needs words"


@pytest.mark.parametrize("page", [p for p in PAGES if p.stem != "yaml-too-large"],
                         ids=lambda p: p.stem)
def test_page_example_output_is_exact(page: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    text = page.read_text(encoding="utf-8")
    example, fix = text.split("## How to fix")
    broken = [body for lang, body in blocks(example) if lang == "yaml"]
    output = [body for lang, body in blocks(example) if lang == "text"]
    fixed = [body for lang, body in blocks(fix) if lang == "yaml"]
    assert len(broken) == len(output) == len(fixed) == 1
    command = _COMMAND.search(example)
    assert command, "the page must say which command produced the output"
    args = command["args"].split()
    assert args[0] == "policy.yaml"
    for shipped in args[1:]:  # shipped companion files, copied at the same relative path
        (tmp_path / shipped).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / shipped, tmp_path / shipped)
    monkeypatch.chdir(tmp_path)

    Path("policy.yaml").write_text(broken[0] + "\n", encoding="utf-8")
    assert [str(f) for f in lint(args)] == output[0].splitlines()

    Path("policy.yaml").write_text(fixed[0] + "\n", encoding="utf-8")
    assert [str(f) for f in lint(args)] == []


def test_too_large_page_output_is_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (DOCS / "yaml-too-large.md").read_text(encoding="utf-8")
    [output] = [body for lang, body in blocks(text) if lang == "text"]
    written = re.search(r"file is ([0-9,]+) bytes", output)
    assert written
    size = int(written[1].replace(",", ""))
    monkeypatch.chdir(tmp_path)
    Path("policy.yaml").write_text("# " + "x" * (size - 3) + "\n", encoding="utf-8")
    assert [str(f) for f in lint(["policy.yaml"])] == [output]
