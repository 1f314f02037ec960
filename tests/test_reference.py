"""``docs/reference.md`` is generated, complete, and in step with the schemas, names and codes."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest

from ruleengine.cli import main
from ruleengine.errors import CODES
from ruleengine.functions import FUNCTIONS
from ruleengine.names import default_registry
from ruleengine.reference import REGENERATE, render_reference
from ruleengine.schema import kinds, walk_properties

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE = REPO_ROOT / "docs" / "reference.md"


@pytest.fixture(scope="module")
def rendered() -> str:
    return render_reference()


def test_committed_reference_is_up_to_date(rendered: str) -> None:
    committed = REFERENCE.read_text(encoding="utf-8") if REFERENCE.exists() else ""
    if committed != rendered:
        diff = "\n".join(list(difflib.unified_diff(
            committed.splitlines(), rendered.splitlines(), "docs/reference.md (committed)",
            "docs/reference.md (from the sources)", lineterm="", n=0))[:40])
        pytest.fail("docs/reference.md is out of date with the schemas, names, functions or "
                    f"finding codes; regenerate it from the repository root with: {REGENERATE}"
                    f"\n{diff}")


def test_rendering_is_deterministic(rendered: str) -> None:
    assert render_reference() == rendered
    assert rendered.endswith("\n") and not rendered.endswith("\n\n")


def test_every_kind_and_property_appears(rendered: str) -> None:
    for kind in kinds():
        assert f"### kind: `{kind}`" in rendered
        assert f"](#kind-{kind})" in rendered
        for path, _, _ in walk_properties(kind):
            assert f"| `{path}` |" in rendered, f"{kind}: {path}"


def test_every_name_function_and_code_appears(rendered: str) -> None:
    for name in default_registry():
        assert f"| `{name}` |" in rendered, name
    assert "`ind.<name>`" in rendered
    for name in FUNCTIONS:
        assert f"| `{name}(" in rendered, name
    for code, summary in CODES.items():
        assert f"| [`{code}`](errors/{code}.md) | {summary} |" in rendered
        assert (REPO_ROOT / "docs" / "errors" / f"{code}.md").exists()


def test_tables_are_well_formed(rendered: str) -> None:
    """Every row has as many cells as its header, so no description broke a table."""
    width = 0
    for line in rendered.splitlines():
        if not line.startswith("|"):
            width = 0
            continue
        cells = len(re.findall(r"(?<!\\)\|", line)) - 1
        if width == 0:
            width = cells
        assert cells == width, line


def test_docs_check_passes_on_the_committed_file() -> None:
    assert main(["docs", "--check", "--output", str(REFERENCE)]) == 0


def test_docs_writes_and_checks(tmp_path: Path, rendered: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sub" / "reference.md"
    assert main(["docs", "--check", "--output", str(out)]) == 1
    assert "is missing" in capsys.readouterr().err
    assert main(["docs", "--output", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == rendered
    assert main(["docs", "--check", "--output", str(out)]) == 0
    out.write_text(rendered.replace("| yes |", "| no |", 1), encoding="utf-8")
    assert main(["docs", "--check", "--output", str(out)]) == 1
    assert REGENERATE in capsys.readouterr().err
