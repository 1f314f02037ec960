"""The append-only audit store: SQLite (WAL) through sqlite-utils, hash-chained.

Every decision is written here before its side effect: the runner commits a tick's decisions
and orders, and only then sends anything to the broker. Each decision row carries the sha256 of
its content and of the previous row, so editing or deleting a row breaks the chain and
:meth:`AuditStore.verify` says where. Operator commands (kill, rearm, override) also arrive
through this file, so they survive a crash of either process and are audited by construction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import fields, is_dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlite_utils

from .decisions import Decision
from .errors import AuditError
from .events import (
    ChainSnapshot,
    Contract,
    Event,
    OperatorCommand,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    Quote,
)

GENESIS = "0" * 64


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, float):
        return round(value, 6)
    return value


def canonical(value: Any) -> str:
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _contract_row(c: Contract) -> list[Any]:
    return [c.underlying, c.kind, c.expiry.isoformat() if c.expiry else None, c.strike,
            c.option_type]


def _quote_row(q: Quote) -> list[Any]:
    return [_contract_row(q.contract), q.ltp, q.bid, q.ask, q.bid_qty, q.ask_qty, q.oi, q.iv]


def event_payload(event: Event) -> dict[str, Any]:
    """A compact, explicit form per event type: an option chain is tens of quotes a second,
    so its rows are positional lists (contract, ltp, bid, ask, bid_qty, ask_qty, oi, iv)."""
    if isinstance(event, ChainSnapshot):
        return {"underlying": event.underlying, "expiry": event.expiry.isoformat(),
                "spot": event.spot, "quotes": [_quote_row(q) for q in event.quotes]}
    if isinstance(event, Quote):
        return {"quote": _quote_row(event)}
    out: dict[str, Any] = {}
    for f in fields(event):
        if f.name in ("ts", "source"):
            continue
        value = getattr(event, f.name)
        if f.name == "received" and value is None:
            continue
        if isinstance(value, (datetime, date)):
            value = value.isoformat()
        out[f.name] = value
    return out


def event_row(run_id: int, seq: int, event: Event) -> dict[str, Any]:
    payload = event_payload(event)
    return {"run_id": run_id, "seq": seq, "ts": event.ts.isoformat(),
            "type": type(event).__name__, "source": event.source,
            "payload": json.dumps(payload, separators=(",", ":"), sort_keys=True)}


def _until(text: str | None, now: datetime) -> datetime | None:
    """``HH:MM`` means that time on the engine's current (exchange) date."""
    if not text:
        return None
    if len(text) <= 8 and ":" in text:
        from .functions import parse_hhmm
        secs = parse_hhmm(text)
        return datetime.combine(now.date(), datetime.min.time()) + timedelta(seconds=secs)
    return datetime.fromisoformat(text)


