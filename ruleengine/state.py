"""The engine's mutable state between ticks, in one place so a restart can rebuild it.

Stages read and update this; what passes *between* stages (signals, order requests, decisions)
is immutable. Nothing here reads a clock: every time comes from events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from .contracts import OrderRequest
from .decisions import Decision
from .market import MarketState
from .policyset import PolicySet, Strategy
from .portfolio import Portfolio
from .tradingstate import ScopeState


@dataclass(slots=True)
class RuleStatus:
    """Edge detection per (rule, scope): actions run when a condition *becomes* true."""

    active: bool = False
    errored: str = ""
    last_fired: datetime | None = None
    clear_since: datetime | None = None


@dataclass(slots=True)
class OrderTrack:
    request: OrderRequest
    sent_ts: datetime
    status: str = "SENT"  # SENT, OPEN, COMPLETE, CANCELLED, REJECTED
    filled: int = 0
    cancel_sent: bool = False

    @property
    def done(self) -> bool:
        return self.status in ("COMPLETE", "CANCELLED", "REJECTED")


@dataclass(slots=True)
class PlannedLeg:
    leg_id: str
    request: OrderRequest


@dataclass(slots=True)
class StrategyRun:
    spec: Strategy
    indicators: dict[str, Any] = field(default_factory=dict)
    bars: dict[str, tuple[int, list[float]]] = field(default_factory=dict)  # by source
    sources: tuple[str, ...] = ()  # the price series its indicators read
    ind_values: dict[str, float] = field(default_factory=dict)  # "ind.<name>" -> value
    ind_changes: int = 0  # bumped whenever ind_values changes, so cached scopes see it
    entry_ts: datetime | None = None
    waiting: list[PlannedLeg] = field(default_factory=list)  # legs sent after hedges fill
    best_pnl_pct: float | None = None
    edges: dict[str, str] = field(default_factory=dict)  # last reason per signal, for dedup
    exit_reason: str = ""
    day: date | None = None
    scope: str = field(init=False, default="")  # "strategy:<id>", the key of its values

    def __post_init__(self) -> None:
        self.scope = f"strategy:{self.spec.id}"


@dataclass(slots=True)
class EngineState:
    policy: PolicySet
    market: MarketState
    portfolio: Portfolio
    runs: dict[str, StrategyRun]
    scopes: dict[str, ScopeState] = field(default_factory=dict)  # effective, non-ACTIVE only
    holds: dict[str, dict[str, ScopeState]] = field(default_factory=dict)  # scope -> rule -> hold
    rules: dict[tuple[str, str], RuleStatus] = field(default_factory=dict)
    orders: dict[str, OrderTrack] = field(default_factory=dict)
    live: dict[str, OrderTrack] = field(default_factory=dict)  # orders not yet done
    flatten: set[str] = field(default_factory=set)  # scopes being squared off until flat
    overrides: dict[str, datetime] = field(default_factory=dict)  # rule id -> until
    kill_switch: bool = False
    guard_plan: Any = None  # guards' per-scope batches, rebuilt when policy or scopes change
    guard_plan_key: tuple[str, int, int] | None = None
    peak_equity: float = 0.0
    orders_today: int = 0
    seq: int = 0
    day: date | None = None
    decisions: list[Decision] = field(default_factory=list)  # this tick's, in order
    outbox: list[OrderRequest] = field(default_factory=list)  # this tick's approved orders
    cancels: list[str] = field(default_factory=list)  # this tick's cancel requests

    def open_orders(self) -> list[OrderTrack]:
        return list(self.live.values())

    def finish(self, track: OrderTrack, status: str) -> None:
        track.status = status
        self.live.pop(track.request.client_id, None)
