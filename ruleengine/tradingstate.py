"""Trading state per scope: ACTIVE, REDUCE_ONLY or HALTED, and the one gateway that enforces it.

Scopes nest: ``account`` contains ``underlying:NIFTY`` which contains ``strategy:<id>``. The
state that applies to an order is the most restrictive along that chain, so a halt on the
account stops every strategy without touching their own states. Exits are never refused here:
reducing risk is always allowed, by construction of :func:`allows`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class TradingState(IntEnum):
    """Ordered so that ``max`` gives the most restrictive state."""

    ACTIVE = 0
    REDUCE_ONLY = 1
    HALTED = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class ScopeState:
    """The state of one scope and why it is not ACTIVE (rule id and message)."""

    state: TradingState = TradingState.ACTIVE
    rule_id: str = ""
    reason: str = ""
    rearm: str = ""


def scope_chain(underlying: str | None, strategy: str | None) -> tuple[str, ...]:
    chain = ["account"]
    if underlying:
        chain.append(f"underlying:{underlying}")
    if strategy:
        chain.append(f"strategy:{strategy}")
    return tuple(chain)


def effective(states: dict[str, ScopeState], chain: tuple[str, ...]) -> ScopeState:
    """The most restrictive state along a scope chain (the first one on ties)."""
    worst = ScopeState()
    for scope in chain:
        s = states.get(scope)
        if s is not None and s.state > worst.state:
            worst = s
    return worst


def allows(state: TradingState, *, reduces_risk: bool) -> bool:
    """The gateway: new risk needs ACTIVE; exits, cancels and square-offs always pass."""
    return reduces_risk or state == TradingState.ACTIVE
