"""Hot reload: change classification, the reloader's hand-off, and YAML edited under a running
engine (ruleengine/reload.py and its few lines in runner.py)."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import ruleengine.reload
from ruleengine.audit import AuditStore
from ruleengine.cli import EXIT_OK, EXIT_USAGE, build_parser, main
from ruleengine.engine import TickResult
from ruleengine.events import OperatorCommand
from ruleengine.policyset import PolicySet, load_policy_set
from ruleengine.reload import (
    APPROVE_COMMAND,
    PolicyReloader,
    Threshold,
    classify_change,
    in_market_hours,
    parse_threshold,
)
from ruleengine.runner import RunConfig, run

REPO = Path(__file__).resolve().parents[1]
IN_SESSION = datetime(2026, 11, 26, 11, 0)
AFTER_CLOSE = datetime(2026, 11, 26, 16, 0)
DAILY_LOSS = "when: account.day_pnl_pct <= -3\n"

Edits = dict[str, list[tuple[str, str]]]


def copy_set(dest: Path) -> Path:
    """A private copy of the shipped policies and strategies to edit."""
    shutil.copytree(REPO / "policies", dest / "policies")
    shutil.copytree(REPO / "strategies", dest / "strategies")
    return dest


def edit(root: Path, edits: Edits) -> None:
    """Replace text that must occur exactly once, so a test never edits the wrong line."""
    for name, pairs in edits.items():
        path = root / name
        text = path.read_text(encoding="utf-8")
        for old, new in pairs:
            assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {name}"
            text = text.replace(old, new)
        path.write_text(text, encoding="utf-8")


def paths(root: Path) -> list[str]:
    return [str(root / "policies"), str(root / "strategies")]


@pytest.fixture(scope="module")
def shipped() -> PolicySet:
    return load_policy_set([REPO / "policies", REPO / "strategies"])


@pytest.fixture
def variant(tmp_path: Path) -> Callable[[Edits], PolicySet]:
    """The shipped set with some text edits applied, loaded (so it must stay valid)."""
    counter = iter(range(100))

    def make(edits: Edits) -> PolicySet:
        root = copy_set(tmp_path / f"v{next(counter)}")
        edit(root, edits)
        return load_policy_set(paths(root))

    return make


def test_public_names_exist_and_are_sorted() -> None:
    names = ruleengine.reload.__all__
    assert all(hasattr(ruleengine.reload, n) for n in names) and len(set(names)) == len(names)


# -- thresholds -----------------------------------------------------------------------------


def test_simple_threshold_is_parsed_as_name_op_number() -> None:
    assert parse_threshold("account.day_pnl_pct <= -3") == \
        Threshold("account.day_pnl_pct", "<=", -3.0)
    assert parse_threshold("market.vix > 40.5") == Threshold("market.vix", ">", 40.5)
    # a mirrored comparison is normalised so the number is on the right
    assert parse_threshold("-3 >= account.day_pnl_pct") == \
        Threshold("account.day_pnl_pct", "<=", -3.0)


@pytest.mark.parametrize("source", ["account.day_pnl_pct <= -3 and session.is_open",
                                    "not account.day_pnl_pct <= -3", "operator.kill_switch",
                                    "account.day_pnl_pct <= account.capital", "1 < 2", "x <="])
def test_anything_but_one_comparison_with_a_number_has_no_simple_threshold(source: str) -> None:
    assert parse_threshold(source) is None


# -- classify_change ------------------------------------------------------------------------


def test_identical_sets_have_no_changes(shipped: PolicySet) -> None:
    report = classify_change(shipped, shipped)
    assert report.changes == () and not report.loosens
    assert "no effective change" in report.summary()


def test_a_deeper_daily_loss_limit_loosens(shipped: PolicySet,
                                           variant: Callable[[Edits], PolicySet]) -> None:
    new = variant({"policies/risk.yaml": [(DAILY_LOSS, "when: account.day_pnl_pct <= -5\n")]})
    report = classify_change(shipped, new)
    assert report.rules_changed == ("daily-loss-limit",)
    [change] = report.changes
    assert (change.field, change.subject, change.old, change.new, change.effect) == \
        ("when", "account.day_pnl_pct <=", -3.0, -5.0, "loosening")
    assert report.loosens
    assert "-3 → -5" in str(change)
    json.dumps(report.as_dict())  # the diff goes into an audit record as JSON


def test_a_shallower_daily_loss_limit_tightens(shipped: PolicySet,
                                               variant: Callable[[Edits], PolicySet]) -> None:
    new = variant({"policies/risk.yaml": [(DAILY_LOSS, "when: account.day_pnl_pct <= -2\n")]})
    report = classify_change(shipped, new)
    assert [c.effect for c in report.changes] == ["tightening"]
    assert not report.loosens


@pytest.mark.parametrize(("count", "effect"), [(60, "loosening"), (20, "tightening")])
def test_a_greater_or_equal_threshold_is_compared_the_other_way(
        shipped: PolicySet, variant: Callable[[Edits], PolicySet], count: int,
        effect: str) -> None:
    new = variant({"policies/risk.yaml": [("account.trades_today >= 40",
                                           f"account.trades_today >= {count}")]})
    [change] = classify_change(shipped, new).changes
    assert (change.id, change.old, change.new, change.effect) == \
        ("max-trades-per-day", 40.0, float(count), effect)


def test_thresholds_inside_and_or_abs_are_classified(shipped: PolicySet,
                                                     variant: Callable[[Edits], PolicySet]
                                                     ) -> None:
    new = variant({"policies/circuit_breakers.yaml": [
        ("abs(market.move_10m_pct) >= 3", "abs(market.move_10m_pct) >= 4"),
        ('rearm: {mode: auto, when: "market.vix < 35"', 'rearm: {mode: auto, when: "market.vix '
                                                        '< 38"')]})
    report = classify_change(shipped, new)
    by_rule = {(c.id, c.field): c for c in report.changes}
    assert by_rule[("flash-crash", "when")].effect == "loosening"  # fires on bigger moves only
    # a resume condition that holds more often lets trading resume sooner
    assert by_rule[("vix-extreme", "rearm.when")].effect == "loosening"


def test_a_changed_shape_of_a_brake_condition_counts_as_loosening(
        shipped: PolicySet, variant: Callable[[Edits], PolicySet]) -> None:
    new = variant({"policies/risk.yaml": [
        (DAILY_LOSS, "when: account.day_pnl_pct <= -3 and session.is_open\n")]})
    [change] = classify_change(shipped, new).changes
    assert change.effect == "loosening" and "cannot be told" in change.why


def test_an_alert_only_rule_change_is_listed_but_never_loosens(
        shipped: PolicySet, variant: Callable[[Edits], PolicySet]) -> None:
    new = variant({"policies/risk.yaml": [("when: account.day_pnl_pct <= -2\n",
                                           "when: account.day_pnl_pct <= -2.5\n")]})
    report = classify_change(shipped, new)
    assert report.rules_changed == ("daily-loss-warning",)
    assert [c.effect for c in report.changes] == ["neutral"] and not report.loosens


def test_bigger_order_limits_capital_and_risk_loosen(shipped: PolicySet,
                                                     variant: Callable[[Edits], PolicySet]
                                                     ) -> None:
    new = variant({"policies/risk.yaml": [
        ("NIFTY: {max_lots: 10, max_qty: 650}", "NIFTY: {max_lots: 12, max_qty: 500}"),
        ("capital: 1000000 ", "capital: 2000000 "),
        ("per_trade_risk_pct: 1 ", "per_trade_risk_pct: 0.5 ")]})
    report = classify_change(shipped, new)
    limits = {c.field: (c.old, c.new, c.effect) for c in report.limits}
    assert limits == {
        "capital": (1_000_000.0, 2_000_000.0, "loosening"),
        "per_trade_risk_pct": (1.0, 0.5, "tightening"),
        "order_limits.NIFTY.max_lots": (10, 12, "loosening"),
        "order_limits.NIFTY.max_qty": (650, 500, "tightening"),
    }
    assert report.loosens and len(report.tightening) == 2
    assert {d["limit"] for d in report.as_dict()["limits"]} == set(limits)


def test_removing_a_halting_rule_loosens_and_adding_one_tightens(
        shipped: PolicySet, variant: Callable[[Edits], PolicySet]) -> None:
    cb = (REPO / "policies" / "circuit_breakers.yaml").read_text(encoding="utf-8")
    block = re.search(r"  - id: flash-crash\n.*?(?=\n  - id: )", cb, re.S)
    assert block is not None
    removed = variant({"policies/circuit_breakers.yaml": [(block.group(0) + "\n", "")]})
    report = classify_change(shipped, removed)
    assert report.rules_removed == ("flash-crash",) and report.loosens
    back = classify_change(removed, shipped)
    assert back.rules_added == ("flash-crash",) and not back.loosens
    assert [c.effect for c in back.changes] == ["tightening"]


def test_making_a_rule_overridable_or_dropping_its_halt_loosens(
        shipped: PolicySet, variant: Callable[[Edits], PolicySet]) -> None:
    new = variant({"policies/risk.yaml": [
        ("    rearm: next_session\n    overridable: false\n    message: \"day P&L",
         "    rearm: next_session\n    overridable: true\n    message: \"day P&L"),
        ("when: operator.kill_switch\n    then: [halt, cancel_pending, square_off, alert]",
         "when: operator.kill_switch\n    then: [halt, cancel_pending, alert]")]})
    report = classify_change(shipped, new)
    fields = {(c.id, c.field): c.effect for c in report.changes}
    assert fields == {("daily-loss-limit", "overridable"): "loosening",
                      ("kill-switch", "then"): "loosening"}


def test_strategy_changes_are_listed_without_a_verdict(shipped: PolicySet,
                                                       variant: Callable[[Edits], PolicySet],
                                                       tmp_path: Path) -> None:
    new = variant({"strategies/short_straddle_0920.yaml": [("max_trades_per_day: 1",
                                                            "max_trades_per_day: 2")]})
    report = classify_change(shipped, new)
    assert report.strategies_changed == ("short-straddle-0920",)
    [change] = report.changes
    assert (change.field, change.old, change.new, change.effect) == \
        ("max_trades_per_day", 1, 2, "neutral")
    root = copy_set(tmp_path / "fewer")
    (root / "strategies" / "opening_range_breakout.yaml").unlink()
    fewer = load_policy_set(paths(root))
    assert classify_change(shipped, fewer).strategies_removed == ("orb-call",)
    assert classify_change(fewer, shipped).strategies_added == ("orb-call",)


def test_market_hours_are_judged_on_event_time() -> None:
    assert in_market_hours(datetime(2026, 11, 26, 9, 0))  # pre-open: orders can be placed
    assert in_market_hours(datetime(2026, 11, 26, 15, 29, 59))
    assert not in_market_hours(datetime(2026, 11, 26, 15, 30))
    assert not in_market_hours(datetime(2026, 11, 26, 8, 59))


# -- the reloader's hand-off (no watcher thread: check_now loads on this thread) -------------


@pytest.fixture
def live(tmp_path: Path) -> tuple[Path, PolicyReloader]:
    root = copy_set(tmp_path / "live")
    reloader = PolicyReloader(paths(root), load_policy_set(paths(root)))
    return root, reloader


def test_nothing_changed_means_nothing_to_take(live: tuple[Path, PolicyReloader]) -> None:
    _root, reloader = live
    assert reloader.take(IN_SESSION) is None
    reloader.check_now()  # same files: same revision
    assert reloader.take(IN_SESSION) is None


def test_a_tightening_edit_is_accepted_at_once_with_its_diff(
        live: tuple[Path, PolicyReloader]) -> None:
    root, reloader = live
    old = reloader.active
    edit(root, {"policies/risk.yaml": [(DAILY_LOSS, "when: account.day_pnl_pct <= -2\n")]})
    reloader.check_now()
    result = reloader.take(IN_SESSION)
    assert result is not None and result.status == "accepted" and result.policy is not None
    assert reloader.active is result.policy and result.old_revision == old.revision
    d = result.decision(id="d00000009", ts=IN_SESSION)
    assert (d.kind, d.revision) == ("reload", result.policy.revision)
    assert d.result["diff"]["rules"]["changed"] == ["daily-loss-limit"]
    assert d.result["diff"]["tightening"] and not d.result["diff"]["loosening"]
    assert reloader.take(IN_SESSION) is None  # handed over once


def test_an_invalid_edit_is_rejected_with_its_findings_and_the_old_set_stays(
        live: tuple[Path, PolicyReloader]) -> None:
    root, reloader = live
    old = reloader.active
    edit(root, {"policies/risk.yaml": [(DAILY_LOSS, "when: acount.day_pnl_pct <= -3\n")]})
    reloader.check_now()
    result = reloader.take(IN_SESSION)
    assert result is not None and result.status == "rejected" and result.policy is None
    assert reloader.active is old
    assert any(f.code == "unknown-name" for f in result.findings)
    assert any("risk.yaml" in e for e in result.errors)
    d = result.decision(id="d00000009", ts=IN_SESSION)
    assert (d.kind, d.revision, d.result["severity"]) == ("alert", old.revision, "critical")
    assert d.result["errors"] == list(result.errors)


def test_loosening_is_held_in_market_hours_until_approved(
        live: tuple[Path, PolicyReloader]) -> None:
    root, reloader = live
    old = reloader.active
    edit(root, {"policies/risk.yaml": [(DAILY_LOSS, "when: account.day_pnl_pct <= -5\n")]})
    reloader.check_now()
    held = reloader.take(IN_SESSION)
    assert held is not None and held.status == "held" and reloader.active is old
    d = held.decision(id="d00000009", ts=IN_SESSION)
    assert d.kind == "alert" and d.revision == old.revision
    assert f"reload approve {held.new_revision[:12]}" in d.message
    assert reloader.take(IN_SESSION) is None  # announced once, still held
    assert reloader.active is old
    approve = OperatorCommand(ts=IN_SESSION, command=APPROVE_COMMAND,  # type: ignore[arg-type]
                              reason="wider limit agreed", who="risk-desk",
                              rule_id=held.new_revision[:12])
    result = reloader.take(IN_SESSION, [approve])
    assert result is not None and result.status == "accepted"
    assert result.new_revision == held.new_revision and "risk-desk" in result.approved


def test_loosening_applies_at_once_with_the_flag_or_outside_market_hours(
        tmp_path: Path) -> None:
    for allow, now in ((True, IN_SESSION), (False, AFTER_CLOSE)):
        root = copy_set(tmp_path / f"{allow}")
        reloader = PolicyReloader(paths(root), load_policy_set(paths(root)),
                                  allow_loosening=allow)
        edit(root, {"policies/risk.yaml": [(DAILY_LOSS, "when: account.day_pnl_pct <= -5\n")]})
        reloader.check_now()
        result = reloader.take(now)
        assert result is not None and result.status == "accepted", allow
        assert result.approved == ("loosening allowed by --allow-loosening" if allow
                                   else "loosening outside market hours")


def test_reverting_a_held_edit_drops_it(live: tuple[Path, PolicyReloader]) -> None:
    root, reloader = live
    edit(root, {"policies/risk.yaml": [(DAILY_LOSS, "when: account.day_pnl_pct <= -5\n")]})
    reloader.check_now()
    assert reloader.take(IN_SESSION) is not None  # held
    edit(root, {"policies/risk.yaml": [("when: account.day_pnl_pct <= -5\n", DAILY_LOSS)]})
    reloader.check_now()
    assert reloader.take(IN_SESSION) is None
    assert reloader.take(AFTER_CLOSE) is None  # nothing left to apply after the close
    edit(root, {"policies/risk.yaml": [(DAILY_LOSS, "when: account.day_pnl_pct <= -5\n")]})
    reloader.check_now()  # the same loosening saved again is held again, and says so again
    again = reloader.take(IN_SESSION)
    assert again is not None and again.status == "held"


# -- YAML edited under a running engine ------------------------------------------------------

PROBE_RULE = """
  - id: probe
    description: Fires on every up-bar of the test data, so every minute makes decisions.
    when: market.spot >= 22050
    then: [alert]
    scope: account
    severity: info
    message: "spot {market.spot:.0f}"
