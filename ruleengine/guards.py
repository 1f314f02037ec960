"""Stage 3 — guards: risk rules and circuit breakers set the trading state of each scope.

Rules are evaluated every tick but act on edges: actions run when a condition *becomes* true (and
its cooldown has passed), so a breached limit halts once instead of on every tick. A rule that
cannot be evaluated (a missing price, a division by zero) resolves to the safe side: if it guards
risk, its scope goes REDUCE_ONLY until it evaluates cleanly again. Nothing here ever blocks an
exit; square-off is requested and carried out by the exits stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .decisions import Decision
from .errors import EvaluationError
from .expr import compile_batch
from .policyset import Rule
from .state import EngineState, RuleStatus
from .tradingstate import ScopeState, TradingState

GUARD_KINDS = frozenset({"risk", "circuit_breakers", "data_quality"})
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


@dataclass(slots=True)
class _ScopePlan:
    """The rules one scope evaluates each tick, compiled into one batch call."""

    scope: str
    rules: tuple[Rule, ...]
    statuses: tuple[RuleStatus, ...]
    batch: Callable[[dict[str, Any]], tuple[Any, ...]]
    auto_ids: frozenset[str]  # rules that re-arm themselves: watched every tick while held
    last: tuple[bool, ...] | None = None  # each rule's `active` after the last full pass


def _plan(st: EngineState) -> list[_ScopePlan]:
    key = (st.policy.revision, len(st.market.underlyings), len(st.runs))
    if st.guard_plan_key == key and st.guard_plan is not None:
        plan: list[_ScopePlan] = st.guard_plan
        return plan
    by_scope: dict[str, list[Rule]] = {}
    for rule in st.policy.rules:
        if rule.kind in GUARD_KINDS:
            for scope in scopes_for(rule, st):
                by_scope.setdefault(scope, []).append(rule)
    plan = []
    for scope, rules in by_scope.items():
        statuses = []
        for rule in rules:
            status = st.rules.get((rule.id, scope))
            if status is None:
                status = st.rules[(rule.id, scope)] = RuleStatus()
            statuses.append(status)
        plan.append(_ScopePlan(scope=scope, rules=tuple(rules), statuses=tuple(statuses),
                               batch=compile_batch([r.when for r in rules], truth=True),
                               auto_ids=frozenset(r.id for r in rules if r.rearm == "auto")))
    st.guard_plan, st.guard_plan_key = plan, key
    return plan


def run_guards(st: EngineState, values_for: Callable[[str], dict[str, Any]], now: datetime,
               emit: Emit) -> None:
    """Evaluate every guard rule in every scope. Rules are evaluated in one batch per scope;
    when no outcome differs from the last pass (the usual tick) that is all the work done.
    Only a rule whose outcome changes anything takes the slower, fully audited path."""
    overrides = st.overrides
    holds = st.holds
    for sp in _plan(st):
        values = values_for(sp.scope)
        try:
            results: tuple[Any, ...] | None = sp.batch(values)
        except (KeyError, ArithmeticError, TypeError, ValueError):
            results = None  # some rule cannot be evaluated: take them one by one
        held = holds.get(sp.scope)
        if results is not None and results == sp.last and not overrides and \
                not (held and not sp.auto_ids.isdisjoint(held)):
            continue  # nothing changes on this tick
        for i, rule in enumerate(sp.rules):
            if overrides and rule.id in overrides:
                until = overrides[rule.id]
                if until > now:
                    continue
                del overrides[rule.id]
                emit("operator", rule_id=rule.id, location=rule.location,
                     result={"override": "expired"}, message=f"override of {rule.id} expired")
            status = sp.statuses[i]
            if results is not None and not status.errored and results[i] == status.active \
                    and not (held and rule.id in held and rule.rearm == "auto"):
                continue  # nothing changes on this tick
            _evaluate(st, rule, sp.scope, values, now, emit)
        # the fast path above is exact only while no rule of the scope is in error
        sp.last = None if any(s.errored for s in sp.statuses) else \
            tuple(s.active for s in sp.statuses)


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
        status.active, status.clear_since = True, None
        text = rule.message.render(values) or rule.id
        if rule.id in st.holds.get(scope, {}):
            # its restriction is still in force from the last firing: record, do not repeat
            emit("rule_fired", scope=scope, rule_id=rule.id, location=rule.location,
                 inputs=rule.when.inputs(values), result={"actions": [],
                                                          "already_in_force": True},
                 message=text)
            return
        status.last_fired = now
        emit("rule_fired", scope=scope, rule_id=rule.id, location=rule.location,
             inputs=rule.when.inputs(values), result={"actions": list(rule.then)}, message=text)
        _act(st, rule, scope, text, emit)
    elif not fired and status.active:
        status.active = False
        status.clear_since = now
        emit("rule_cleared", scope=scope, rule_id=rule.id, location=rule.location,
             inputs=rule.when.inputs(values), message=f"{rule.id} no longer holds")
    if rule.rearm == "auto" and (not fired or rule.rearm_after_s > 0):
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
    """Hysteresis: resume once ``rearm.after`` has passed since the rule fired and
    ``rearm.when`` has then held continuously for ``rearm.hold``."""
    if rule.id not in st.holds.get(scope, {}):
        return
    if rule.rearm_after_s and (status.last_fired is None or
                               (now - status.last_fired).total_seconds() < rule.rearm_after_s):
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
    if (now - status.clear_since).total_seconds() >= rule.rearm_hold_s:
        _release(st, scope, rule.id, "auto", f"{rule.id}: resume condition held", emit)


def set_state(st: EngineState, scope: str, level: TradingState, rule_id: str, reason: str,
              rearm: str, emit: Emit) -> None:
    """Add (or raise) this rule's hold on a scope. Holds are kept per rule, so releasing one
    rule never lifts a restriction another rule still imposes."""
    holds = st.holds.setdefault(scope, {})
    old = holds.get(rule_id)
    if old is not None and old.state >= level:
        return
    holds[rule_id] = ScopeState(state=level, rule_id=rule_id, reason=reason, rearm=rearm)
    _recompute(st, scope, rule_id, reason, rearm, emit)


def _release(st: EngineState, scope: str, rule_id: str, rearm: str, reason: str,
             emit: Emit) -> None:
    hold = st.holds.get(scope, {}).get(rule_id)
    if hold is None or hold.rearm != rearm:
        return
    del st.holds[scope][rule_id]
    _recompute(st, scope, rule_id, reason, rearm, emit)


def _recompute(st: EngineState, scope: str, rule_id: str, reason: str, rearm: str,
               emit: Emit) -> None:
    """The scope's state is its strongest hold (the earliest on ties); audit any change."""
    before = st.scopes.get(scope, ScopeState())
    after = ScopeState()
    for hold in st.holds.get(scope, {}).values():
        if hold.state > after.state:
            after = hold
    if after.state == TradingState.ACTIVE:
        st.scopes.pop(scope, None)
        st.flatten.discard(scope)
    else:
        st.scopes[scope] = after
    if after.state != before.state:
        emit("state_change", scope=scope, rule_id=rule_id,
             result={"from": before.state.name, "to": after.state.name, "rearm": rearm,
                     "held_by": sorted(st.holds.get(scope, {}))}, message=reason)


def rearm_all(st: EngineState, modes: frozenset[str], reason: str, emit: Emit) -> None:
    """Drop every hold whose rearm mode is in ``modes``, and forget rule edges so a condition
    that still holds fires again at once (a breached limit re-halts immediately)."""
    for scope in sorted(st.holds):
        dropped = [r for r, h in st.holds[scope].items() if h.rearm in modes]
        for rule_id in dropped:
            del st.holds[scope][rule_id]
        if dropped:
            _recompute(st, scope, ",".join(dropped), f"re-armed: {reason}", reason, emit)
    for status in st.rules.values():
        status.active = False
        status.clear_since = None
    for sp in st.guard_plan or ():
        sp.last = None
