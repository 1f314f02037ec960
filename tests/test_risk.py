"""Automatic risk enforcement on whole synthetic days and real circuit-breaker days.

Each scenario runs the real pipeline (synthetic feed, engine, paper broker, SQLite audit store)
and the assertions read the audit store, the record a trader would inspect afterwards.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ruleengine.contracts import OrderRequest
from ruleengine.engine import Engine
from ruleengine.events import Contract, IndexTick, OperatorCommand, PreviousClose, VixTick
from ruleengine.guards import set_state
from ruleengine.policyset import load_policy_set
from ruleengine.runner import RunConfig, run
from ruleengine.tradingstate import TradingState

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def _rows(db: Path, sql: str, args: tuple[object, ...] = ()) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute(sql, args))
    finally:
        conn.close()


def _run(db: Path, scenario: str, policies: Path = REPO / "policies", **kw: object) -> Path:
    run(RunConfig(policies=(str(policies),), strategies=(str(REPO / "strategies"),),
                  feed=f"synthetic:{scenario}", db=str(db), **kw))  # type: ignore[arg-type]
    return db


def _entries_between(db: Path, start: str, end: str) -> list[sqlite3.Row]:
    """Entry orders from ``start`` up to, not including, ``end`` (a resumption tick may trade)."""
    return _rows(db, "SELECT * FROM orders WHERE purpose = 'entry' AND ts >= ? AND ts < ?",
                 (start, end))


def _state_changes(db: Path, scope: str) -> list[tuple[str, str, str]]:
    return [(r["ts"], json.loads(r["result"])["to"], r["rule_id"]) for r in _rows(
        db, "SELECT ts, result, rule_id FROM decisions WHERE kind = 'state_change' AND scope = ? "
            "ORDER BY id", (scope,))]


@pytest.fixture(scope="module")
def tight_loss_policies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped policies with the daily loss limit at -0.3% so a calm day breaches it."""
    folder = tmp_path_factory.mktemp("policies")
    for f in (REPO / "policies").glob("*.yaml"):
        shutil.copy(f, folder / f.name)
    risk = folder / "risk.yaml"
    text = risk.read_text()
    assert "when: account.day_pnl_pct <= -3\n" in text
    risk.write_text(text.replace("when: account.day_pnl_pct <= -3\n",
                                 "when: account.day_pnl_pct <= -0.3\n"))
    return folder


def test_loss_limit_breach_halts_squares_off_and_explains_itself(
        tmp_path: Path, tight_loss_policies: Path) -> None:
    db = _run(tmp_path / "loss.db", "calm", tight_loss_policies)
    fired = _rows(db, "SELECT * FROM decisions WHERE kind = 'rule_fired' AND "
                      "rule_id = 'daily-loss-limit'")
    assert len(fired) >= 1
    breach = fired[0]
    inputs = json.loads(breach["inputs"])
    assert inputs["account.day_pnl_pct"] <= -0.3
    line = next(i for i, text in enumerate((tight_loss_policies / "risk.yaml").read_text()
                                           .splitlines(), 1) if "id: daily-loss-limit" in text)
    assert breach["location"] == f"{tight_loss_policies / 'risk.yaml'}:{line}"
    assert json.loads(breach["result"])["actions"] == ["halt", "cancel_pending", "square_off",
                                                       "alert"]
    # no new entry after the breach tick
    assert _entries_between(db, breach["ts"], "9999") == []
    # flat within a bounded number of ticks: every square-off filled within 30 seconds
    after = _rows(db, "SELECT * FROM orders WHERE ts >= ? ORDER BY ts", (breach["ts"],))
    assert after and {r["purpose"] for r in after} <= {"square_off", "exit"}
    last_fill = _rows(db, "SELECT MAX(ts) AS t FROM fills WHERE ts >= ?", (breach["ts"],))[0]["t"]
    gap = datetime.fromisoformat(last_fill) - datetime.fromisoformat(breach["ts"])
    assert gap <= timedelta(seconds=30)
    open_legs = _rows(db, "SELECT symbol, SUM(CASE side WHEN 'BUY' THEN qty ELSE -qty END) AS "
                          "net FROM fills GROUP BY symbol HAVING net != 0")
    assert open_legs == []
    assert "HALTED" in [s[1] for s in _state_changes(db, "account")]


def test_flash_crash_halts_the_underlying(tmp_path: Path) -> None:
    db = _run(tmp_path / "flash.db", "flash-crash")
    changes = _state_changes(db, "underlying:NIFTY")
    halts = [c for c in changes if c[1] == "HALTED" and c[2] == "flash-crash"]
    assert halts, changes
    assert _entries_between(db, halts[0][0], "9999") == []  # manual re-arm: halted all day


