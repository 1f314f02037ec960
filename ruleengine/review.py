"""The review queue: large entries wait here until a person approves or rejects them.

A fat-finger ceiling refuses what is clearly wrong; between "clearly fine" and "clearly wrong"
sits the order that is probably right but big enough that a person should look first (the
``confirm`` thresholds of the ``order_checks`` policy). Such an order is held in a table of the
audit database, so the running engine and ``ruleengine orders pending|approve|reject`` in
another terminal see the same queue, and a crash of either loses nothing.

Life of an item::

    pending ──approve──> approved ──(the runner takes it)──> sent through execution
       │────reject───> rejected  ──(the runner takes it)──> refused, engine told
       │────(expire_after of exchange time passes)──> expired (never sent)
       └────(the engine cancels it)──> cancelled

Every transition is one conditional UPDATE (``WHERE status = 'pending'``), so an approval and
an expiry racing each other cannot both win. Expiry runs on event time, like everything the
engine decides; only the person's approval carries a wall-clock stamp, for the record.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlite_utils

from .contracts import OrderRequest
from .errors import RuleEngineError
from .events import Contract

__all__ = [
    "APPROVED",
    "CANCELLED",
    "EXPIRED",
    "PENDING",
    "REJECTED",
    "TABLE",
    "ReviewError",
    "ReviewItem",
    "ReviewQueue",
    "order_from_dict",
    "order_to_dict",
]

TABLE = "review_queue"

PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
EXPIRED, CANCELLED = "expired", "cancelled"


class ReviewError(RuleEngineError):
    """A review item does not exist or is no longer pending (already decided or expired)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewItem:
    """One held order (all slices of it), as the table stores it."""

    id: int
    status: str
    reason: str
    orders: tuple[OrderRequest, ...]
    created_ts: datetime  # event time it was held
    expires_ts: datetime  # event time it expires unless decided
    decided_by: str = ""
    decided_at: str = ""  # wall clock for a person, event time for expiry and cancel
    note: str = ""
    consumed_ts: str = ""  # event time the runner acted on the decision

    @property
    def client_ids(self) -> tuple[str, ...]:
        return tuple(o.client_id for o in self.orders)

    @property
    def qty(self) -> int:
        return sum(o.qty for o in self.orders)

    @property
    def value(self) -> float:
        price = self.orders[0].limit_price or 0.0
        return self.qty * price

    def describe(self) -> str:
        o = self.orders[0]
        price = f"@ {o.limit_price:.2f}" if o.limit_price is not None else "MARKET"
        slices = f" in {len(self.orders)} slices" if len(self.orders) > 1 else ""
        return (f"{o.strategy_id}/{o.leg_id} {o.side} {self.qty} {o.contract.symbol} {price}"
                f"{slices} (value {self.value:,.0f} INR)")