"""


def replay_day(root: Path) -> Path:
    """One session of 1-minute bars (09:15-15:30, all market hours) that alternate between
    22000 and 22100, and a probe rule that fires on each up-bar: decisions every minute."""
    risk = root / "policies" / "risk.yaml"
    risk.write_text(risk.read_text(encoding="utf-8") + PROBE_RULE, encoding="utf-8")
    rows, prev = ["date,open,high,low,close,volume"], 22000.0
    for i in range(375):
        h, m = divmod(9 * 60 + 15 + i, 60)
        close = 22100.0 if i % 2 == 0 else 22000.0
        rows.append(f"26-11-2026 {h:02d}:{m:02d},{prev},{max(prev, close) + 5},"
                    f"{min(prev, close) - 5},{close},0")
        prev = close
    data = root / "bars.csv"
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return data


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    try:
        with sqlite3.connect(db) as conn:
            return list(conn.execute(sql))
    except sqlite3.OperationalError:  # the runner has not created the tables yet
        return []


def wait_for(db: Path, sql: str, timeout: float = 10.0) -> tuple[list[tuple[Any, ...]], float]:
    """Poll the audit store until ``sql`` returns rows; the rows and the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        rows = query(db, sql)
        if rows:
            return rows, time.monotonic() - start
        time.sleep(0.01)
    raise AssertionError(f"nothing after {timeout} s: {sql}")


