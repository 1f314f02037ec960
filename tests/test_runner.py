"""Whole-pipeline runs: the shipped policies, the synthetic day and the paper broker."""

from __future__ import annotations

import difflib
import json
import os
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from ruleengine.audit import AuditStore
from ruleengine.cli import main
from ruleengine.policyset import load_policy_set
from ruleengine.runner import RunConfig, RunOutcome, run

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def _config(db: Path, **kw: object) -> RunConfig:
    return RunConfig(policies=(str(REPO / "policies"),), strategies=(str(REPO / "strategies"),),
                     db=str(db), **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def calm_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, RunOutcome]]:
    base = tmp_path_factory.mktemp("runs")
    policy = load_policy_set([REPO / "policies", REPO / "strategies"])  # one set for all runs
    out = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        db = base / f"{name}.db"
        out[name] = (db, run(_config(db, seed=seed), policy=policy))
    return out


def _table(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql))


DECISIONS = "SELECT id, ts, revision, kind, scope, rule_id, location, inputs, result, message, " \
            "prev_hash, hash FROM decisions ORDER BY id"
ORDERS = "SELECT client_id, ts, strategy_id, leg_id, symbol, side, qty, limit_price, purpose, " \
         "status, filled_qty FROM orders ORDER BY ts, client_id"
FILLS = "SELECT decision_id, ts, client_id, symbol, side, qty, price, charges, ltp FROM fills " \
        "ORDER BY decision_id"


def test_same_scenario_and_seed_give_identical_tables(calm_runs: dict) -> None:
    (db_a, _), (db_b, _) = calm_runs["a"], calm_runs["b"]
    for sql in (DECISIONS, ORDERS, FILLS):
        rows = _table(db_a, sql)
        assert rows, sql
        assert rows == _table(db_b, sql)


def test_a_different_seed_changes_fill_prices_not_the_market_signals(calm_runs: dict) -> None:
    (db_a, _), (db_c, _) = calm_runs["a"], calm_runs["c"]
    prices_a = [r[6] for r in _table(db_a, FILLS)]
    prices_c = [r[6] for r in _table(db_c, FILLS)]
    assert prices_a != prices_c
    entries = "SELECT ts, scope FROM decisions WHERE kind = 'signal' AND " \
              "json_extract(result, '$.signal') = 'entry' ORDER BY id"
    first_entries_a = _table(db_a, entries)[:3]
    assert first_entries_a and first_entries_a == _table(db_c, entries)[:3]


GOLDEN = Path(__file__).parent / "golden" / "calm_day_audit.jsonl"


def _audit_lines(db: Path) -> list[str]:
    """The run's decisions, orders and fills as canonical JSON lines. The revision and the hash
    chain are left out (any policy edit changes them; the chain has its own test) and file
    paths are made relative to the repository, so the file holds only behaviour."""
    lines = []
    for table, sql in (("decision", "SELECT id, ts, kind, scope, rule_id, location, inputs, "
                                    "result, message FROM decisions ORDER BY id"),
                       ("order", ORDERS), ("fill", FILLS)):
        with sqlite3.connect(db) as conn:
            conn.row_factory = sqlite3.Row
            for row in conn.execute(sql):
                record = {"table": table, **dict(row)}
                for key in ("inputs", "result"):
                    if isinstance(record.get(key), str):
                        record[key] = json.loads(record[key])
                text = json.dumps(record, sort_keys=True, ensure_ascii=False)
                lines.append(text.replace(str(REPO) + "/", ""))
    return lines