class ReviewQueue:
    """The ``review_queue`` table in an SQLite file (normally the audit database)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.db = sqlite_utils.Database(self.path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.db.table(TABLE).create(
            {"id": int, "status": str, "reason": str, "client_ids": str, "orders": str,
             "strategy_id": str, "symbol": str, "side": str, "qty": int, "limit_price": float,
             "value": float, "created_ts": str, "expires_ts": str, "decided_by": str,
             "decided_at": str, "note": str, "consumed_ts": str},
            pk="id", if_not_exists=True)
        self.db.table(TABLE).create_index(["status"], if_not_exists=True)

    def close(self) -> None:
        self.db.close()

    # -- the engine's side (event time) --------------------------------------------------------
    def hold(self, orders: Sequence[OrderRequest], reason: str, now: datetime,
             expire_after_s: float) -> ReviewItem:
        """Park the slices of one order; they are sent only once a person approves."""
        if not orders:
            raise ValueError("hold needs at least one order")
        first = orders[0]
        qty = sum(o.qty for o in orders)
        expires = now + timedelta(seconds=expire_after_s)
        row = {"status": PENDING, "reason": reason,
               "client_ids": json.dumps([o.client_id for o in orders]),
               "orders": json.dumps([order_to_dict(o) for o in orders], sort_keys=True),
               "strategy_id": first.strategy_id, "symbol": first.contract.symbol,
               "side": first.side, "qty": qty, "limit_price": first.limit_price,
               "value": round(qty * (first.limit_price or 0.0), 2),
               "created_ts": now.isoformat(), "expires_ts": expires.isoformat(),
               "decided_by": "", "decided_at": "", "note": "", "consumed_ts": ""}
        with self.db.conn:
            table = self.db.table(TABLE).insert(row)
        return self.get(int(str(table.last_pk)))

    def expire(self, now: datetime) -> list[ReviewItem]:
        """Mark every pending item whose time is up as expired; returns them."""
        out: list[ReviewItem] = []
        for item in self._where("status = ?", [PENDING]):
            if item.expires_ts <= now and self._move(item.id, EXPIRED, who="expiry",
                                                      at=now.isoformat(), note=""):
                out.append(self.get(item.id))
        return out

    def cancel(self, client_id: str, now: datetime) -> ReviewItem | None:
        """Cancel the pending item holding ``client_id`` (the engine withdrew the order)."""
        for item in self._where("status = ?", [PENDING]):
            if client_id in item.client_ids and self._move(
                    item.id, CANCELLED, who="engine", at=now.isoformat(),
                    note=f"cancel requested for {client_id}"):
                return self.get(item.id)
        return None

    def take_decided(self, ids: Iterable[int], now: datetime) -> list[ReviewItem]:
        """Approved or rejected items among ``ids`` not yet acted on; marks them consumed."""
        wanted = sorted(set(ids))
        if not wanted:
            return []
        marks = ",".join("?" * len(wanted))
        items = self._where(f"id IN ({marks}) AND status IN (?, ?) AND consumed_ts = ''",
                            [*wanted, APPROVED, REJECTED])
        with self.db.conn:
            for item in items:
                self.db.execute(f"UPDATE {TABLE} SET consumed_ts = ? WHERE id = ?",
                                [now.isoformat(), item.id])
        return items

    # -- a person's side (CLI) -----------------------------------------------------------------
    def pending(self) -> list[ReviewItem]:
        return self._where("status = ?", [PENDING])

    def approve(self, item_id: int, *, who: str, at: str, note: str = "") -> ReviewItem:
        return self._decide(item_id, APPROVED, who=who, at=at, note=note)

    def reject(self, item_id: int, *, who: str, at: str, note: str = "") -> ReviewItem:
        return self._decide(item_id, REJECTED, who=who, at=at, note=note)

    def get(self, item_id: int) -> ReviewItem:
        items = self._where("id = ?", [item_id])
        if not items:
            raise ReviewError(f"no review item {item_id}")
        return items[0]

    def items(self) -> list[ReviewItem]:
        return self._where("1 = 1", [])

    # -- internals -----------------------------------------------------------------------------
    def _decide(self, item_id: int, status: str, *, who: str, at: str, note: str) -> ReviewItem:
        item = self.get(item_id)
        if item.status != PENDING or not self._move(item_id, status, who=who, at=at, note=note):
            now = self.get(item_id)
            raise ReviewError(f"review item {item_id} is {now.status}, not pending"
                              + (f" ({now.decided_by} at {now.decided_at})"
                                 if now.decided_by else ""))
        return self.get(item_id)

    def _move(self, item_id: int, status: str, *, who: str, at: str, note: str) -> bool:
        """Leave ``pending`` for ``status`` unless something else got there first."""
        with self.db.conn:
            cur = self.db.execute(
                f"UPDATE {TABLE} SET status = ?, decided_by = ?, decided_at = ?, note = ? "
                "WHERE id = ? AND status = ?", [status, who, at, note, item_id, PENDING])
        return bool(cur.rowcount == 1)

    def _where(self, clause: str, params: list[Any]) -> list[ReviewItem]:
        rows = self.db.query(f"SELECT * FROM {TABLE} WHERE {clause} ORDER BY id", params)
        return [_item(r) for r in rows]


def _item(row: dict[str, Any]) -> ReviewItem:
    return ReviewItem(id=int(row["id"]), status=row["status"], reason=row["reason"],
                      orders=tuple(order_from_dict(d) for d in json.loads(row["orders"])),
                      created_ts=datetime.fromisoformat(row["created_ts"]),
                      expires_ts=datetime.fromisoformat(row["expires_ts"]),
                      decided_by=row["decided_by"] or "", decided_at=row["decided_at"] or "",
                      note=row["note"] or "", consumed_ts=row["consumed_ts"] or "")


def order_to_dict(o: OrderRequest) -> dict[str, Any]:
    """An order as plain JSON-able data, so a held order survives a restart."""
    c = o.contract
    return {"client_id": o.client_id, "underlying": c.underlying, "kind": c.kind,
            "expiry": c.expiry.isoformat() if c.expiry else None, "strike": c.strike,
            "option_type": c.option_type, "side": o.side, "qty": o.qty,
            "order_type": o.order_type, "limit_price": o.limit_price, "purpose": o.purpose,
            "strategy_id": o.strategy_id, "leg_id": o.leg_id}


def order_from_dict(d: dict[str, Any]) -> OrderRequest:
    contract = Contract(underlying=d["underlying"], kind=d["kind"],
                        expiry=date.fromisoformat(d["expiry"]) if d["expiry"] else None,
                        strike=d["strike"], option_type=d["option_type"])
    return OrderRequest(client_id=d["client_id"], contract=contract, side=d["side"],
                        qty=int(d["qty"]), order_type=d["order_type"],
                        limit_price=d["limit_price"], purpose=d["purpose"],
                        strategy_id=d["strategy_id"], leg_id=d["leg_id"])
