"""Policy regression tests: the shipped ones pass with full coverage, failures read well,
malformed files are located, and pytest collects the same files through the plugin."""

from __future__ import annotations

import shutil
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from ruleengine import pytest_plugin
from ruleengine.cli import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, main
from ruleengine.errors import PolicyError
from ruleengine.policyset import TEST_SUFFIXES, discover, load_policy_set
from ruleengine.policytest import (
    coverage,
    guard_rules,
    load_test_file,
    run_case,
    run_tests,
    without_alert_sinks,
)

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def policies(tmp_path: Path) -> Path:
    """A copy of the shipped policies without their tests, to put tmp test files beside."""
    folder = tmp_path / "policies"
    folder.mkdir()
    for f in (REPO / "policies").glob("*.yaml"):
        if not f.name.endswith(TEST_SUFFIXES):
            shutil.copy(f, folder / f.name)
    return folder


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


# -- the shipped tests ---------------------------------------------------------------------------

def test_shipped_policy_tests_pass_with_full_coverage() -> None:
    report = run_tests([REPO / "policies"])
    failures = [r.render() for r in report.results if not r.passed]
    assert not report.load_errors and not failures, "\n".join(failures)
    assert {p.name for p in report.files} >= {"risk_test.yaml", "circuit_breakers_test.yaml"}
    assert report.coverage is not None
    assert report.coverage.complete, report.coverage.render()
    assert report.ok(need_coverage=True)
    modes = {r.case.mode for r in report.results}
    assert modes == {"given", "events", "scenario"}
    policy = load_policy_set([REPO / "policies"])
    assert set(report.coverage.rules) == {r.id for r in guard_rules(policy)}
    assert report.coverage.render().endswith("every one made to fire and shown not firing")


def test_policy_loader_still_skips_test_files() -> None:
    found = {p.name for p in discover([REPO / "policies"])}
    assert "risk.yaml" in found
    assert not {n for n in found if n.endswith(TEST_SUFFIXES)}


# -- failures read as differences ------------------------------------------------------------------

BROKEN = """
    kind: policy_test
    version: 1
    cases:
      - name: loss of 2.5% halts
        given: {account.day_pnl_pct: -2.5}
        fires: [daily-loss-limit]
        does_not_fire: [daily-loss-warning]
      - name: vix unknown
        given: {account.day_pnl_pct: -1}
        does_not_fire: [vix-extreme]
      - name: kill leaves the account active
        prev_close: {NIFTY: 24000, vix: 14}
        events:
          - {at: "10:00:00", index: {NIFTY: 24010}, vix: 14.2}
          - {at: "10:00:01", command: kill}
        not_fired: [kill-switch]
        state: {account: ACTIVE}
        state_at: {"10:00:00": {account: HALTED}}
        orders: {count: 1}
      - name: typo in a rule id
        given: {account.day_pnl_pct: -4}
        fires: [dayly-loss-limit]
"""


def test_a_broken_expectation_fails_with_a_readable_difference(policies: Path) -> None:
    path = _write(policies, "broken_test.yaml", BROKEN)
    policy = load_policy_set([policies])
    results = {c.name: run_case(c, policy) for c in load_test_file(path).cases}
    loss = results["loss of 2.5% halts"]
    assert loss.status == "FAIL"
    text = loss.render()
    assert f"FAIL  {path}::loss of 2.5% halts" in text
    assert (f"{path}:6: expected daily-loss-limit to fire; it did not "
            "(values read: account.day_pnl_pct=-2.5)") in text
    assert (f"{path}:7: expected daily-loss-warning not to fire; it fired "
            "(values read: account.day_pnl_pct=-2.5)") in text
    assert loss.fired == frozenset() and loss.held == frozenset()
    vix = results["vix unknown"].difference()
    assert ("expected vix-extreme not to fire; it could not be evaluated: no value for "
            "'market.vix' (values read: market.vix=<missing>)") in vix
    kill = results["kill leaves the account active"].difference()
    assert ("expected kill-switch not to fire; it fired at 10:00:01 in account "
            "(values read: operator.kill_switch=true)") in kill
    assert "expected account to be ACTIVE after the last tick; it is HALTED (held by " \
           "kill-switch: kill switch engaged" in kill
    assert "expected account to be HALTED at 10:00:00; it was ACTIVE (no change before " \
           "then)" in kill
    assert "expected exactly 1 order(s) approved; there were 0" in kill
    typo = results["typo in a rule id"]
    assert typo.status == "ERROR"
    assert "no guard rule 'dayly-loss-limit' in the policy set — did you mean " \
           "'daily-loss-limit'?" in typo.difference()


