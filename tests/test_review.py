"""The review queue: large entries wait in SQLite for a person; approve, reject, expire, cancel."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ruleengine.checks import CheckConfig
from ruleengine.cli import EXIT_FINDINGS, EXIT_OK, main
from ruleengine.contracts import BrokerOrder, BrokerPosition, OrderRequest
from ruleengine.events import (
    BrokerEvent,
    Contract,
    Event,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
)
from ruleengine.execution import ExecutionConfig, ExecutionGateway
from ruleengine.instruments import build_instrument
from ruleengine.review import ReviewError, ReviewQueue, order_from_dict, order_to_dict

T0 = datetime(2026, 3, 10, 10, 0, 0)
CE = Contract(underlying="NIFTY", kind="OPT", expiry=date(2026, 3, 17), strike=24000.0,
              option_type="CE")
NIFTY = build_instrument({
    "symbol": "NIFTY", "exchange": "NSE", "segment": "NFO", "strike_step": 50,
    "tick_size": 0.05, "lot_sizes": [{"effective_from": "2026-01-01", "value": 65}],
    "freeze_qty": [{"effective_from": "2026-01-01", "value": 1800}]})


def t(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def req(cid: str, lots: int = 1, purpose: str = "entry") -> OrderRequest:
    return OrderRequest(client_id=cid, contract=CE, side="BUY", qty=lots * 65,
                        order_type="LIMIT", limit_price=101.0,
                        purpose=purpose, strategy_id="s", leg_id="ce")  # type: ignore[arg-type]


class Recorder:
    """A broker that accepts everything and remembers what reached it."""

    name = "rec"

    def __init__(self) -> None:
        self.placed: list[str] = []
        self.queue: list[BrokerEvent] = []

    def place(self, order: OrderRequest, now: datetime) -> str:
        self.placed.append(order.client_id)
        self.queue.append(OrderAccepted(ts=now, client_id=order.client_id,
                                        broker_order_id=f"B{len(self.placed)}"))
        return f"B{len(self.placed)}"

    def cancel(self, client_id: str, now: datetime) -> None:
        self.queue.append(OrderCancelled(ts=now, client_id=client_id))

    def orders_by_tag(self, client_id: str) -> Sequence[BrokerOrder]:
        return []

    def positions(self) -> Sequence[BrokerPosition]:
        return []

    def on_market(self, event: Event) -> None:
        return None

    def poll(self, now: datetime) -> Sequence[BrokerEvent]:
        out, self.queue = self.queue, []
        return out


def setup(db: Path, **confirm: Any) -> tuple[Recorder, ExecutionGateway, ReviewQueue]:
    checks = CheckConfig.from_policy({"confirm": {"lots": 5, "expire_after": "60s", **confirm},
                                      "limits": {"NIFTY": {"max_lots": 100}}},
                                     instruments={"NIFTY": NIFTY})
    broker = Recorder()
    queue = ReviewQueue(db)
    gw = ExecutionGateway(broker, ExecutionConfig.from_policy({}), seed=1, checks=checks,
                          review=queue)
    return broker, gw, queue


def test_small_orders_and_exits_are_not_held(tmp_path: Path) -> None:
    broker, gw, queue = setup(tmp_path / "audit.db")
    gw.submit([req("small", lots=4), req("exit", lots=9, purpose="exit")], [], t(0))
    assert broker.placed == ["exit", "small"]
    assert queue.pending() == []


def test_approved_order_is_sent_on_the_next_poll(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "audit.db"
    broker, gw, queue = setup(db)
    gw.submit([req("big1", lots=20), req("big2", lots=20)], [], t(0))  # one leg, sliced in 2
    assert broker.placed == []
    assert gw.poll(t(1)) == []
    assert main(["orders", "pending", "--db", str(db)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "BUY 2600" in out and "in 2 slices" in out and "20 lots" not in out
    (item,) = queue.pending()
    assert item.client_ids == ("big1", "big2") and "40 lots >= 5" in item.reason
    assert main(["orders", "approve", str(item.id), "--db", str(db), "--who", "asha",
                 "--reason", "checked with the desk"]) == EXIT_OK
    assert gw.poll(t(2)) == []  # released and sent; the broker answers by the next poll
    assert broker.placed == ["big1", "big2"]
    assert gw.poll(t(3)) == [OrderAccepted(ts=t(3), client_id="big1", broker_order_id="B1"),
                             OrderAccepted(ts=t(3), client_id="big2", broker_order_id="B2")]
    row = queue.get(item.id)
    assert (row.status, row.decided_by, row.note) == ("approved", "asha",
                                                      "checked with the desk")
    assert row.consumed_ts == t(2).isoformat()


def test_rejected_order_is_refused_with_a_code(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    broker, gw, queue = setup(db)
    gw.submit([req("big", lots=6)], [], t(0))
    (item,) = queue.pending()
    assert main(["orders", "reject", str(item.id), "--db", str(db), "--who", "asha",
                 "--reason", "too big for today"]) == EXIT_OK
    (event,) = gw.poll(t(5))
    assert isinstance(event, OrderRejected) and event.client_id == "big"
    assert event.reason.startswith("review-rejected: by asha — too big for today")
    assert broker.placed == []


def test_unapproved_order_expires_on_event_time(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "audit.db"
    broker, gw, queue = setup(db, expire_after="30s")
    gw.submit([req("big", lots=6)], [], t(0))
    (item,) = queue.pending()
    assert gw.poll(t(29)) == []
    (event,) = gw.poll(t(30))
    assert isinstance(event, OrderRejected) and event.reason.startswith("review-expired:")
    assert queue.get(item.id).status == "expired"
    assert queue.get(item.id).decided_at == t(30).isoformat()
    # a late approval changes nothing and says why
    assert main(["orders", "approve", str(item.id), "--db", str(db)]) == EXIT_FINDINGS
    assert "expired, not pending" in capsys.readouterr().err
    assert gw.poll(t(31)) == [] and broker.placed == []


def test_engine_cancel_withdraws_a_held_order(tmp_path: Path) -> None:
    broker, gw, queue = setup(tmp_path / "audit.db")
    gw.submit([req("big", lots=6)], [], t(0))
    (item,) = queue.pending()
    gw.submit([], ["big"], t(3))
    (event,) = gw.poll(t(4))
    assert event == OrderCancelled(ts=t(3), source="execution", client_id="big", filled_qty=0)
    assert queue.get(item.id).status == "cancelled"
    assert broker.placed == []
    with pytest.raises(ReviewError, match="cancelled"):
        queue.approve(item.id, who="x", at="now")


def test_a_decision_is_taken_once(tmp_path: Path) -> None:
    queue = ReviewQueue(tmp_path / "audit.db")
    item = queue.hold([req("a", lots=6)], "6 lots >= 5", t(0), 60)
    queue.approve(item.id, who="a", at="x")
    with pytest.raises(ReviewError, match="approved"):
        queue.reject(item.id, who="b", at="y")
    assert [i.id for i in queue.take_decided([item.id], t(1))] == [item.id]
    assert queue.take_decided([item.id], t(2)) == []  # consumed
    with pytest.raises(ReviewError, match="no review item 99"):
        queue.get(99)


def test_queue_survives_reopening_and_shares_the_audit_file(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    from ruleengine.audit import AuditStore

    store = AuditStore(db)  # the audit store's own tables in the same file
    queue = ReviewQueue(db)
    item = queue.hold([req("a", lots=6), req("b", lots=6)], "why", t(0), 60)
    queue.close()
    store.close()
    again = ReviewQueue(db)
    (same,) = again.pending()
    assert same.orders == item.orders and same.qty == 780 and same.value == 780 * 101.0
    tables = {r[0] for r in sqlite3.connect(db).execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"review_queue", "decisions", "events"} <= tables


def test_order_round_trips_through_json() -> None:
    o = req("a")
    assert order_from_dict(order_to_dict(o)) == o


def test_cli_on_an_empty_queue_and_a_missing_item(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "audit.db")
    assert main(["orders", "pending", "--db", db]) == EXIT_OK
    assert "no orders waiting" in capsys.readouterr().err
    assert main(["orders", "reject", "7", "--db", db]) == EXIT_FINDINGS
    assert "no review item 7" in capsys.readouterr().err
