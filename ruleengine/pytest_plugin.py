"""pytest collects policy tests (``*_test.yaml`` with ``kind: policy_test``) as test items.

Teams already run pytest in CI and know its selection and reports, so policy tests should not
need a second runner there: each case becomes one item named by the case (``pytest policies
-k "VIX"`` works), and a failure shows the same located, readable difference as ``ruleengine
test``. Coverage stays with ``ruleengine test --coverage``, which sees every file at once.

Registered through the ``pytest11`` entry point named ``ruleengine`` (``-p no:ruleengine`` turns
it off). Only files whose text says ``kind: policy_test`` are claimed, so any other YAML that
happens to end in ``_test.yaml`` is left alone, and the engine is imported only once such a file
is found: a pytest run without policy tests pays nothing for the plugin.

The policy set a file runs against comes from the ``ruleengine_policies`` ini option (folders
relative to the rootdir); without it, ``policies`` and ``strategies`` under the rootdir, as
``ruleengine test`` uses by default; without those, the test file's own folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from _pytest._code.code import TerminalRepr, TracebackStyle

    from .policyset import PolicySet
    from .policytest import CaseResult, PolicyCase

#: The same suffixes as :data:`ruleengine.policyset.TEST_SUFFIXES` (kept here so that looking
#: at a file name imports nothing; a test keeps the two in step).
SUFFIXES = ("_test.yaml", "_test.yml")
INI = "ruleengine_policies"
_SETS = pytest.StashKey[dict[tuple[str, ...], Any]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(INI, type="linelist", default=[],
                  help="folders (relative to the rootdir) whose YAML forms the policy set that "
                       "policy tests (*_test.yaml) run against; default: policies and "
                       "strategies under the rootdir, else each test file's folder")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if not file_path.name.endswith(SUFFIXES):
        return None
    from .policytest import is_policy_test

    if not is_policy_test(file_path):
        return None
    node: pytest.Collector = PolicyTestFile.from_parent(parent, path=file_path)
    return node


class PolicyCaseFailed(Exception):
    """A case did not pass; carries its result so the report can show the difference."""

    def __init__(self, result: CaseResult) -> None:
        super().__init__(result.difference())
        self.result = result


def _display(config: pytest.Config, path: Path) -> str:
    try:
        return str(path.relative_to(config.rootpath))
    except ValueError:
        return str(path)


class PolicyTestFile(pytest.File):
    """One ``*_test.yaml``; a malformed file fails collection with its located findings."""

    def collect(self) -> Iterator[pytest.Item]:
        from .policytest import load_test_file

        test_file = load_test_file(self.path, _display(self.config, self.path))
        for case in test_file.cases:
            yield PolicyCaseItem.from_parent(self, name=case.name, case=case)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: TracebackStyle | None = None) -> str | TerminalRepr:
        from .errors import PolicyError

        if isinstance(excinfo.value, PolicyError):
            return f"policy test file does not load:\n{excinfo.value}"
        return super().repr_failure(excinfo)  # a collector's takes no style


class PolicyCaseItem(pytest.Item):
    """One case, run against the policy set when pytest runs the item."""

    def __init__(self, *, case: PolicyCase, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case

    def runtest(self) -> None:
        from .policytest import run_case

        result = run_case(self.case, _policy_for(self.config, self.path))
        if not result.passed:
            raise PolicyCaseFailed(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: TracebackStyle | None = None) -> str | TerminalRepr:
        from .errors import PolicyError

        if isinstance(excinfo.value, PolicyCaseFailed):
            result = excinfo.value.result
            what = "failed" if result.status == "FAIL" else "could not run"
            return f"policy test {what}: {self.case.name}\n{result.difference()}"
        if isinstance(excinfo.value, PolicyError):
            return f"the policy set under test does not load:\n{excinfo.value}"
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.case.line - 1, f"policy test: {self.case.name}"


def policy_folders(config: pytest.Config, test_file: Path) -> list[Path]:
    """The folders whose YAML forms the policy set for ``test_file`` (see the module notes)."""
    from .policytest import DEFAULT_PATHS

    root = config.rootpath
    configured: list[str] = config.getini(INI)
    if configured:
        return [root / p for p in configured]
    found = [root / p for p in DEFAULT_PATHS if (root / p).is_dir()]
    return found or [test_file.parent]


def _policy_for(config: pytest.Config, test_file: Path) -> PolicySet:
    """Load each distinct policy set once per session (a failure is remembered too)."""
    from .errors import PolicyError
    from .policyset import load_policy_set

    folders = policy_folders(config, test_file)
    sets = config.stash.setdefault(_SETS, {})
    key = tuple(str(f) for f in folders)
    if key not in sets:
        try:
            sets[key] = load_policy_set(folders)
        except PolicyError as exc:
            sets[key] = exc
    hit = sets[key]
    if isinstance(hit, PolicyError):
        raise hit
    policy: PolicySet = hit
    return policy
