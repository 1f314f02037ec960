"""Decisions: what the engine concluded on a tick, and why.

Shaped like OPA decision-log entries (id, time, policy revision, input, result) so each one can
be explained on its own: the rule id and its file:line, the values its expression read, and the
result. Ids are sequence numbers, so replaying the same events gives the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

DecisionKind = Literal[
    "rule_fired",      # a guard rule's condition became true
    "rule_cleared",    # a fired rule's condition stopped holding
    "rule_error",      # a rule could not be evaluated; resolved to the safe side
    "state_change",    # a scope's trading state changed
    "signal",          # a strategy wants to enter or exit
    "order",           # an order request approved for the broker
    "denied",          # an order or signal refused, with a reason code
    "alert",           # a message for a person
    "data_quality",    # a tick classified or rejected
    "operator",        # a person's command taken
    "fill",            # a fill booked into positions, with its charges
    "reload",          # a new policy set swapped in between ticks, with its diff (reload.py)
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    id: str
    ts: datetime
    revision: str
    kind: DecisionKind
    scope: str = "account"
    rule_id: str = ""
    location: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    def as_row(self) -> dict[str, Any]:
        return {
            "id": self.id, "ts": self.ts.isoformat(), "revision": self.revision,
            "kind": self.kind, "scope": self.scope, "rule_id": self.rule_id,
            "location": self.location, "inputs": self.inputs, "result": self.result,
            "message": self.message,
        }