def test_calm_day_audit_matches_the_golden_file(calm_runs: dict) -> None:
    """Every decision, order and fill of the shipped calm day, byte for byte. A change here is
    a change in what the engine decides: if it is meant, regenerate with
    ``RULEENGINE_UPDATE_GOLDEN=1 python3 -m pytest tests/test_runner.py`` and review the diff."""
    db, _ = calm_runs["a"]
    lines = _audit_lines(db)
    if os.environ.get("RULEENGINE_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text("\n".join(lines) + "\n", encoding="utf-8")
    expected = GOLDEN.read_text(encoding="utf-8").splitlines()
    diff = list(difflib.unified_diff(expected, lines, "golden", "this run", lineterm="", n=0))
    assert not diff, "\n".join(diff[:40])


def test_calm_day_trades_every_strategy_and_ends_flat(calm_runs: dict) -> None:
    db, outcome = calm_runs["a"]
    assert outcome.ticks == 22_501 + 1  # 09:15:00-15:30:00 each second, plus the 09:00 close
    pf = outcome.engine.state.portfolio
    assert not pf.open_legs()
    traded = {r[0] for r in _table(db, "SELECT DISTINCT strategy_id FROM orders")}
    assert traded == {"short-straddle-0920", "iron-condor", "ema-crossover-fut", "orb-call"}
    assert {r[0] for r in _table(db, "SELECT status FROM orders")} <= {"COMPLETE", "CANCELLED",
                                                                       "REJECTED"}


def test_net_pnl_is_below_ltp_fill_pnl_with_costs_itemised(calm_runs: dict) -> None:
    _db, outcome = calm_runs["a"]
    pf = outcome.engine.state.portfolio
    assert pf.charges > 0
    assert outcome.slippage_vs_ltp > 0  # paying the spread costs money against LTP fills
    gross = pf.realized
    net = gross - pf.charges
    ltp_pnl = gross + outcome.slippage_vs_ltp
    assert net < ltp_pnl
    assert net == pytest.approx(ltp_pnl - outcome.slippage_vs_ltp - pf.charges)


def test_every_fill_is_at_bid_or_ask_side_never_better_than_ltp_on_average(calm_runs: dict
                                                                            ) -> None:
    db, _ = calm_runs["a"]
    rows = _table(db, "SELECT side, qty, price, ltp FROM fills WHERE ltp IS NOT NULL")
    assert rows
    cost = sum((p - ltp) * q * (1 if s == "BUY" else -1) for s, q, p, ltp in rows)
    assert cost > 0


def test_audit_chain_verifies_and_detects_tampering(calm_runs: dict, tmp_path: Path) -> None:
    db, outcome = calm_runs["a"]
    copy = tmp_path / "copy.db"
    with sqlite3.connect(db) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    store = AuditStore(copy)
    assert store.verify(outcome.run_id) is None
    store.db.execute("UPDATE decisions SET message = 'nothing to see' WHERE id = 'd00000003'")
    store.db.conn.commit()
    assert store.verify(outcome.run_id) == "d00000003"
    store.close()


def test_every_order_has_its_decision_written_first(calm_runs: dict) -> None:
    db, _ = calm_runs["a"]
    orphans = _table(db, "SELECT o.client_id FROM orders o LEFT JOIN decisions d ON "
                         "d.run_id = o.run_id AND d.id = o.decision_id WHERE d.id IS NULL")
    assert orphans == []


def test_cli_run_prints_a_summary_and_explain_reads_it_back(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.chdir(REPO)
    db = tmp_path / "cli.db"
    assert main(["run", "--db", str(db), "--no-progress", "--scenario", "trend-up"]) == 0
    out = capsys.readouterr().out
    for text in ("strategy", "charges", "slippage vs LTP", "net P&L", "Decisions:"):
        assert text in out
    order_decision = _table(db, "SELECT decision_id FROM orders LIMIT 1")[0][0]
    assert main(["explain", str(order_decision), "--db", str(db)]) == 0
    explained = capsys.readouterr().out
    assert "policy revision" in explained and str(order_decision) in explained


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"real market data not found at {SHARED}")
def test_replaying_the_13_march_2020_circuit_day_runs_end_to_end(tmp_path: Path) -> None:
    path = SHARED / "intraday_1min_gdfl" / "NIFTY_1min_2020-03-13.csv"
    db = tmp_path / "replay.db"
    outcome = run(_config(db, feed=f"replay:{path}"))
    assert outcome.ticks > 328
    kinds = dict(_table(db, "SELECT kind, COUNT(*) FROM decisions GROUP BY kind"))
    # the 09:08 pre-open print and the post-close prints are classified, not used as prices
    dq = [json.loads(r[0]) for r in _table(db, "SELECT result FROM decisions WHERE kind = "
                                               "'data_quality'")]
    assert {"pre_open", "post_close"} <= {d["classification"] for d in dq}
    assert kinds.get("data_quality", 0) >= 2
    # index-only data: no option quotes, so option strategies cannot size an entry
    assert _table(db, "SELECT COUNT(*) FROM orders")[0][0] == 0


def test_an_alert_reaches_a_person_only_after_its_decision_is_in_the_audit_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Alerts are side effects too: write-ahead applies to them as to orders."""
    import ruleengine.runner as runner_module
    from ruleengine.alerting import build_router

    db = tmp_path / "alerts.db"
    seen: list[tuple[str, bool]] = []

    class CheckingSink:
        name = "log"

        def send(self, severity: str, title: str, body: str) -> None:
            with sqlite3.connect(db) as conn:
                stored = {r[0] for r in conn.execute("SELECT message FROM decisions")}
            seen.append((body, any(m and m in body for m in stored)))

    monkeypatch.setattr(runner_module, "build_router",
                        lambda policy: build_router(policy, sinks={"log": CheckingSink()}))
    run(_config(db, feed="synthetic:flash-crash"))
    assert seen, "the flash crash raised no alert"
    assert all(written for _body, written in seen), [b for b, w in seen if not w]


def test_minutes_in_and_since_a_trade_follow_the_clock(tmp_path: Path) -> None:
    """strategy.minutes_in_trade and strategy.minutes_since_exit move with every tick while
    nothing else about the strategy does (they are worked out when read): an exit after 7
    minutes in the trade fires on the 7th minute exactly, and the next entry reads the minutes
    from the close to its own tick."""
    orb = (REPO / "strategies" / "opening_range_breakout.yaml").read_text()
    orb = orb.replace("exit: market.spot < ind.orb_low", "exit: strategy.minutes_in_trade >= 7")
    orb = orb.replace("entry: market.spot > ind.orb_high and market.vix < 30",
                      "entry: market.spot > ind.orb_high and (strategy.trades_today == 0 or "
                      "strategy.minutes_since_exit >= 12)")
    orb = orb.replace("stop_loss: {pct: 40}, target: {pct: 80}", "stop_loss: {pct: 90}")
    (tmp_path / "strategies").mkdir()
    for path in (REPO / "strategies").glob("*.yaml"):  # the guards name the other strategies
        (tmp_path / "strategies" / path.name).write_text(
            orb if path.name == "opening_range_breakout.yaml" else path.read_text())
    db = tmp_path / "run.db"
    run(RunConfig(policies=(str(REPO / "policies"),), strategies=(str(tmp_path / "strategies"),),
                  db=str(db)))
    rows = _table(db, "SELECT ts, inputs, result FROM decisions WHERE kind = 'signal' AND "
                      "scope = 'strategy:orb-call' ORDER BY id")
    signals = [(ts, json.loads(inputs), json.loads(result)) for ts, inputs, result in rows]
    entries = [(ts, i) for ts, i, r in signals if r.get("signal") in ("entry", "reentry")]
    exits = [(ts, i) for ts, i, r in signals
             if r.get("signal") == "exit" and r.get("reason") == "exit_condition"]
    closed = [ts for ts, _i, r in signals if r.get("trade_closed")]
    assert len(entries) == 2 and len(exits) == 2 and len(closed) >= 1
    for (entered, _), (exited, inputs) in zip(entries, exits, strict=True):
        assert inputs == {"strategy.minutes_in_trade": 7.0}
        assert datetime.fromisoformat(exited) - datetime.fromisoformat(entered) == \
            timedelta(minutes=7)
    # the second entry read the minutes from the first trade's close to that very tick
    since = entries[1][1]["strategy.minutes_since_exit"]
    waited = datetime.fromisoformat(entries[1][0]) - datetime.fromisoformat(closed[0])
    assert since >= 12 and since == waited.total_seconds() / 60.0