def wait_until_running(db: Path) -> None:
    wait_for(db, "SELECT run_id FROM runs WHERE status = 'running'", timeout=30)
    time.sleep(0.8)  # the watcher reports ready within its 200 ms timeout


SWAPS = "SELECT id, revision, result FROM decisions WHERE kind = 'reload' ORDER BY id"


def reload_alerts(status: str) -> str:
    return ("SELECT id, revision, result FROM decisions WHERE kind = 'alert' AND "
            f"json_extract(result, '$.reload') = '{status}' ORDER BY id")


def test_yaml_edited_under_a_running_engine_is_swapped_between_ticks(tmp_path: Path) -> None:
    root = copy_set(tmp_path)
    data = replay_day(root)
    db = tmp_path / "audit.db"
    first_revision = load_policy_set(paths(root)).revision
    done = threading.Event()

    def throttle(_result: TickResult) -> None:  # pace the run until the edits are done
        if not done.is_set():
            time.sleep(0.02)

    config = RunConfig(policies=(str(root / "policies"),), strategies=(str(root / "strategies"),),
                       feed=f"replay:{data}", db=str(db), prev_close=22000.0, reload=True)
    outcome: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: outcome.update(run=run(config, on_tick=throttle)))
    runner.start()
    try:
        wait_until_running(db)
        # 1. a valid edit (a tighter daily-loss limit): active within a second
        edit(root, {"policies/risk.yaml": [(DAILY_LOSS, "when: account.day_pnl_pct <= -2\n")]})
        [(swap1_id, rev1, result1)], latency = wait_for(db, SWAPS)
        assert latency < 1.0, f"the edit took {latency:.2f} s to go live"
        diff = json.loads(result1)["diff"]
        assert json.loads(result1)["old_revision"] == first_revision != rev1
        assert diff["rules"]["changed"] == ["daily-loss-limit"] and diff["tightening"]

        # 2. an invalid edit: an alert, and the set from step 1 stays active
        edit(root, {"policies/risk.yaml": [("when: account.day_pnl_pct <= -2\n    then: [halt",
                                            "when: acount.day_pnl_pct <= -2\n    then: [halt")]})
        [(rejected_id, rejected_rev, rejected)], _ = wait_for(db, reload_alerts("rejected"))
        assert rejected_rev == rev1
        assert any("unknown-name" in e for e in json.loads(rejected)["errors"])

        # 3. a loosening fix (-2 -> -4) in market hours: held, not applied
        edit(root, {"policies/risk.yaml": [("acount.day_pnl_pct <= -2",
                                            "account.day_pnl_pct <= -4")]})
        [(held_id, held_rev, held)], _ = wait_for(db, reload_alerts("held"))
        loose_rev = json.loads(held)["new_revision"]
        assert held_rev == rev1 and loose_rev != rev1
        time.sleep(0.3)
        assert len(query(db, SWAPS)) == 1  # still only the first swap

        # 4. approved from another process's command: swapped in on the next tick
        assert main(["reload", "approve", loose_rev[:12], "--db", str(db), "--reason",
                     "agreed with the risk desk", "--who", "tester"]) == EXIT_OK
        swaps, _ = wait_for(db, SWAPS + " LIMIT -1 OFFSET 1")
        [(swap2_id, rev2, result2)] = swaps
        assert rev2 == loose_rev and "tester" in json.loads(result2)["approved"]
    finally:
        done.set()
        runner.join(timeout=120)
    assert not runner.is_alive() and "run" in outcome
    assert outcome["run"].engine.revision == rev2

    # every decision carries the revision that was active when it was made
    rows = query(db, "SELECT id, revision, kind FROM decisions ORDER BY id")
    assert [r[1] for r in rows if r[0] < swap1_id] == \
        [first_revision] * sum(1 for r in rows if r[0] < swap1_id)
    between = [r for r in rows if swap1_id <= r[0] < swap2_id]
    after = [r for r in rows if r[0] >= swap2_id]
    assert {r[1] for r in between} == {rev1} and {r[1] for r in after} == {rev2}
    assert sum(1 for r in between if r[2] == "rule_fired") >= 2  # decisions kept coming
    assert sum(1 for r in after if r[2] == "rule_fired") >= 1
    assert swap1_id < rejected_id < held_id < swap2_id
    store = AuditStore(db)
    try:
        assert store.verify(outcome["run"].run_id) is None  # the hash chain is intact
    finally:
        store.close()