class AuditStore:
    """One SQLite file. Writes are batched per call and committed atomically."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.db = sqlite_utils.Database(self.path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self._create()
        self._last_hash: dict[int, str] = {}
        self._event_seq: dict[int, int] = {}

    def _create(self) -> None:
        db = self.db
        db.table("runs").create({"run_id": int, "revision": str, "config": str, "first_ts": str,
                           "last_ts": str, "status": str}, pk="run_id", if_not_exists=True)
        db.table("events").create({"run_id": int, "seq": int, "ts": str, "type": str, "source": str,
                             "payload": str}, pk=("run_id", "seq"), if_not_exists=True)
        db.table("decisions").create({"run_id": int, "id": str, "ts": str, "revision": str,
                                "kind": str, "scope": str, "rule_id": str, "location": str,
                                "inputs": str, "result": str, "message": str, "prev_hash": str,
                                "hash": str}, pk=("run_id", "id"), if_not_exists=True)
        db.table("orders").create({"run_id": int, "client_id": str, "ts": str, "decision_id": str,
                             "strategy_id": str, "leg_id": str, "symbol": str, "side": str,
                             "qty": int, "limit_price": float, "purpose": str, "status": str,
                             "filled_qty": int}, pk=("run_id", "client_id"), if_not_exists=True)
        db.table("fills").create({"run_id": int, "decision_id": str, "ts": str, "client_id": str,
                            "symbol": str, "side": str, "qty": int, "price": float,
                            "charges": float, "ltp": float, "purpose": str},
                           pk=("run_id", "decision_id"), if_not_exists=True)
        db.table("pnl").create({"run_id": int, "ts": str, "realized": float, "unrealized": float,
                          "charges": float, "day_pnl": float}, pk=("run_id", "ts"),
                         if_not_exists=True)
        db.table("commands").create({"id": int, "created": str, "command": str, "reason": str,
                               "who": str, "rule_id": str, "until": str, "consumed_run": int,
                               "consumed_ts": str}, pk="id", if_not_exists=True)
        db.table("decisions").create_index(["run_id", "kind"], if_not_exists=True)

    # -- runs ----------------------------------------------------------------------------------
    def begin_run(self, revision: str, config: dict[str, Any]) -> int:
        row = self.db.execute("SELECT COALESCE(MAX(run_id), 0) + 1 FROM runs").fetchone()
        run_id = int(row[0])
        with self.db.conn:
            self.db.table("runs").insert({"run_id": run_id, "revision": revision,
                                    "config": canonical(config), "first_ts": "", "last_ts": "",
                                    "status": "running"})
        self._last_hash[run_id] = GENESIS
        self._event_seq[run_id] = 0
        return run_id

    def end_run(self, run_id: int, status: str, last_ts: datetime | None) -> None:
        with self.db.conn:
            self.db.table("runs").update(run_id, {"status": status,
                                            "last_ts": last_ts.isoformat() if last_ts else ""})

    def latest_run(self) -> int | None:
        row = self.db.execute("SELECT MAX(run_id) FROM runs").fetchone()
        return int(row[0]) if row and row[0] is not None else None

    # -- writing -------------------------------------------------------------------------------
    def write(self, run_id: int, events: Iterable[Event], decisions: Iterable[Decision],
              fill_ltps: dict[str, float] | None = None) -> None:
        """Append events and decisions (and the orders and fills they describe) atomically."""
        ev_rows = []
        seq = self._event_seq[run_id]
        status_updates: list[tuple[str, str]] = []
        consumed: list[tuple[str, str]] = []
        for e in events:
            seq += 1
            ev_rows.append(event_row(run_id, seq, e))
            if isinstance(e, OrderAccepted):
                status_updates.append((e.client_id, "OPEN"))
            elif isinstance(e, OrderRejected):
                status_updates.append((e.client_id, "REJECTED"))
            elif isinstance(e, OrderCancelled):
                status_updates.append((e.client_id, "CANCELLED"))
            elif isinstance(e, OrderFilled) and e.cum_qty >= e.order_qty:
                status_updates.append((e.client_id, "COMPLETE"))
            elif isinstance(e, OperatorCommand) and e.source.startswith("command:"):
                consumed.append((e.source.partition(":")[2], e.ts.isoformat()))
        dec_rows, order_rows, fill_rows = [], [], []
        prev = self._last_hash[run_id]
        for d in decisions:
            row = d.as_row()
            body = canonical(row)
            digest = hashlib.sha256((prev + body).encode()).hexdigest()
            dec_rows.append({"run_id": run_id, **{k: (canonical(v) if isinstance(v, dict)
                                                       else v) for k, v in row.items()},
                             "prev_hash": prev, "hash": digest})
            prev = digest
            r = d.result
            if d.kind == "order":
                order_rows.append({"run_id": run_id, "client_id": r["client_id"],
                                   "ts": d.ts.isoformat(), "decision_id": d.id,
                                   "strategy_id": d.scope.partition(":")[2],
                                   "leg_id": r.get("leg", ""), "symbol": r["symbol"],
                                   "side": r["side"], "qty": r["qty"],
                                   "limit_price": r["limit"], "purpose": r["purpose"],
                                   "status": "SENT", "filled_qty": 0})
            elif d.kind == "fill":
                fill_rows.append({"run_id": run_id, "decision_id": d.id, "ts": d.ts.isoformat(),
                                  "client_id": r["client_id"], "symbol": r["symbol"],
                                  "side": r["side"], "qty": r["qty"], "price": r["price"],
                                  "charges": round(r["charges"], 2),
                                  "ltp": (fill_ltps or {}).get(d.id), "purpose": r["purpose"]})
        with self.db.conn:
            if ev_rows:
                self.db.table("events").insert_all(ev_rows, batch_size=1000)
            if dec_rows:
                self.db.table("decisions").insert_all(dec_rows, batch_size=1000)
            if order_rows:
                self.db.table("orders").insert_all(order_rows)
            for row in fill_rows:
                self.db.table("fills").insert(row)
                self.db.execute("UPDATE orders SET filled_qty = filled_qty + ? WHERE run_id = ? "
                                "AND client_id = ?", [row["qty"], run_id, row["client_id"]])
            for command_id, ts in consumed:
                self.db.execute("UPDATE commands SET consumed_run = ?, consumed_ts = ? "
                                "WHERE id = ?", [run_id, ts, int(command_id)])
            for client_id, status in status_updates:
                self.db.execute("UPDATE orders SET status = ? WHERE run_id = ? AND client_id = ?",
                                [status, run_id, client_id])
        self._last_hash[run_id] = prev
        self._event_seq[run_id] = seq

    def snapshot_pnl(self, run_id: int, ts: datetime, realized: float, unrealized: float,
                     charges: float) -> None:
        with self.db.conn:
            self.db.table("pnl").upsert({"run_id": run_id, "ts": ts.isoformat(),
                                   "realized": round(realized, 2),
                                   "unrealized": round(unrealized, 2),
                                   "charges": round(charges, 2),
                                   "day_pnl": round(realized - charges + unrealized, 2)},
                                  pk=("run_id", "ts"))

    # -- operator commands ---------------------------------------------------------------------
    def add_command(self, command: str, reason: str, *, who: str, created: str,
                    rule_id: str = "", until: str = "") -> int:
        with self.db.conn:
            table = self.db.table("commands").insert({"created": created, "command": command,
                                                "reason": reason, "who": who,
                                                "rule_id": rule_id, "until": until,
                                                "consumed_run": None, "consumed_ts": None})
        return int(str(table.last_pk))

    def take_commands(self, run_id: int, now: datetime) -> list[OperatorCommand]:
        """Unconsumed commands as events stamped with the engine's time. They are marked
        consumed by :meth:`write`, in the same transaction as the decisions they caused, so a
        crash in between leaves the command waiting rather than lost (taking it twice is
        harmless: kill and rearm are idempotent)."""
        rows = list(self.db.query("SELECT * FROM commands WHERE consumed_run IS NULL "
                                  "ORDER BY id"))
        if not rows:
            return []
        return [OperatorCommand(ts=now, source=f"command:{row['id']}", command=row["command"],
                                reason=row["reason"] or "", who=row["who"] or "operator",
                                rule_id=row["rule_id"] or "", until=_until(row["until"], now))
                for row in rows]

    # -- reading -------------------------------------------------------------------------------
    def decisions(self, run_id: int) -> Iterator[dict[str, Any]]:
        yield from self.db.query("SELECT * FROM decisions WHERE run_id = ? ORDER BY id",
                                 [run_id])

    def find_decision(self, decision_id: str, run_id: int | None = None) -> dict[str, Any]:
        run = run_id if run_id is not None else self.latest_run()
        rows = list(self.db.query("SELECT * FROM decisions WHERE run_id = ? AND id = ?",
                                  [run, decision_id]))
        if not rows:
            raise AuditError(f"no decision {decision_id!r} in run {run}")
        return rows[0]

    def verify(self, run_id: int) -> str | None:
        """None when the hash chain is intact, else the id of the first row that fails."""
        prev = GENESIS
        for row in self.decisions(run_id):
            body = canonical({k: (json.loads(row[k]) if k in ("inputs", "result") else row[k])
                              for k in ("id", "ts", "revision", "kind", "scope", "rule_id",
                                        "location", "inputs", "result", "message")})
            digest = hashlib.sha256((prev + body).encode()).hexdigest()
            if row["prev_hash"] != prev or row["hash"] != digest:
                return str(row["id"])
            prev = digest
        return None

    def close(self) -> None:
        self.db.close()