def test_cli_reports_failures_and_coverage_with_exit_codes(
        policies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(policies, "broken_test.yaml", BROKEN)
    assert main(["test", str(policies), "--coverage"]) == EXIT_FINDINGS
    out = capsys.readouterr().out
    assert "FAIL  " in out and "ERROR " in out
    assert "0 passed, 3 failed, 1 could not run (1 test file)" in out
    assert "never made to fire: vix-extreme" in out
    assert "never shown not firing:" in out


def test_cli_passes_without_coverage_and_fails_on_it(
        policies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(policies, "one_test.yaml", """
        kind: policy_test
        version: 1
        cases:
          - name: kill switch both ways
            given: {operator.kill_switch: true}
            fires: [kill-switch]
          - name: kill switch off
            given: {operator.kill_switch: false}
            does_not_fire: [kill-switch]
    """)
    assert main(["test", str(policies)]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "2 passed (1 test file)"
    assert main(["test", str(policies), "--coverage"]) == EXIT_FINDINGS
    out = capsys.readouterr().out
    n = len(guard_rules(load_policy_set([policies])))
    assert f"coverage: {n} guard rules; 1 made to fire, 1 shown not firing" in out
    assert "kill-switch" not in out.split("never made to fire:")[1]


def test_cli_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(tmp_path / "nowhere")]) == EXIT_USAGE
    assert "no such file or folder" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(REPO / "policies" / "risk.yaml", empty / "risk.yaml")
    assert main(["test", str(empty)]) == EXIT_USAGE
    assert "no policy tests" in capsys.readouterr().err


def test_results_are_deterministic(policies: Path) -> None:
    path = _write(policies, "broken_test.yaml", BROKEN)
    policy = load_policy_set([policies])

    def render() -> list[str]:
        return [run_case(c, policy).render() for c in load_test_file(path).cases]

    assert render() == render()


def test_coverage_counts_only_expectations_that_held(policies: Path) -> None:
    path = _write(policies, "c_test.yaml", """
        kind: policy_test
        version: 1
        cases:
          - name: holds
            given: {market.vix: 41, operator.kill_switch: false}
            fires: [vix-extreme]
            does_not_fire: [kill-switch]
          - name: fails
            given: {market.vix: 39}
            fires: [vix-extreme]
    """)
    policy = load_policy_set([policies])
    cov = coverage(policy, [run_case(c, policy) for c in load_test_file(path).cases])
    assert "vix-extreme" not in cov.never_fired and "vix-extreme" in cov.never_held
    assert "kill-switch" in cov.never_fired and "kill-switch" not in cov.never_held
    assert not cov.complete


# -- scenario and data cases -------------------------------------------------------------------

def test_a_data_file_case_replays_through_the_runner(policies: Path) -> None:
    """A short replay with ten silent minutes: the halt rule must see the silence."""
    rows = ["symbol,date,time,open,high,low,close,volume,oi"]
    minutes = [*range(16, 41), *range(51, 60)]
    for i, m in enumerate(minutes):
        price = 24000 + i
        rows.append(f"NIFTY,20261126,09:{m:02d},{price},{price + 2},{price - 2},{price + 1},0,0")
    (policies / "quiet.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    path = _write(policies, "data_test.yaml", """
        kind: policy_test
        version: 1
        cases:
          - name: ten silent minutes are a halt
            data: quiet.csv
            prev_close: {NIFTY: 24000}
            rule_fired: [market-halt]
            not_fired: [flash-crash]
            state_at: {"09:45:00": {"underlying:NIFTY": HALTED}}
            orders: {purpose: entry, max: 0}
          - name: a missing file cannot run
            data: nowhere.csv
            rule_fired: [market-halt]
    """)
    policy = load_policy_set([policies])
    ok, missing = (run_case(c, policy) for c in load_test_file(path).cases)
    assert ok.passed, ok.render()
    assert ok.fired == {"market-halt"} and ok.held == {"flash-crash"}
    assert missing.status == "ERROR"
    assert "could not run this case: data file" in missing.difference()


def test_run_cases_deliver_no_alerts() -> None:
    """A scenario case must not page the desk even where Telegram or e-mail is enabled."""
    from ruleengine.alerting import AlertsConfig

    policy = load_policy_set([REPO / "policies"])
    quiet = without_alert_sinks(policy)
    assert AlertsConfig.from_policy_set(quiet).sinks == ()
    assert quiet.revision == policy.revision and quiet.rules == policy.rules
    assert [d for d in quiet.documents if d.kind != "alerts"] == \
        [d for d in policy.documents if d.kind != "alerts"]


# -- malformed files are located ---------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("""
     kind: policy_test
     version: 1
     cases:
       - name: typo
         given: {account.day_pnl_pc: -2.5}
         fires: [daily-loss-limit]
     """, [("unknown-name", 5, 13, "did you mean 'account.day_pnl_pct'?")]),
    ("""
     kind: policy_test
     version: 1
     cases:
       - name: unquoted time
         given: {session.time: 15:15}
         fires: [intraday-square-off]
     """, [("schema-type", 5, 27, 'write "15:15"')]),
    ("""
     kind: policy_test
     version: 1
     cases:
       - name: unknown key
         given: {market.vix: 41}
         fire: [vix-extreme]
     """, [("schema-unknown-key", 6, 5, "did you mean 'fires'?")]),
    ("""
     kind: policy_test
     version: 1
     cases:
       - name: two modes
         given: {market.vix: 41}
         scenario: calm
         fires: [vix-extreme]
     """, [("schema-value", 6, 5, "one of given, events, scenario or data")]),
    ("""
     kind: policy_test
     version: 1
     cases:
       - name: wrong expectation
         given: {market.vix: 41}
         rule_fired: [vix-extreme]
     """, [("schema-required", 4, 5, "needs at least one expectation"),
           ("schema-unknown-key", 6, 5, "given cases expect fires")]),
    ("""
     kind: policy_test
     version: 1
     cases:
       - name: backwards
         events:
           - {at: "10:00:00", vix: 14}
           - {at: "09:59:00", vix: 14}
         rule_fired: [vix-extreme]
     """, [("schema-value", 7, 14, "earlier than the event before it")]),
    ("""
     kind: policy_test
     version: 1
     cases:
       - name: same
         given: {market.vix: 41}
         fires: [vix-extreme]
       - name: same
         given: {market.vix: 39}
         does_not_fire: [vix-extreme]
     """, [("duplicate-id", 7, 11, "already used at line 4")]),
    ("kind: risk\nversion: 1\n", [("schema-value", 1, 7, "expected 'kind: policy_test'")]),
    ("kind: policy_test\nversion: 1\ncases: [\n", [("yaml-syntax", 4, 1, "")]),
])
def test_a_malformed_test_file_gives_located_errors(
        tmp_path: Path, text: str, expected: list[tuple[str, int, int, str]]) -> None:
    path = _write(tmp_path, "bad_test.yaml", text)
    with pytest.raises(PolicyError) as info:
        load_test_file(path)
    got = [(f.code, f.line, f.col) for f in info.value.findings]
    assert got == [(code, line, col) for code, line, col, _ in expected], info.value
    for finding, (_, _, _, words) in zip(info.value.findings, expected, strict=True):
        assert words in finding.message
        assert finding.file == str(path)


# -- the pytest plugin ---------------------------------------------------------------------------

def test_the_plugin_is_registered_by_entry_point() -> None:
    names = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert names.get("ruleengine") == "ruleengine.pytest_plugin"
    assert pytest_plugin.SUFFIXES == TEST_SUFFIXES


def test_pytest_collects_and_runs_policy_test_files(pytester: pytest.Pytester) -> None:
    folder = pytester.path / "policies"
    folder.mkdir()
    for f in (REPO / "policies").glob("*.yaml"):
        if not f.name.endswith(TEST_SUFFIXES):
            shutil.copy(f, folder / f.name)
    pytester.makeini("[pytest]\n")
    _write(folder, "vix_test.yaml", """
        kind: policy_test
        version: 1
        cases:
          - name: VIX 41 blocks entries
            given: {market.vix: 41}
            fires: [vix-extreme]
          - name: VIX 39 halts
            given: {market.vix: 39}
            fires: [vix-extreme]
    """)
    _write(folder, "other_test.yaml", "kind: something_else\nitems: [1, 2]\n")
    collected = pytester.runpytest("--collect-only", "-q", "policies")
    collected.stdout.fnmatch_lines(["policies/vix_test.yaml::VIX 41 blocks entries",
                                    "policies/vix_test.yaml::VIX 39 halts"])
    assert "other_test.yaml" not in collected.stdout.str()
    result = pytester.runpytest("policies")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*policy test failed: VIX 39 halts*",
        "policies/vix_test.yaml:9: expected vix-extreme to fire; it did not (values read: "
        "market.vix=39)",
    ])
    selected = pytester.runpytest("policies", "-k", "41")
    selected.assert_outcomes(passed=1, deselected=1)


def test_pytest_reports_a_malformed_policy_test_as_a_collection_error(
        pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    folder = pytester.path / "policies"
    folder.mkdir()
    _write(folder, "bad_test.yaml", """
        kind: policy_test
        version: 1
        cases:
          - name: typo
            given: {market.vixx: 41}
            fires: [vix-extreme]
    """)
    result = pytester.runpytest("policies")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*policies/bad_test.yaml:5:13: unknown-name: unknown name "
                                 "'market.vixx'*"])