def test_cli_run_with_allow_loosening_applies_a_loosening_edit_at_once(tmp_path: Path) -> None:
    root = copy_set(tmp_path)
    data = replay_day(root)
    db = tmp_path / "audit.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ruleengine", "run", "--feed", f"replay:{data}",
         "--policies", str(root / "policies"), "--strategies", str(root / "strategies"),
         "--db", str(db), "--reload", "--allow-loosening", "--pace", "0.01", "--no-progress"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_running(db)
        edit(root, {"policies/risk.yaml": [(DAILY_LOSS, "when: account.day_pnl_pct <= -5\n")]})
        [(_id, revision, result)], _ = wait_for(db, SWAPS)
        assert json.loads(result)["approved"] == "loosening allowed by --allow-loosening"
        assert json.loads(result)["diff"]["loosening"]
        assert not query(db, reload_alerts("held"))
    finally:
        _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert revision[:12] in query(db, "SELECT message FROM decisions WHERE kind = 'reload'")[0][0]


def test_run_flags_and_the_approve_command_parse() -> None:
    args = build_parser().parse_args(["run", "--reload", "--allow-loosening"])
    assert args.reload and args.allow_loosening
    args = build_parser().parse_args(["run"])
    assert not args.reload and not args.allow_loosening
    assert main(["reload", "approve", "not-a-revision", "--db", ":memory:"]) == EXIT_USAGE


