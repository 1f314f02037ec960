"""The end-of-run report a trader reads: what traded, what it cost, and which rules acted.

Net P&L is shown next to the P&L the same trades would have made at LTP with no charges, so the
cost of realistic fills (spread, impact) and of Indian charges is visible, not hidden.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from .audit import AuditStore


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategyLine:
    strategy_id: str
    trades: int
    fills: int
    gross: float
    charges: float
    net: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    run_id: int
    revision: str
    first_ts: str
    last_ts: str
    strategies: tuple[StrategyLine, ...]
    gross: float
    charges: float
    net: float
    slippage_vs_ltp: float
    ltp_pnl: float
    decisions_by_kind: dict[str, int]
    rules_fired: dict[str, int]
    denials: dict[str, int]
    alerts: tuple[str, ...]
    open_positions: int

    def render(self) -> str:
        lines = [f"Run {self.run_id}  {self.first_ts} → {self.last_ts}  "
                 f"policy {self.revision[:12]}",
                 "",
                 f"{'strategy':<24}{'trades':>7}{'fills':>7}{'gross':>12}{'charges':>10}"
                 f"{'net':>12}"]
        for s in self.strategies:
            lines.append(f"{s.strategy_id:<24}{s.trades:>7}{s.fills:>7}{s.gross:>12,.2f}"
                         f"{s.charges:>10,.2f}{s.net:>12,.2f}")
        lines += [
            f"{'total':<24}{'':>7}{'':>7}{self.gross:>12,.2f}{self.charges:>10,.2f}"
            f"{self.net:>12,.2f}",
            "",
            f"P&L if every fill were at LTP, no charges: {self.ltp_pnl:>12,.2f}",
            f"  less slippage vs LTP (spread, impact):   {self.slippage_vs_ltp:>12,.2f}",
            f"  less charges (brokerage, STT, fees, GST): {self.charges:>11,.2f}",
            f"  = net P&L:                                {self.net:>11,.2f}",
            "",
            "Decisions: " + ", ".join(f"{k} {v}" for k, v in sorted(
                self.decisions_by_kind.items())),
        ]
        if self.rules_fired:
            lines.append("Rules fired: " + ", ".join(f"{k} ×{v}" for k, v in sorted(
                self.rules_fired.items())))
        if self.denials:
            lines.append("Denied: " + ", ".join(f"{k} ×{v}" for k, v in sorted(
                self.denials.items())))
        if self.alerts:
            lines.append(f"Alerts ({len(self.alerts)}):")
            lines += [f"  {a}" for a in self.alerts[:20]]
        lines.append(f"Open positions at end: {self.open_positions}")
        return "\n".join(lines)


def summarize(store: AuditStore, run_id: int, *, slippage_vs_ltp: float, gross: float,
              charges: float, per_strategy_gross: dict[str, float],
              open_positions: int) -> Summary:
    db = store.db
    run = next(db.query("SELECT * FROM runs WHERE run_id = ?", [run_id]))
    first = next(db.query("SELECT MIN(ts) AS t FROM events WHERE run_id = ?", [run_id]))["t"]
    kinds: Counter[str] = Counter()
    fired: Counter[str] = Counter()
    denials: Counter[str] = Counter()
    trades: Counter[str] = Counter()
    alerts: list[str] = []
    for row in db.query("SELECT kind, scope, rule_id, result, message, ts FROM decisions "
                        "WHERE run_id = ? ORDER BY id", [run_id]):
        kinds[row["kind"]] += 1
        result: dict[str, Any] = json.loads(row["result"])
        if row["kind"] == "rule_fired" and not result.get("already_in_force"):
            fired[row["rule_id"]] += 1
        elif row["kind"] == "denied":
            denials[str(result.get("code"))] += 1
        elif row["kind"] == "alert":
            alerts.append(f"{row['ts'][11:19]} {row['message']}")
        elif row["kind"] == "signal" and result.get("signal") in ("entry", "reentry"):
            trades[row["scope"].partition(":")[2]] += 1
    fills: dict[str, int] = defaultdict(int)
    fill_charges: dict[str, float] = defaultdict(float)
    for row in db.query("SELECT o.strategy_id AS sid, f.charges AS charges FROM fills f JOIN "
                        "orders o ON o.run_id = f.run_id AND o.client_id = f.client_id "
                        "WHERE f.run_id = ?", [run_id]):
        fills[row["sid"]] += 1
        fill_charges[row["sid"]] += row["charges"]
    ids = sorted(set(trades) | set(fills) | set(per_strategy_gross))
    lines = tuple(StrategyLine(strategy_id=s, trades=trades[s], fills=fills[s],
                               gross=per_strategy_gross.get(s, 0.0), charges=fill_charges[s],
                               net=per_strategy_gross.get(s, 0.0) - fill_charges[s])
                  for s in ids)
    return Summary(run_id=run_id, revision=run["revision"], first_ts=first or "",
                   last_ts=run["last_ts"], strategies=lines, gross=gross, charges=charges,
                   net=gross - charges, slippage_vs_ltp=slippage_vs_ltp,
                   ltp_pnl=gross + slippage_vs_ltp, decisions_by_kind=dict(kinds),
                   rules_fired=dict(fired), denials=dict(denials), alerts=tuple(alerts),
                   open_positions=open_positions)
