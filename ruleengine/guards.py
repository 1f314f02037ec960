"""Stage 3 — guards: risk rules and circuit breakers set the trading state of each scope.

Rules are evaluated every tick but act on edges: actions run when a condition *becomes* true (and
its cooldown has passed), so a breached limit halts once instead of on every tick. A rule that
cannot be evaluated (a missing price, a division by zero) resolves to the safe side: if it guards
risk, its scope goes REDUCE_ONLY until it evaluates cleanly again. Nothing here ever blocks an
exit; square-off is requested and carried out by the exits stage.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from .decisions import Decision
from .errors import EvaluationError
from .policyset import Rule
from .state import EngineState, RuleStatus
from .tradingstate import ScopeState, TradingState

GUARD_KINDS = frozenset({"risk", "circuit_breakers"})
RISKY_ACTIONS = frozenset({"halt", "reduce_only", "square_off", "disable_strategy"})
_ACTION_STATE = {"halt": TradingState.HALTED, "reduce_only": TradingState.REDUCE_ONLY,
                 "disable_strategy": TradingState.HALTED}

Emit = Callable[..., Decision]


def scopes_for(rule: Rule, st: EngineState) -> tuple[str, ...]:
    """The scope instances a rule watches: underlyings come from the strategies and the market
    data seen, strategies from the policy set. Cached per rule until either changes."""
    key = (rule.id, len(st.market.underlyings), len(st.runs))
    hit = _SCOPES.get(key)
    if hit is not None and hit[0] is rule:
        return hit[1]
    if rule.scope == "account":
        out: tuple[str, ...] = ("account",)
    elif rule.scope == "underlying":
        names = sorted({r.spec.underlying for r in st.runs.values()} | set(st.market.underlyings))
        out = tuple(f"underlying:{u}" for u in names if not rule.targets or u in rule.targets)
    else:
        out = tuple(f"strategy:{sid}" for sid in st.runs
                    if not rule.targets or sid in rule.targets)
    _SCOPES[key] = (rule, out)
    return out


_SCOPES: dict[tuple[str, int, int], tuple[Rule, tuple[str, ...]]] = {}


def run_guards(st: EngineState, values_for: Callable[[str], dict[str, Any]], now: datetime,
               emit: Emit) -> None:
    overrides = st.overrides
    for rule in st.policy.rules:
        if rule.kind not in GUARD_KINDS:
            continue
        if overrides:
            until = overrides.get(rule.id)
            if until is not None:
                if until > now:
                    continue
                del overrides[rule.id]
                emit("operator", rule_id=rule.id, location=rule.location,
                     result={"override": "expired"}, message=f"override of {rule.id} expired")
        for scope in scopes_for(rule, st):
            _evaluate(st, rule, scope, values_for(scope), now, emit)


def _evaluate(st: EngineState, rule: Rule, scope: str, values: dict[str, Any], now: datetime,
              emit: Emit) -> None:
    key = (rule.id, scope)
    status = st.rules.get(key)
    if status is None:
        status = st.rules[key] = RuleStatus()
    try:
        fired = bool(rule.when.evaluate(values))
    except EvaluationError as exc:
        if status.errored != str(exc):
            status.errored = str(exc)
            emit("rule_error", scope=scope, rule_id=rule.id, location=rule.location,
                 inputs=rule.when.inputs(values), result={"error": str(exc)},
                 message=f"{rule.id} could not be evaluated ({exc}); new risk blocked")
            if RISKY_ACTIONS.intersection(rule.then):
                set_state(st, scope, TradingState.REDUCE_ONLY, rule.id,
                          f"{rule.id} could not be evaluated: {exc}", "on_clean", emit)
        return
    if status.errored:
        status.errored = ""
        _release(st, scope, rule.id, "on_clean", f"{rule.id} evaluates again", emit)
    if fired and not status.active:
        if status.last_fired is not None and rule.cooldown_s and \
                (now - status.last_fired).total_seconds() < rule.cooldown_s:
            return
        status.active, status.last_fired, status.clear_since = True, now, None
        text = rule.message.render(values) or rule.id
        emit("rule_fired", scope=scope, rule_id=rule.id, location=rule.location,
             inputs=rule.when.inputs(values), result={"actions": list(rule.then)}, message=text)
        _act(st, rule, scope, text, emit)
    elif not fired and status.active:
        status.active = False
        status.clear_since = now
        emit("rule_cleared", scope=scope, rule_id=rule.id, location=rule.location,
             inputs=rule.when.inputs(values), message=f"{rule.id} no longer holds")
    if not fired and rule.rearm == "auto":
        _auto_rearm(st, rule, scope, status, values, now, emit)


def _act(st: EngineState, rule: Rule, scope: str, text: str, emit: Emit) -> None:
    for action in rule.then:
        level = _ACTION_STATE.get(action)
        if level is not None:
            set_state(st, scope, level, rule.id, text, rule.rearm, emit)
        elif action == "square_off":
            st.flatten.add(scope)
        elif action == "cancel_pending":
            for track in st.open_orders():
                req = track.request
                if req.purpose == "entry" and not track.cancel_sent and \
                        _in_scope(scope, req.contract.underlying, req.strategy_id):
                    track.cancel_sent = True
                    st.cancels.append(req.client_id)
        elif action == "alert":
            emit("alert", scope=scope, rule_id=rule.id, location=rule.location,
                 result={"severity": rule.severity}, message=text)


def _in_scope(scope: str, underlying: str, strategy_id: str) -> bool:
    return scope == "account" or scope == f"underlying:{underlying}" or \
        scope == f"strategy:{strategy_id}"


def _auto_rearm(st: EngineState, rule: Rule, scope: str, status: RuleStatus,
                values: dict[str, Any], now: datetime, emit: Emit) -> None:
    """Hysteresis: resume only after ``rearm.when`` has held for ``rearm.hold``."""
    current = st.scopes.get(scope)
    if current is None or current.rule_id != rule.id or current.state == TradingState.ACTIVE:
        return
    if rule.rearm_when is not None:
        try:
            ok = bool(rule.rearm_when.evaluate(values))
        except EvaluationError:
            ok = False
        if not ok:
            status.clear_since = None
            return
        if status.clear_since is None:
            status.clear_since = now
    if status.clear_since is not None and \
            (now - status.clear_since).total_seconds() >= rule.rearm_hold_s:
        _release(st, scope, rule.id, "auto", f"{rule.id}: resume condition held", emit)
        st.flatten.discard(scope)


def set_state(st: EngineState, scope: str, level: TradingState, rule_id: str, reason: str,
              rearm: str, emit: Emit) -> None:
    """Raise a scope's state (rules never lower it; rearming does)."""
    current = st.scopes.get(scope, ScopeState())
    if level <= current.state:
        return
    st.scopes[scope] = ScopeState(state=level, rule_id=rule_id, reason=reason, rearm=rearm)
    emit("state_change", scope=scope, rule_id=rule_id,
         result={"from": current.state.name, "to": level.name, "rearm": rearm}, message=reason)


def _release(st: EngineState, scope: str, rule_id: str, rearm: str, reason: str,
             emit: Emit) -> None:
    current = st.scopes.get(scope)
    if current is None or current.rule_id != rule_id or current.rearm != rearm:
        return
    st.scopes[scope] = ScopeState()
    emit("state_change", scope=scope, rule_id=rule_id,
         result={"from": current.state.name, "to": "ACTIVE", "rearm": rearm}, message=reason)


def rearm_all(st: EngineState, modes: frozenset[str], reason: str, emit: Emit) -> None:
    """Return scopes whose halt allows one of ``modes`` to ACTIVE, and forget rule edges so a
    condition that still holds fires again at once (a breached limit re-halts immediately)."""
    for scope, current in sorted(st.scopes.items()):
        if current.state != TradingState.ACTIVE and current.rearm in modes:
            st.scopes[scope] = ScopeState()
            st.flatten.discard(scope)
            emit("state_change", scope=scope, rule_id=current.rule_id,
                 result={"from": current.state.name, "to": "ACTIVE", "rearm": reason},
                 message=f"re-armed: {reason}")
    for status in st.rules.values():
        status.active = False
        status.clear_since = None