def test_the_reloaders_incremental_load_equals_a_full_load(
        live: tuple[Path, PolicyReloader]) -> None:
    root, reloader = live
    first = reloader.load()
    assert first.revision == reloader.active.revision
    edit(root, {"policies/risk.yaml": [(DAILY_LOSS, "when: account.day_pnl_pct <= -2\n")]})
    second, full = reloader.load(), load_policy_set(paths(root))
    assert second.revision == full.revision != first.revision
    assert [r.id for r in second.rules] == [r.id for r in full.rules]
    assert second.rule("daily-loss-limit").when.source == "account.day_pnl_pct <= -2"
    (root / "strategies" / "opening_range_breakout.yaml").unlink()
    assert "orb-call" not in {s.id for s in reloader.load().strategies}


def test_a_swapped_set_changes_expiry_days_at_once(
        shipped: PolicySet, variant: Callable[[Edits], PolicySet]) -> None:
    """The engine keeps a day's expiry values between ticks; a new instruments table must
    replace them on the next tick, not the next day."""
    from ruleengine.engine import Engine
    from ruleengine.events import IndexTick, VixTick

    wednesday = variant({"policies/instruments.yaml": [
        ('{effective_from: "2025-09-01", weekly: tuesday, monthly: tuesday}',
         '{effective_from: "2025-09-01", weekly: wednesday, monthly: wednesday}')]})
    engine = Engine(shipped)
    t0 = datetime(2026, 11, 25, 14, 40)  # a Wednesday, after the 14:30 expiry-day cut-off

    def tick(ts: datetime) -> TickResult:
        return engine.tick([IndexTick(ts=ts, underlying="NIFTY", value=24_000.0),
                            VixTick(ts=ts, value=14.0)])

    fired = [d for d in tick(t0).decisions if d.rule_id == "expiry-day-no-new-shorts"]
    assert fired == []  # Tuesday expiries: not an expiry day
    engine.swap_policy(wednesday)
    fired = [d for d in tick(t0.replace(second=1)).decisions
             if d.rule_id == "expiry-day-no-new-shorts" and d.kind == "rule_fired"]
    assert {d.scope for d in fired} == {"strategy:short-straddle-0920", "strategy:iron-condor"}