def test_vix_spike_reduces_to_exits_then_resumes_by_hysteresis(tmp_path: Path) -> None:
    db = _run(tmp_path / "vix.db", "vix-spike")
    fired = _rows(db, "SELECT ts, inputs FROM decisions WHERE kind = 'rule_fired' AND rule_id = "
                      "'vix-extreme' ORDER BY id")
    assert fired and json.loads(fired[0]["inputs"])["market.vix"] > 40
    changes = _state_changes(db, "account")
    reduce = [c for c in changes if c[1] == "REDUCE_ONLY" and c[0] <= fired[0]["ts"]]
    resumed = [c for c in changes if c[1] == "ACTIVE" and c[0] > fired[0]["ts"]]
    assert reduce and resumed, changes
    # resumption came only after VIX stayed below 35 for the hold period
    vix = [(r["ts"], json.loads(r["payload"])["value"]) for r in _rows(
        db, "SELECT ts, payload FROM events WHERE type = 'VixTick' AND ts <= ? ORDER BY seq",
        (resumed[0][0],))]
    tail = [v for ts, v in vix if ts >= (datetime.fromisoformat(resumed[0][0])
                                         - timedelta(minutes=15)).isoformat()]
    assert tail and max(tail) < 35
    assert _entries_between(db, reduce[-1][0], resumed[0][0]) == []


def test_lower_circuit_detects_the_market_halt_and_sends_no_entry(tmp_path: Path) -> None:
    db = _run(tmp_path / "lc.db", "lower-circuit")
    halt = [c for c in _state_changes(db, "underlying:NIFTY") if c[2] == "market-halt"]
    assert [c[1] for c in halt] == ["HALTED", "ACTIVE"]
    mwcb = [c for c in _state_changes(db, "account") if c[2] == "mwcb-10pct-before-1300"]
    assert mwcb and mwcb[0][1] == "HALTED"
    assert _entries_between(db, halt[0][0], halt[1][0]) == []
    # the market-wide breaker's 45 min halt + 15 min auction is honoured
    resumed = datetime.fromisoformat(mwcb[1][0]) - datetime.fromisoformat(mwcb[0][0])
    assert resumed >= timedelta(minutes=60)


def _previous_close(day: date) -> float:
    path = SHARED / "daily" / "NIFTY50_daily_2007-2024_yfinance.csv"
    with path.open() as fh:
        rows = [(r["date"][:10], float(r["close"])) for r in csv.DictReader(fh)]
    before = [c for d, c in rows if d < day.isoformat()]
    return round(before[-1], 2)


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"real market data not found at {SHARED}")
@pytest.mark.parametrize(("day", "halt_from", "halt_to", "nifty_hit_10pct"), [
    (date(2020, 3, 13), "09:23", "10:06", True),
    # on 23 Mar 2020 SENSEX hit its 10% circuit while NIFTY was at -9.6%: only the silence of
    # the feed reveals the halt, and the NIFTY breaker rightly stays quiet before it
    (date(2020, 3, 23), "10:00", "10:42", False),
])
def test_real_circuit_days_detect_the_halt(tmp_path: Path, day: date, halt_from: str,
                                           halt_to: str, nifty_hit_10pct: bool) -> None:
    path = SHARED / "intraday_1min_gdfl" / f"NIFTY_1min_{day.isoformat()}.csv"
    db = tmp_path / "real.db"
    run(RunConfig(policies=(str(REPO / "policies"),), strategies=(str(REPO / "strategies"),),
                  feed=f"replay:{path}", db=str(db), prev_close=_previous_close(day)))
    stamp = day.isoformat() + "T"
    halted = [c for c in _state_changes(db, "underlying:NIFTY") if c[2] == "market-halt"]
    assert halted and halted[0][1] == "HALTED"
    assert stamp + halt_from <= halted[0][0] <= stamp + halt_to
    mwcb = [c for c in _state_changes(db, "account") if c[2].startswith("mwcb-10pct")
            and c[0] <= stamp + halt_from]
    assert bool(mwcb) == nifty_hit_10pct
    if mwcb:
        assert mwcb[0][1] == "HALTED"
    assert _entries_between(db, stamp + "09:00", stamp + halt_to) == []


