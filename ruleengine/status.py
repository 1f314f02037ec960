"""``ruleengine status``: trading state per scope, active overrides and why each halt happened.

Everything is read back from the audit store, the same record a regulator or a post-mortem
would read, so the answer does not depend on the running process being reachable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .audit import AuditStore


@dataclass(frozen=True, slots=True, kw_only=True)
class ScopeStatus:
    scope: str
    state: str
    rule_id: str
    reason: str
    since: str
    decision_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    run_id: int | None
    run_status: str
    last_ts: str
    scopes: tuple[ScopeStatus, ...]
    overrides: tuple[dict[str, Any], ...]
    kill_switch: bool
    pending_commands: tuple[dict[str, Any], ...]

    def render(self) -> str:
        if self.run_id is None:
            return "no runs recorded in this audit store"
        lines = [f"run {self.run_id}: {self.run_status}, last tick {self.last_ts or '-'}",
                 f"kill switch: {'ENGAGED' if self.kill_switch else 'off'}"]
        halted = [s for s in self.scopes if s.state != "ACTIVE"]
        if not halted:
            lines.append("trading state: every scope ACTIVE")
        for s in self.scopes:
            if s.state == "ACTIVE":
                continue
            lines.append(f"{s.scope:<32} {s.state:<11} since {s.since[11:19]}  by {s.rule_id}: "
                         f"{s.reason}  (explain {s.decision_id})")
        for o in self.overrides:
            lines.append(f"override: {o['rule_id']} suspended until {o['until']} by {o['who']}"
                         f" — {o['reason']}")
        for c in self.pending_commands:
            lines.append(f"waiting for the runner: {c['command']} {c['rule_id'] or ''} "
                         f"— {c['reason']}")
        return "\n".join(lines)


def read_status(store: AuditStore, run_id: int | None = None) -> Status:
    run = run_id if run_id is not None else store.latest_run()
    pending = tuple(store.db.query("SELECT * FROM commands WHERE consumed_run IS NULL "
                                   "ORDER BY id"))
    if run is None:
        return Status(run_id=None, run_status="", last_ts="", scopes=(), overrides=(),
                      kill_switch=False, pending_commands=pending)
    meta = next(store.db.query("SELECT status, last_ts FROM runs WHERE run_id = ?", [run]))
    scopes: dict[str, ScopeStatus] = {}
    overrides: dict[str, dict[str, Any]] = {}
    kill = False
    last_ts = meta["last_ts"]
    for row in store.db.query("SELECT id, ts, kind, scope, rule_id, result, message FROM "
                              "decisions WHERE run_id = ? AND kind IN ('state_change', "
                              "'operator') ORDER BY id", [run]):
        result = json.loads(row["result"])
        if row["kind"] == "state_change":
            scopes[row["scope"]] = ScopeStatus(scope=row["scope"], state=result["to"],
                                               rule_id=row["rule_id"], reason=row["message"],
                                               since=row["ts"], decision_id=row["id"])
            continue
        command = result.get("command")
        if command == "kill":
            kill = True
        elif command == "rearm":
            kill = False
        elif command == "override" and "until" in result:
            overrides[row["rule_id"]] = {"rule_id": row["rule_id"], "until": result["until"],
                                         "who": result.get("who", ""),
                                         "reason": result.get("reason", "")}
        elif command == "clear_override" or result.get("override") == "expired":
            overrides.pop(row["rule_id"], None)
        last_ts = max(last_ts or "", row["ts"])
    return Status(run_id=run, run_status=meta["status"], last_ts=last_ts,
                  scopes=tuple(sorted(scopes.values(), key=lambda s: s.scope)),
                  overrides=tuple(o for o in overrides.values() if o["until"] > (last_ts or "")),
                  kill_switch=kill, pending_commands=pending)
