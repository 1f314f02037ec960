"""The audit store: operator commands are not lost between being read and being acted on."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from ruleengine.audit import AuditStore
from ruleengine.engine import Engine
from ruleengine.events import IndexTick
from ruleengine.policyset import load_policy_set

REPO = Path(__file__).resolve().parents[1]

NOW = datetime(2026, 11, 26, 10, 0)


def test_a_command_read_but_not_yet_written_stays_pending(tmp_path: Path) -> None:
    store = AuditStore(tmp_path / "a.db")
    run_id = store.begin_run("rev", {})
    store.add_command("kill", "stop", who="desk", created="2026-11-26T10:00:00")
    [first] = store.take_commands(run_id, NOW)
    # the process dies before writing the tick: a restart must see the kill again
    [again] = store.take_commands(run_id, NOW)
    assert again.command == first.command == "kill"
    store.write(run_id, [first], [])
    assert store.take_commands(run_id, NOW) == []
    row = next(store.db.query("SELECT consumed_run, consumed_ts FROM commands"))
    assert row == {"consumed_run": run_id, "consumed_ts": NOW.isoformat()}
    store.close()


def test_hh_mm_override_times_mean_the_engine_date(tmp_path: Path) -> None:
    store = AuditStore(tmp_path / "a.db")
    run_id = store.begin_run("rev", {})
    store.add_command("override", "busy day", who="desk", created="x", rule_id="r",
                      until="14:30")
    [cmd] = store.take_commands(run_id, datetime(2020, 3, 13, 10, 0))
    assert cmd.until == datetime(2020, 3, 13, 14, 30)
    store.close()


def test_a_command_row_with_empty_fields_still_kills(tmp_path: Path) -> None:
    """A row written by hand or by an older version may leave reason and who NULL. The kill
    must still engage, on the compiled core too (it refuses None where text is declared)."""
    store = AuditStore(tmp_path / "a.db")
    run_id = store.begin_run("rev", {})
    with store.db.conn:
        store.db.execute("INSERT INTO commands (created, command) VALUES ('x', 'kill')")
    [cmd] = store.take_commands(run_id, NOW)
    assert (cmd.reason, cmd.who) == ("", "operator")
    engine = Engine(load_policy_set([REPO / "policies", REPO / "strategies"]))
    engine.tick([IndexTick(ts=NOW, underlying="NIFTY", value=24000.0), cmd])
    assert engine.state.kill_switch
    store.close()