def test_kill_from_a_second_process_stops_a_running_engine(tmp_path: Path) -> None:
    db = tmp_path / "kill.db"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    runner = subprocess.Popen(
        [sys.executable, "-m", "ruleengine", "run", "--db", str(db), "--no-progress",
         "--pace", "0.0005"], cwd=REPO, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if db.exists() and _rows(db, "SELECT name FROM sqlite_master WHERE name='fills'") \
                    and _rows(db, "SELECT COUNT(*) AS n FROM fills")[0]["n"] >= 2:
                break
            assert runner.poll() is None, runner.stdout.read() if runner.stdout else ""
            time.sleep(0.05)
        else:
            pytest.fail("the run placed no order within two minutes")
        killed = subprocess.run([sys.executable, "-m", "ruleengine", "kill", "--reason",
                                 "desk says stop", "--who", "tester", "--db", str(db)],
                                cwd=REPO, capture_output=True, text=True, timeout=60)
        assert killed.returncode == 0, killed.stderr
        out, _ = runner.communicate(timeout=600)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 0, out
    op = _rows(db, "SELECT * FROM decisions WHERE kind = 'operator'")
    assert op and json.loads(op[0]["result"]) == {"command": "kill", "who": "tester",
                                                  "reason": "desk says stop"}
    kill_ts = op[0]["ts"]
    fired = _rows(db, "SELECT * FROM decisions WHERE kind = 'rule_fired' AND rule_id = "
                      "'kill-switch'")
    assert fired and fired[0]["ts"] == kill_ts  # within the tick that took the command
    assert _entries_between(db, kill_ts, "9999") == []
    net = _rows(db, "SELECT symbol, SUM(CASE side WHEN 'BUY' THEN qty ELSE -qty END) AS n "
                    "FROM fills GROUP BY symbol HAVING n != 0")
    assert net == []
    status = subprocess.run([sys.executable, "-m", "ruleengine", "status", "--db", str(db)],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert "kill switch: ENGAGED" in status.stdout and "HALTED" in status.stdout


# -- engine-level properties -------------------------------------------------------------------

POLICY = load_policy_set([REPO / "policies", REPO / "strategies"])
T0 = datetime(2026, 11, 26, 10, 0)
OPTION = Contract(underlying="NIFTY", kind="OPT", expiry=date(2026, 12, 1), strike=24000.0,
                  option_type="CE")


def _primed_engine() -> Engine:
    engine = Engine(POLICY)
    engine.tick([PreviousClose(ts=T0 - timedelta(hours=1), underlying="NIFTY", close=24000.0,
                               vix_close=13.0)])
    engine.tick([IndexTick(ts=T0, underlying="NIFTY", value=24010.0), VixTick(ts=T0, value=13.2)])
    return engine


scopes = st.sampled_from(["account", "underlying:NIFTY", "strategy:short-straddle-0920",
                          "strategy:iron-condor"])
levels = st.sampled_from([TradingState.REDUCE_ONLY, TradingState.HALTED])


@settings(max_examples=200, deadline=None)
@given(holds=st.lists(st.tuples(scopes, levels), max_size=6),
       purpose=st.sampled_from(["exit", "square_off"]),
       side=st.sampled_from(["BUY", "SELL"]), lots=st.integers(1, 400),
       strategy=st.sampled_from(["short-straddle-0920", "iron-condor", "orb-call"]))
def test_exits_and_square_offs_are_never_denied_by_our_rules(holds: list, purpose: str,
                                                              side: str, lots: int,
                                                              strategy: str) -> None:
    engine = _primed_engine()
    emit = engine._emit_at(T0)
    for i, (scope, level) in enumerate(holds):
        set_state(engine.state, scope, level, f"rule-{i}", "test", "manual", emit)
    engine.state.decisions = []
    order = OrderRequest(client_id=f"x{lots}{side}", contract=OPTION, side=side,  # type: ignore
                         qty=lots * 65, order_type="LIMIT", limit_price=100.0,
                         purpose=purpose, strategy_id=strategy, leg_id="ce")  # type: ignore
    engine._submit(order, T0)
    kinds = {d.kind for d in engine.state.decisions}
    assert kinds == {"order"}, engine.state.decisions  # sent; sliced above the freeze
    assert sum(d.result["qty"] for d in engine.state.decisions) == order.qty


def test_entries_are_denied_in_reduce_only_and_halted_scopes() -> None:
    for level, code in ((TradingState.REDUCE_ONLY, "reduce-only"),
                        (TradingState.HALTED, "halted")):
        engine = _primed_engine()
        set_state(engine.state, "underlying:NIFTY", level, "r", "why", "manual",
                  engine._emit_at(T0))
        engine.state.decisions = []
        order = OrderRequest(client_id="e1", contract=OPTION, side="SELL", qty=65,
                             order_type="LIMIT", limit_price=100.0, purpose="entry",
                             strategy_id="short-straddle-0920", leg_id="ce")
        engine._submit(order, T0)
        [denied] = engine.state.decisions
        assert denied.kind == "denied" and denied.result["code"] == code
        assert denied.rule_id == "r"


def test_rearm_while_the_loss_limit_still_holds_halts_again() -> None:
    engine = _primed_engine()
    engine.capital = 1_000_000.0
    engine.state.portfolio.realized = -40_000.0  # -4% of capital
    t1 = T0 + timedelta(seconds=1)
    res = engine.tick([IndexTick(ts=t1, underlying="NIFTY", value=24011.0)])
    assert any(d.rule_id == "daily-loss-limit" and d.kind == "rule_fired" for d in res.decisions)
    assert engine.state.scopes["account"].state == TradingState.HALTED
    t2 = t1 + timedelta(seconds=1)
    res = engine.tick([OperatorCommand(ts=t2, command="rearm", reason="try again"),
                       IndexTick(ts=t2, underlying="NIFTY", value=24012.0)])
    assert engine.state.scopes["account"].state == TradingState.HALTED
    fired = [d for d in res.decisions if d.kind == "rule_fired"]
    assert [d.rule_id for d in fired] == ["daily-loss-limit"]


def test_an_adapters_own_subclass_of_an_operator_event_is_still_acted_on() -> None:
    """The tick loop sends plain price events straight to the market state by exact type;
    anything else, such as a subclass an adapter defines, must still reach the order and
    operator handling."""

    @dataclass(frozen=True, slots=True, kw_only=True)
    class DeskCommand(OperatorCommand):
        desk: str = "desk-2"

    engine = _primed_engine()
    t1 = T0 + timedelta(seconds=1)
    res = engine.tick([DeskCommand(ts=t1, command="kill", reason="desk stop"),
                       IndexTick(ts=t1, underlying="NIFTY", value=24011.0)])
    assert engine.state.kill_switch
    assert any(d.rule_id == "kill-switch" and d.kind == "rule_fired" for d in res.decisions)


def test_overrides_suspend_a_rule_until_their_time_and_never_the_kill_switch() -> None:
    engine = _primed_engine()
    t1 = T0 + timedelta(seconds=1)
    res = engine.tick([OperatorCommand(ts=t1, command="override", rule_id="kill-switch",
                                       reason="no", until=t1 + timedelta(hours=1))])
    [op] = [d for d in res.decisions if d.kind == "operator"]
    assert "overridable: false" in op.result["refused"]
    res = engine.tick([OperatorCommand(ts=t1 + timedelta(seconds=1), command="override",
                                       rule_id="max-trades-per-day", reason="big day",
                                       until=t1 + timedelta(minutes=5))])
    assert engine.state.overrides["max-trades-per-day"] == t1 + timedelta(minutes=5)
    engine.state.portfolio.trades_today = 100
    t2 = t1 + timedelta(minutes=1)
    res = engine.tick([IndexTick(ts=t2, underlying="NIFTY", value=24000.0)])
    assert not any(d.rule_id == "max-trades-per-day" for d in res.decisions)
    t3 = t1 + timedelta(minutes=6)
    res = engine.tick([IndexTick(ts=t3, underlying="NIFTY", value=24000.0)])
    ids = [(d.kind, d.rule_id) for d in res.decisions]
    assert ("operator", "max-trades-per-day") in ids  # the override expired, audited
    assert ("rule_fired", "max-trades-per-day") in ids


def test_position_names_describe_the_worst_open_leg() -> None:
    from ruleengine.context import position_values
    from ruleengine.portfolio import LegPosition

    ce = LegPosition(strategy_id="s", leg_id="ce", contract=OPTION, qty=-65, avg_price=100.0)
    pe_contract = Contract(underlying="NIFTY", kind="OPT", expiry=date(2026, 12, 1),
                           strike=24000.0, option_type="PE")
    pe = LegPosition(strategy_id="s", leg_id="pe", contract=pe_contract, qty=-65,
                     avg_price=100.0)
    v = position_values([(ce, 90.0), (pe, 130.0)])  # each open leg with this tick's mark
    assert v["position.qty"] == -65 and v["position.ltp"] == 130.0
    assert v["position.pnl"] == pytest.approx(-1950.0)
    assert v["position.pnl_pct"] == pytest.approx(-30.0)


def test_a_kill_on_the_very_first_tick_before_any_price_still_halts() -> None:
    """A caller may hand the engine a command before any market data (a restart with a kill
    waiting). Nothing can be valued yet, so every rule errors and blocks new risk; the kill
    still engages. It used to stop on an assertion about the market's clock."""
    engine = Engine(load_policy_set([REPO / "policies", REPO / "strategies"]))
    now = datetime(2026, 11, 26, 9, 0)
    result = engine.tick([OperatorCommand(ts=now, command="kill", reason="desk", who="desk")])
    assert engine.state.kill_switch
    kinds = {d.kind for d in result.decisions}
    assert "rule_error" in kinds and not result.orders
