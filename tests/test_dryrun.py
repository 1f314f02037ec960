"""Dry run: ``ruleengine lint ... --dry-run DATA [--compare OTHER]`` (ruleengine/dryrun.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ruleengine.cli import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, main
from ruleengine.dryrun import DryRun, compare, compare_paths, dry_run, silenced

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
TARIFF_DAYS = SHARED / "intraday_5min" / "NIFTY50_5min_2025-04-04_to_08.csv"
needs_shared = pytest.mark.skipif(not TARIFF_DAYS.is_file(),
                                  reason=f"real market data not found at {TARIFF_DAYS}")
SHIPPED = [str(REPO / "policies"), str(REPO / "strategies")]
GAP_RULE = "abs(market.gap_pct) >= 2 and"


def probe_day(root: Path) -> tuple[list[str], Path]:
    """The shipped set plus a rule that fires on each up-bar, and a session of 1-minute bars
    alternating 22000/22100 from an open of 21950: a dry run with known firings."""
    shutil.copytree(REPO / "policies", root / "policies")
    risk = root / "policies" / "risk.yaml"
    risk.write_text(risk.read_text(encoding="utf-8") + """
  - id: probe
    when: market.spot >= 22050
    then: [alert]
    message: "spot {market.spot:.0f}"
""", encoding="utf-8")
    rows, prev = ["date,open,high,low,close,volume"], 21950.0
    for i in range(30):
        h, m = divmod(9 * 60 + 15 + i, 60)
        close = 22100.0 if i % 2 == 0 else 22000.0
        rows.append(f"26-11-2026 {h:02d}:{m:02d},{prev},{max(prev, close) + 5},"
                    f"{min(prev, close) - 5},{close},0")
        prev = close
    data = root / "bars.csv"
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return [str(root / "policies"), str(REPO / "strategies")], data


@pytest.fixture(scope="module")
def probe_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], Path, DryRun]:
    policy_paths, data = probe_day(tmp_path_factory.mktemp("probe"))
    return policy_paths, data, dry_run(data, policy_paths)


def test_a_dry_run_lists_what_fired_with_time_rule_scope_and_message(
        probe_run: tuple[list[str], Path, DryRun]) -> None:
    _paths, _data, result = probe_run
    assert result.ticks == 31  # the previous close at 09:00, then one tick per bar
    fired = result.fired["probe"]
    assert [f"{t:%H:%M}" for t in fired[:3]] == ["09:16", "09:18", "09:20"]
    text = result.render()
    line = next(x for x in text.splitlines() if " probe " in x and "rule_fired" in x)
    assert line.startswith("2026-11-26 09:16:00") and "account" in line and "spot 22100" in line
    assert "Orders that would have gone out: none" in text
    assert "nothing was sent to any broker" in text


def test_without_a_previous_close_the_first_open_stands_in_and_the_output_says_so(
        probe_run: tuple[list[str], Path, DryRun]) -> None:
    policy_paths, data, result = probe_run
    assert result.prev_close == 21950.0
    assert "first bar's open" in result.render()
    given = dry_run(data, policy_paths, prev_close=21000.0)
    assert given.prev_close == 21000.0 and "given with --prev-close" in given.render()


def test_a_dry_run_switches_every_alert_sink_off_but_keeps_the_revision() -> None:
    from ruleengine.policyset import load_policy_set

    policy = load_policy_set(SHIPPED)
    quiet = silenced(policy)
    assert quiet.revision == policy.revision
    [alerts] = quiet.of_kind("alerts")
    assert alerts["sinks"] and not any(s["enabled"] for s in alerts["sinks"].values())
    assert any(s["enabled"] for s in policy.of_kind("alerts")[0]["sinks"].values())


def test_the_same_run_twice_compares_as_no_difference(
        probe_run: tuple[list[str], Path, DryRun]) -> None:
    _paths, _data, result = probe_run
    cmp = compare(result, result)
    assert cmp.same and "No difference" in cmp.render()


def test_compare_paths_borrow_the_strategies_when_the_other_folder_has_none(
        tmp_path: Path) -> None:
    shutil.copytree(REPO / "policies", tmp_path / "policies")
    other = compare_paths(SHIPPED, tmp_path / "policies")
    assert other[0] == str(tmp_path / "policies")
    assert {Path(p).name for p in other[1:]} == {p.name for p in (REPO / "strategies").iterdir()
                                                 if p.suffix == ".yaml"}
    assert compare_paths(SHIPPED, REPO) == [str(REPO)]  # a checkout with its own strategies


@needs_shared
def test_cli_dry_run_over_the_tariff_crash_days_prints_a_timeline(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", *SHIPPED, "--dry-run", str(TARIFF_DAYS)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "Dry run of" in out and "NIFTY50_5min_2025-04-04_to_08.csv" in out
    assert "first bar's open" in out  # the file has no previous close
    # 7 Apr 2025 opened 4.47% below 4 Apr's last price: the gap brake fires at the first bar
    assert any(x.startswith("2025-04-07 09:20:00  rule_fired   opening-gap")
               for x in out.splitlines())
    # three sessions, each squared off at 15:15 (day rollover in one multi-day file)
    assert sum(1 for x in out.splitlines() if "rule_fired   intraday-square-off" in x) == 3
    assert "Orders that would have gone out:" in out


@needs_shared
def test_cli_compare_shows_how_a_different_threshold_decides_differently(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "policies"
    shutil.copytree(REPO / "policies", other)
    cb = other / "circuit_breakers.yaml"
    text = cb.read_text(encoding="utf-8")
    assert text.count(GAP_RULE) == 1
    cb.write_text(text.replace(GAP_RULE, "abs(market.gap_pct) >= 5 and"), encoding="utf-8")
    assert main(["lint", *SHIPPED, "--dry-run", str(TARIFF_DAYS), "--compare", str(other)]) \
        == EXIT_OK
    out = capsys.readouterr().out
    assert "Fired only in A: opening-gap at 2025-04-07 09:20" in out
    assert "rule opening-gap when: abs(market.gap_pct) >= 2 → 5" in out
    assert "Orders: A 0, B 0 (same count)" in out
    only_a = out.split("Timeline entries only in A (")[1].split("Timeline entries only in B")[0]
    assert "2025-04-07 09:20:00  rule_fired   opening-gap" in only_a
    # B fires no rule A did not; a state change may show only in B because A's gap brake
    # already held the scope when the feed-stale brake fired
    only_b = out.split("Timeline entries only in B")[1]
    assert "rule_fired" not in only_b


@pytest.mark.parametrize("argv", [
    ["--compare", "elsewhere"], ["--prev-close", "22000"],
    ["--dry-run", "bars.csv", "--format", "json"], ["--dry-run", "no-such-file.csv"]])
def test_cli_dry_run_usage_errors(argv: list[str]) -> None:
    assert main(["lint", *SHIPPED, *argv]) == EXIT_USAGE


def test_a_set_with_errors_is_not_replayed(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "risk.yaml"
    bad.write_text("kind: risk\nversion: 1\nrules: []\n", encoding="utf-8")
    assert main(["lint", str(bad), "--dry-run", str(tmp_path / "bars.csv")]) == EXIT_FINDINGS
    assert "Dry run" not in capsys.readouterr().out
