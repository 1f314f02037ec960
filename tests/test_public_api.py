"""The public API stays small, sorted and importable."""

from __future__ import annotations

import ruleengine


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert ruleengine.__all__ == sorted(ruleengine.__all__)
    for name in ruleengine.__all__:
        assert getattr(ruleengine, name) is not None


def test_errors_share_one_root() -> None:
    for name in ruleengine.__all__:
        obj = getattr(ruleengine, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, ruleengine.RuleEngineError), name
