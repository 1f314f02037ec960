"""Loading a directory into one compiled, versioned PolicySet; the lint entry point."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from ruleengine.errors import PolicyError
from ruleengine.policyset import discover, lint, load_policy_set


@pytest.fixture
def shipped(tmp_path: Path, repo_root: Path) -> Path:
    """A private copy of the shipped ``policies/`` and ``strategies/`` folders."""
    root = tmp_path / "shipped"
    for name in ("policies", "strategies"):
        shutil.copytree(repo_root / name, root / name)
    return root


def folders(root: Path) -> list[Path]:
    return [root / "policies", root / "strategies"]


def test_shipped_policies_load(repo_root: Path) -> None:
    pset = load_policy_set(folders(repo_root))
    assert re.fullmatch(r"[0-9a-f]{64}", pset.revision)
    assert pset.warnings == ()
    kinds = {d.kind for d in pset.documents}
    assert {"risk", "strategy", "instruments"} <= kinds
    assert {"kill-switch", "daily-loss-limit"} <= {r.id for r in pset.rules}
    assert {s.id for s in pset.strategies} >= {"iron-condor", "short-straddle-0920"}
    assert {"NIFTY", "BANKNIFTY", "FINNIFTY", "SENSEX"} <= set(pset.instruments)
    assert pset.capital == 1_000_000
    assert pset.order_limits["NIFTY"] == {"max_lots": 10, "max_qty": 650}


def test_shipped_policies_lint_clean(repo_root: Path) -> None:
    assert lint(folders(repo_root)) == []
    assert lint(folders(repo_root), strict=True) == []


def test_rules_are_compiled_with_defaults(repo_root: Path) -> None:
    pset = load_policy_set(folders(repo_root))
    kill = pset.rule("kill-switch")
    assert kill.when.evaluate({"operator.kill_switch": True}) is True
    assert kill.then == ("halt", "cancel_pending", "square_off", "alert")
    assert (kill.rearm, kill.overridable, kill.severity) == ("manual", False, "critical")
    assert kill.location == f"{kill.file}:{kill.line}"
    loss = pset.rule("daily-loss-limit")
    assert loss.when.evaluate({"account.day_pnl_pct": -3.0}) is True
    assert loss.when.evaluate({"account.day_pnl_pct": -2.99}) is False
    assert loss.message.render({"account.day_pnl_pct": -3.456}) == \
        "day P&L -3.46% breached the -3% limit"
    # Keys left out take the schema defaults.
    assert (loss.targets, loss.cooldown_s) == ((), 0.0)
    warning = pset.rule("daily-loss-warning")
    assert warning.cooldown_s == 1800.0
    assert warning.rearm == "manual" and warning.overridable is True
    with pytest.raises(KeyError):
        pset.rule("no-such-rule")


def test_strategies_are_compiled_with_defaults(repo_root: Path) -> None:
    pset = load_policy_set(folders(repo_root))
    condor = next(s for s in pset.strategies if s.id == "iron-condor")
    assert condor.timeframe_s == 300
    assert (condor.entry_start_s, condor.entry_end_s) == (9 * 3600 + 45 * 60, 13 * 3600)
    assert [leg.strike_offset for leg in condor.legs] == [8, -8, 4, -4]
    assert condor.exit.evaluate({}) is False  # default exit: "false"
    assert condor.reentry_enabled is False  # default reentry
    assert condor.entry.evaluate({"market.vix": 15.0, "market.change_pct": -0.5}) is True
    docs = pset.of_kind("strategy")
    assert all(d["kind"] == "strategy" for d in docs) and len(docs) == len(pset.strategies)


def test_revision_is_stable_across_loads(shipped: Path) -> None:
    first = load_policy_set(folders(shipped)).revision
    assert load_policy_set(folders(shipped)).revision == first
    assert load_policy_set(list(reversed(folders(shipped)))).revision == first


def test_revision_changes_when_a_number_changes(shipped: Path) -> None:
    before = load_policy_set(folders(shipped)).revision
    risk = shipped / "policies" / "risk.yaml"
    text = risk.read_text(encoding="utf-8")
    assert "when: account.day_pnl_pct <= -3\n" in text
    risk.write_text(text.replace("when: account.day_pnl_pct <= -3\n",
                                 "when: account.day_pnl_pct <= -4\n"), encoding="utf-8")
    changed = load_policy_set(folders(shipped)).revision
    assert changed != before
    risk.write_text(text.replace("capital: 1000000", "capital: 1000001"), encoding="utf-8")
    assert load_policy_set(folders(shipped)).revision not in (before, changed)


def test_revision_ignores_comments_layout_and_spelled_out_defaults(shipped: Path) -> None:
    before = load_policy_set(folders(shipped)).revision
    risk = shipped / "policies" / "risk.yaml"
    text = risk.read_text(encoding="utf-8")
    text = "# an extra comment\n\n" + text.replace(
        "    cooldown: 30m\n", "    cooldown: 30m      # half an hour\n    targets: []\n")
    risk.write_text(text, encoding="utf-8")
    # Moving a file does not change the content, so not the revision either.
    (shipped / "policies" / "risk.yaml").rename(shipped / "policies" / "z_risk.yaml")
    assert load_policy_set(folders(shipped)).revision == before


def test_all_errors_from_all_files_are_raised_together(
        write_policy: Callable[[str, str], Path], tmp_path: Path) -> None:
    write_policy("set/a.yaml", "kind: risk\nversion: 1\ncapitol: 1\n")
    write_policy("set/b.yaml", "kind: strategy\nversion: 1\nid: s\nunderlying: NIFTY\n"
                 "entry: market.vixx > 3\nlegs: [{id: a, side: BUY}]\n")
    write_policy("set/c.yaml", "kind: risk\nversion: 1\nrules: [{id: x, when: 'market.vix >',"
                 " then: [halt]}]\n")
    with pytest.raises(PolicyError) as err:
        load_policy_set([tmp_path / "set"])
    assert err.value.findings == sorted(err.value.findings)
    got = [(Path(f.file).name, f.code) for f in err.value.findings]
    assert set(got) >= {("a.yaml", "schema-unknown-key"), ("b.yaml", "unknown-name"),
                        ("c.yaml", "expr-syntax")}
    assert str(err.value).count("\n") == len(err.value.findings) - 1


def test_warnings_load_unless_strict(write_policy: Callable[[str, str], Path],
                                     constant_rule_yaml: str) -> None:
    path = write_policy("risk.yaml", constant_rule_yaml)
    pset = load_policy_set([path])
    assert [(w.code, w.severity, w.line) for w in pset.warnings] == [
        ("constant-condition", "warning", 11)]
    with pytest.raises(PolicyError) as err:
        load_policy_set([path], strict=True)
    assert [f.code for f in err.value.findings] == ["constant-condition"]
    assert [f.severity for f in lint([path])] == ["warning"]
    assert [f.severity for f in lint([path], strict=True)] == ["error"]


def test_lint_is_sorted_and_deduplicated(write_policy: Callable[[str, str], Path]) -> None:
    path = write_policy("risk.yaml", "kind: risk\nversion: 1\nrules:\n"
                        "  - {id: a, when: 'market.vixx > 1', then: [alert]}\n"
                        "  - {id: a, when: 'market.vix >= 0', then: [alert]}\n")
    findings = lint([path, path])
    assert findings == sorted(findings)
    assert len(findings) == len(set(findings))
    assert [(f.code, f.line) for f in findings] == [
        ("missing-daily-loss-limit", 3), ("missing-kill-switch", 3), ("unknown-name", 4),
        ("duplicate-id", 5), ("constant-condition", 5)]


def test_discover(tmp_path: Path, write_policy: Callable[[str, str], Path]) -> None:
    a = write_policy("p/a.yaml", "")
    b = write_policy("p/sub/b.yml", "")
    write_policy("p/a_test.yaml", "")
    write_policy("p/notes.txt", "")
    write_policy("p/c_test.yml", "")
    assert discover([tmp_path / "p"]) == [a, b]
    assert discover([a, tmp_path / "p", a]) == [a, b]
    explicit = tmp_path / "p" / "a_test.yaml"
    assert discover([explicit]) == [explicit]  # named files are taken as given


def test_no_policy_files_is_a_finding(tmp_path: Path) -> None:
    findings = lint([tmp_path])
    assert [f.code for f in findings] == ["yaml-syntax"]
    assert "no policy files" in findings[0].message


def test_strategy_scope_reference_checked_against_loaded_strategies(
        repo_root: Path, write_policy: Callable[[str, str], Path]) -> None:
    extra = write_policy("extra_risk.yaml", """\
        kind: risk
        version: 1
        rules:
          - id: condor-guard
            when: strategy.day_pnl_pct <= -2
            then: [disable_strategy]
            scope: strategy
            targets: [iron-condor, iron-condr]
        """)
    findings = lint([*folders(repo_root), extra])
    assert [(f.code, f.line, f.col) for f in findings] == [("unknown-reference", 8, 28)]
    assert "no strategy with id 'iron-condr'" in findings[0].message
