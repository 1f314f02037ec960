"""Hot reload: edit the YAML of a running engine and have it take effect between two ticks.

Invariant 3 of the design says a policy set is one immutable, versioned unit, and that a reload
swaps it *between* ticks only after the new set passes every check; otherwise the old set stays
and an alert fires. This module is the whole of that, outside the deterministic core:

* A background thread watches the policy and strategy folders with ``watchfiles`` (so the tick
  path never touches the file system) and, on every change, loads, validates, lints and compiles
  the whole set with :func:`~ruleengine.policyset.load_policy_set`. It only ever *posts* the
  result, latest wins.
* The run loop calls :meth:`PolicyReloader.take` once per tick, before ``engine.tick``. It does
  not wait for a load: it takes whatever the thread posted under a lock held for an assignment,
  and answers ``None`` (nothing to do), or a :class:`ReloadResult` that is *accepted* (swap it in
  now), *rejected* (the set on disk is broken; the old set stays; raise an alert) or *held*
  (it loosens a hard limit during market hours and nobody approved that; the old set stays).
* :func:`classify_change` says what changed and whether each change tightens or loosens a brake.
  It is a pure function of two compiled sets, so it is unit-tested on its own and gives the same
  answer in the runner, in ``ruleengine lint --dry-run --compare`` or in a review script.

Why hold loosening at all: a reload is the one way to change the brakes of a live account
without a restart, and an edit that lets the account lose more (a wider daily-loss limit, bigger
fat-finger ceilings, a removed halt) should be a decision someone takes on purpose, not the side
effect of saving a file at 11:00. Tightening is always safe to apply at once. Outside market
hours nothing is at stake, so loosening applies at once too. "Market hours" is judged on the
engine's event time that the caller passes in, never on the wall clock, so a replay at night of a
recorded session behaves as that session would have.

Approval is ``ruleengine reload approve REVISION`` (a row in the audit store's commands table,
taken by the runner like ``kill``) or ``ruleengine run --reload --allow-loosening``.
"""

from __future__ import annotations

import ast
import hashlib
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .calendar import IST, REGULAR_CLOSE
from .decisions import Decision
from .errors import Finding, PolicyError
from .events import OperatorCommand
from .expr import CompiledExpr
from .policyset import (
    POLICY_SUFFIXES,
    TEST_SUFFIXES,
    LoadedDoc,
    PolicySet,
    Rule,
    Strategy,
    compile_documents,
    discover,
    load_policy_set,
    read_documents,
)

if TYPE_CHECKING:
    from .engine import Engine

__all__ = [
    "APPROVE_COMMAND",
    "BRAKE_ACTIONS",
    "Change",
    "ChangeReport",
    "PolicyReloader",
    "ReloadResult",
    "Threshold",
    "classify_change",
    "in_market_hours",
    "parse_threshold",
    "reload_decision",
]

#: The operator command (audit store ``commands`` table) that approves one held revision; its
#: ``rule_id`` column carries the revision or a prefix of it.
APPROVE_COMMAND = "approve_reload"

#: Actions that restrict trading. A rule with any of them is a hard limit; an alert-only rule
#: only informs, so changing it is never held back.
BRAKE_ACTIONS = frozenset({"halt", "reduce_only", "square_off", "cancel_pending",
                           "disable_strategy"})

#: Loosening is held from the pre-open (orders can be placed from 09:00) to the close.
MARKET_OPEN = time(9, 0)
MARKET_CLOSE = REGULAR_CLOSE

#: How hard it is to resume after a rule: a lower rank resumes sooner, i.e. looser.
_REARM_RANK = {"manual": 2, "next_session": 1, "auto": 0}
#: How much of the account a rule's action covers.
_SCOPE_RANK = {"account": 2, "underlying": 1, "strategy": 0}
#: Numbers in ``order_checks`` where a larger value lets more through (a looser ceiling).
_ORDER_CHECK_CEILINGS = ("max_option_value", "max_future_value", "max_premium_at_risk",
                         "max_slices", "max_open_orders", "price_band.pct",
                         "price_band.min_ticks", "confirm.lots", "confirm.option_value",
                         "confirm.future_value", "limits.")

Effect = Literal["tightening", "loosening", "neutral"]
Status = Literal["accepted", "rejected", "held"]


def in_market_hours(now: datetime) -> bool:
    """Whether ``now`` (engine event time, IST) falls between the pre-open and the close."""
    if now.tzinfo is not None:
        now = now.astimezone(IST)
    return MARKET_OPEN <= now.time() < MARKET_CLOSE


# -- thresholds -------------------------------------------------------------------------------

_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_CMP = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}


@dataclass(frozen=True, slots=True)
class Threshold:
    """One comparison of an expression against a number, written ``subject op value``.

    ``positive`` is False when the comparison sits under a ``not``, which turns its direction.
    """

    subject: str
    op: str
    value: float
    positive: bool = True

    def __str__(self) -> str:
        return f"{self.subject} {self.op} {_num(self.value)}"


def _number(node: ast.expr) -> float | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) \
            and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _number(node.operand)
        if inner is not None:
            return -inner if isinstance(node.op, ast.USub) else inner
    return None


def _thresholds(source: str) -> tuple[str, tuple[Threshold, ...]] | None:
    """The expression's shape with each compared number blanked out, and those comparisons.

    Only comparisons reached through ``and``/``or``/``not`` count: under those operators a
    condition is monotonic in each threshold, so moving one number has a direction. Numbers
    anywhere else stay in the shape, so changing them makes the shapes differ (direction
    unknown). None when the text does not parse.
    """
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError:
        return None
    found: list[Threshold] = []

    def visit(node: ast.expr, positive: bool) -> ast.expr:
        if isinstance(node, ast.BoolOp):
            node.values = [visit(v, positive) for v in node.values]
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            node.operand = visit(node.operand, not positive)
        elif isinstance(node, ast.Compare) and len(node.ops) == 1 \
                and type(node.ops[0]) in _CMP:
            op = _CMP[type(node.ops[0])]
            left, right = node.left, node.comparators[0]
            value = _number(right)
            if value is not None and _number(left) is None:
                subject = ast.unparse(left)
                node.comparators = [ast.Name(id=f"__k{len(found)}")]
            else:
                value = _number(left)
                if value is None or _number(right) is not None:
                    return node
                subject, op = ast.unparse(right), _FLIP[op]
                node.left = ast.Name(id=f"__k{len(found)}")
            found.append(Threshold(subject, op, value, positive))
        return node

    body = visit(tree.body, True)
    return ast.dump(body, annotate_fields=False), tuple(found)


def parse_threshold(source: str) -> Threshold | None:
    """The threshold of a condition of the simple form ``name OP number`` (or the mirror).

    ``parse_threshold("account.day_pnl_pct <= -3")`` is ``Threshold("account.day_pnl_pct",
    "<=", -3.0)``; anything with more than that one comparison gives None.
    """
    parsed = _thresholds(source)
    if parsed is None or len(parsed[1]) != 1:
        return None
    shape, (only,) = parsed
    if not shape.startswith("Compare("):
        return None
    return only


def _fires_more(th: Threshold, new_value: float) -> bool | None:
    """Whether moving the threshold to ``new_value`` makes the condition true more often."""
    if th.op in ("<", "<="):
        more = new_value > th.value
    elif th.op in (">", ">="):
        more = new_value < th.value
    else:
        return None  # == / != : neither more nor less often, just different
    return more if th.positive else not more


# -- the change report ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """One difference between two policy sets and what it does to the brakes.

    ``what`` is rule, strategy, limit or document; ``change`` is added, removed or changed;
    ``field`` names the changed part (``when``, ``then``, ``order_limits.NIFTY.max_lots`` ...);
    ``subject`` is the left side of a moved threshold (``account.day_pnl_pct <=``);
    ``old``/``new`` are plain JSON values (a threshold's numbers, an action list, a limit).
    """

    what: Literal["rule", "strategy", "limit", "document"]
    id: str
    change: Literal["added", "removed", "changed"]
    field: str = ""
    subject: str = ""
    old: Any = None
    new: Any = None
    effect: Effect = "neutral"
    why: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"what": self.what, "id": self.id, "change": self.change, "field": self.field,
                "subject": self.subject, "old": self.old, "new": self.new,
                "effect": self.effect, "why": self.why}

    def __str__(self) -> str:
        head = f"{self.what} {self.id}" if self.id else self.what
        if self.change != "changed":
            text = f"{head} {self.change}"
        else:
            subject = f"{self.subject} " if self.subject else ""
            text = f"{head} {self.field}: {subject}{_show(self.old)} → {_show(self.new)}"
        if self.effect != "neutral":
            text += f" ({self.effect}{': ' + self.why if self.why else ''})"
        return text


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeReport:
    """Everything that differs from ``old`` to ``new``, each change classified."""

    old_revision: str
    new_revision: str
    changes: tuple[Change, ...] = ()

    def _ids(self, what: str, change: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.id for c in self.changes
                                   if c.what == what and c.change == change))

    @property
    def rules_added(self) -> tuple[str, ...]:
        return self._ids("rule", "added")

    @property
    def rules_removed(self) -> tuple[str, ...]:
        return self._ids("rule", "removed")

    @property
    def rules_changed(self) -> tuple[str, ...]:
        return self._ids("rule", "changed")

    @property
    def strategies_added(self) -> tuple[str, ...]:
        return self._ids("strategy", "added")

    @property
    def strategies_removed(self) -> tuple[str, ...]:
        return self._ids("strategy", "removed")

    @property
    def strategies_changed(self) -> tuple[str, ...]:
        return self._ids("strategy", "changed")

    @property
    def limits(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.what == "limit")

    @property
    def loosening(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.effect == "loosening")

    @property
    def tightening(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.effect == "tightening")

    @property
    def loosens(self) -> bool:
        """True when any change loosens a hard limit (such a set is held in market hours)."""
        return any(c.effect == "loosening" for c in self.changes)

    def as_dict(self) -> dict[str, Any]:
        """The diff as stored in a decision record's ``result``."""
        return {
            "old_revision": self.old_revision, "new_revision": self.new_revision,
            "rules": {"added": list(self.rules_added), "removed": list(self.rules_removed),
                      "changed": list(self.rules_changed)},
            "strategies": {"added": list(self.strategies_added),
                           "removed": list(self.strategies_removed),
                           "changed": list(self.strategies_changed)},
            "limits": [{"limit": c.field, "old": c.old, "new": c.new, "effect": c.effect}
                       for c in self.limits],
            "loosening": [str(c) for c in self.loosening],
            "tightening": [str(c) for c in self.tightening],
            "changes": [c.as_dict() for c in self.changes],
        }

    def summary(self) -> str:
        """One line for a decision message or a log."""
        parts = []
        for what, added, removed, changed in (
                ("rules", self.rules_added, self.rules_removed, self.rules_changed),
                ("strategies", self.strategies_added, self.strategies_removed,
                 self.strategies_changed)):
            if added or removed or changed:
                parts.append(f"{what} +{len(added)} -{len(removed)} ~{len(changed)}")
        if self.limits:
            parts.append("limits " + ", ".join(f"{c.field} {_show(c.old)}→{_show(c.new)}"
                                               for c in self.limits))
        docs = sorted({c.id for c in self.changes if c.what == "document"})
        if docs:
            parts.append("documents ~" + ", ".join(docs))
        verdict = ("loosens " + "; ".join(str(c) for c in self.loosening)) if self.loosens \
            else ("tightens" if self.tightening else "neutral")
        return f"{'; '.join(parts) or 'no effective change'} — {verdict}"

    def render(self) -> str:
        """Several lines, one per change, for a terminal."""
        head = f"policy {self.old_revision[:12]} → {self.new_revision[:12]}"
        return "\n".join([head, *(f"  {c}" for c in self.changes)]) if self.changes \
            else f"{head}: no effective change"


def classify_change(old: PolicySet, new: PolicySet) -> ChangeReport:
    """What differs from ``old`` to ``new``, and whether each difference loosens a hard limit.

    Pure: reads two compiled sets and nothing else. Loosening means the account may take more
    risk than before: a brake rule that fires later (its threshold moved away, e.g.
    ``account.day_pnl_pct <= -3`` → ``-5``), covers less, resumes sooner, lost a brake action,
    became overridable, or was removed; or a larger ``capital``, ``per_trade_risk_pct``,
    ``order_limits`` entry or ``order_checks`` ceiling. A brake rule whose condition changed in a
    way that has no direction (a new shape, an ``==`` threshold) counts as loosening, because
    the engine's rule is to resolve what it cannot know to the safe side.
    """
    changes: list[Change] = []
    changes += _rule_changes(old.rules, new.rules)
    changes += _strategy_changes(old.strategies, new.strategies)
    changes += _limit_changes(old, new)
    changes += _document_changes(old, new)
    return ChangeReport(old_revision=old.revision, new_revision=new.revision,
                        changes=tuple(changes))


def _is_brake(rule: Rule) -> bool:
    return bool(BRAKE_ACTIONS.intersection(rule.then))


def _rule_changes(old_rules: Iterable[Rule], new_rules: Iterable[Rule]) -> list[Change]:
    old = {r.id: r for r in old_rules}
    new = {r.id: r for r in new_rules}
    out: list[Change] = []
    for rid in sorted(old.keys() - new.keys()):
        r = old[rid]
        brake = _is_brake(r)
        out.append(Change(what="rule", id=rid, change="removed", old=list(r.then),
                          effect="loosening" if brake else "neutral",
                          why="a brake rule removed" if brake else ""))
    for rid in sorted(new.keys() - old.keys()):
        r = new[rid]
        brake = _is_brake(r)
        out.append(Change(what="rule", id=rid, change="added", new=list(r.then),
                          effect="tightening" if brake else "neutral",
                          why="a brake rule added" if brake else ""))
    for rid in sorted(old.keys() & new.keys()):
        out += _one_rule(old[rid], new[rid])
    return out


def _one_rule(a: Rule, b: Rule) -> list[Change]:
    hard = _is_brake(a) or _is_brake(b)
    out: list[Change] = []

    def add(field_: str, old: Any, new: Any, effect: Effect, why: str = "",
            subject: str = "") -> None:
        out.append(Change(what="rule", id=a.id, change="changed", field=field_,
                          subject=subject, old=old, new=new,
                          effect=effect if hard else "neutral",
                          why=why if hard else (why + " (alert-only rule)" if why else "")))

    if a.when.source != b.when.source:
        for subject, old, new, effect, why in _condition_changes(a.when.source, b.when.source,
                                                                  resume=False):
            add("when", old, new, effect, why, subject)
    lost = [x for x in a.then if x not in b.then]
    gained = [x for x in b.then if x not in a.then]
    if lost or gained:
        then_effect: Effect = "neutral"
        then_why = ""
        if BRAKE_ACTIONS.intersection(lost):
            then_effect = "loosening"
            then_why = "lost " + ", ".join(x for x in lost if x in BRAKE_ACTIONS)
        elif BRAKE_ACTIONS.intersection(gained):
            then_effect = "tightening"
            then_why = "gained " + ", ".join(x for x in gained if x in BRAKE_ACTIONS)
        add("then", list(a.then), list(b.then), then_effect, then_why)
    if a.scope != b.scope:
        wider = _SCOPE_RANK[b.scope] > _SCOPE_RANK[a.scope]
        add("scope", a.scope, b.scope, "tightening" if wider else "loosening",
            "covers more" if wider else "covers less")
    if a.targets != b.targets:
        old_t, new_t = set(a.targets), set(b.targets)
        if not new_t or (old_t and new_t >= old_t):  # empty targets = every one
            add("targets", list(a.targets), list(b.targets), "tightening", "covers more")
        else:
            add("targets", list(a.targets), list(b.targets), "loosening",
                "covers less" if old_t >= new_t or not old_t else "covers other targets")
    if a.overridable != b.overridable:
        add("overridable", a.overridable, b.overridable,
            "loosening" if b.overridable else "tightening",
            "may now be suspended by `ruleengine override`" if b.overridable
            else "can no longer be overridden")
    if a.rearm != b.rearm:
        sooner = _REARM_RANK.get(b.rearm, 0) < _REARM_RANK.get(a.rearm, 0)
        add("rearm", a.rearm, b.rearm, "loosening" if sooner else "tightening",
            "resumes sooner" if sooner else "resumes later")
    old_rw = a.rearm_when.source if a.rearm_when is not None else None
    new_rw = b.rearm_when.source if b.rearm_when is not None else None
    if old_rw != new_rw:
        if old_rw is None or new_rw is None:
            dropped = new_rw is None
            add("rearm.when", old_rw, new_rw, "loosening" if dropped else "tightening",
                "resume condition removed" if dropped else "resume condition added")
        else:
            for subject, old, new, effect, why in _condition_changes(old_rw, new_rw,
                                                                      resume=True):
                add("rearm.when", old, new, effect, why, subject)
    for name, old_s, new_s in (("rearm.hold", a.rearm_hold_s, b.rearm_hold_s),
                               ("rearm.after", a.rearm_after_s, b.rearm_after_s)):
        if old_s != new_s:
            shorter = new_s < old_s
            add(name, old_s, new_s, "loosening" if shorter else "tightening",
                "resumes sooner" if shorter else "resumes later")
    for name in ("severity", "cooldown_s", "kind"):
        if getattr(a, name) != getattr(b, name):
            add(name, getattr(a, name), getattr(b, name), "neutral")
    if a.message.source != b.message.source:
        add("message", a.message.source, b.message.source, "neutral")
    return out


def _condition_changes(old: str, new: str, *, resume: bool
                       ) -> list[tuple[str, Any, Any, Effect, str]]:
    """Per moved threshold: (subject, old, new, effect, why); one entry for a new shape.

    A guard condition that fires more often is tighter; a resume (re-arm) condition that holds
    more often lets trading resume sooner, so it is looser.
    """
    a, b = _thresholds(old), _thresholds(new)
    if a is None or b is None or a[0] != b[0]:
        return [("", old, new, "loosening",
                 "the condition changed shape; its direction cannot be told, so it counts as "
                 "loosening")]
    out: list[tuple[str, Any, Any, Effect, str]] = []
    for th, nb in zip(a[1], b[1], strict=True):
        if th.value == nb.value:
            continue
        more = _fires_more(th, nb.value)
        effect: Effect
        if more is None:
            effect = "loosening"
            why = f"{th.subject} {th.op}: an equality threshold has no direction"
        else:
            looser = more if resume else not more
            effect = "loosening" if looser else "tightening"
            verb = ("holds" if resume else "fires") + (" more often" if more else " less often")
            why = f"{verb}" + ("; trading resumes sooner" if resume and more else "")
        out.append((f"{th.subject} {th.op}", th.value, nb.value, effect, why))
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, CompiledExpr):
        return value.source
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    return value


def _strategy_changes(old_s: Iterable[Strategy], new_s: Iterable[Strategy]) -> list[Change]:
    """Added, removed and changed strategies. Listed, not classified: a strategy is what trades,
    not a brake, and every entry it makes is still capped by the risk limits classified here."""
    old = {s.id: s for s in old_s}
    new = {s.id: s for s in new_s}
    out = [Change(what="strategy", id=sid, change="removed") for sid in sorted(old.keys()
                                                                               - new.keys())]
    out += [Change(what="strategy", id=sid, change="added") for sid in sorted(new.keys()
                                                                             - old.keys())]
    for sid in sorted(old.keys() & new.keys()):
        a, b = old[sid], new[sid]
        for f in fields(a):
            if f.name in ("file", "line"):
                continue
            va, vb = _plain(getattr(a, f.name)), _plain(getattr(b, f.name))
            if va != vb:
                out.append(Change(what="strategy", id=sid, change="changed", field=f.name,
                                  old=va, new=vb))
    return out


def _limit_changes(old: PolicySet, new: PolicySet) -> list[Change]:
    out: list[Change] = []

    def bigger_is_looser(name: str, a: float | None, b: float | None) -> None:
        if a == b:
            return
        if b is None:
            out.append(Change(what="limit", id="", change="removed", field=name, old=a,
                              effect="loosening", why="limit removed"))
        elif a is None:
            out.append(Change(what="limit", id="", change="added", field=name, new=b,
                              effect="tightening", why="limit added"))
        else:
            looser = b > a
            out.append(Change(what="limit", id="", change="changed", field=name, old=a, new=b,
                              effect="loosening" if looser else "tightening",
                              why="larger" if looser else "smaller"))

    bigger_is_looser("capital", old.capital, new.capital)
    bigger_is_looser("per_trade_risk_pct", old.per_trade_risk_pct, new.per_trade_risk_pct)
    for sym in sorted(old.order_limits.keys() | new.order_limits.keys()):
        a = old.order_limits.get(sym, {})
        b = new.order_limits.get(sym, {})
        for key in sorted(a.keys() | b.keys()):
            bigger_is_looser(f"order_limits.{sym}.{key}", a.get(key), b.get(key))
    a_oc = _flat(_only(old, "order_checks"))
    b_oc = _flat(_only(new, "order_checks"))
    for key in sorted(a_oc.keys() | b_oc.keys()):
        if not key.startswith(_ORDER_CHECK_CEILINGS):
            continue
        va, vb = a_oc.get(key), b_oc.get(key)
        if isinstance(va, int | float | None) and isinstance(vb, int | float | None):
            bigger_is_looser(f"order_checks.{key}", va, vb)
    return out


def _only(policy: PolicySet, kind: str) -> Mapping[str, Any]:
    docs = policy.of_kind(kind)
    return docs[0] if docs else {}


def _flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


#: Keys already compared above, per document kind (rules, strategies and the risk limits).
_HANDLED = {"risk": ("rules", "capital", "per_trade_risk_pct", "order_limits"),
            "order_checks": _ORDER_CHECK_CEILINGS}


def _document_changes(old: PolicySet, new: PolicySet) -> list[Change]:
    """Any other edit (costs, execution, data quality, instruments ...), listed as neutral so the
    diff in the audit record is complete even where this module has no opinion."""
    def keyed(p: PolicySet) -> dict[str, Mapping[str, Any]]:
        out: dict[str, Mapping[str, Any]] = {}
        for d in p.documents:
            if d.kind != "strategy":
                out[f"{d.kind}:{Path(d.file).name}"] = d.data
        return out

    a, b = keyed(old), keyed(new)
    out: list[Change] = []
    for key in sorted(a.keys() | b.keys()):
        kind = key.partition(":")[0]
        if key not in b or key not in a:
            out.append(Change(what="document", id=key,
                              change="removed" if key not in b else "added"))
            continue
        fa, fb = _flat(a[key]), _flat(b[key])
        skip = (*_HANDLED.get(kind, ()), "rules")
        for k in sorted(fa.keys() | fb.keys()):
            if k.startswith(skip) or fa.get(k) == fb.get(k):
                continue
            out.append(Change(what="document", id=key, change="changed", field=k,
                              old=fa.get(k), new=fb.get(k)))
    return out


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _show(v: Any) -> str:
    if isinstance(v, float):
        return _num(v)
    if v is None:
        return "(none)"
    return str(v)


# -- the reloader -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ReloadResult:
    """What :meth:`PolicyReloader.take` decided about the set on disk.

    ``accepted``: ``policy`` is the new set; the caller swaps it in before this tick.
    ``rejected``: the set does not load; ``findings`` says why; the old set stays.
    ``held``: it loosens a hard limit in market hours without approval; the old set stays.
    """

    status: Status
    old_revision: str
    new_revision: str = ""
    policy: PolicySet | None = field(default=None, repr=False)
    report: ChangeReport | None = None
    findings: tuple[Finding, ...] = ()
    problem: str = ""  # a failure that is not a policy finding (a file vanished mid-save)
    approved: str = ""  # why a loosening change went ahead

    @property
    def errors(self) -> tuple[str, ...]:
        """Every reason for a rejection, one line each, as ``ruleengine lint`` prints them."""
        return tuple(str(f) for f in self.findings) + ((self.problem,) if self.problem else ())

    def decision(self, *, id: str, ts: datetime) -> Decision:
        """The audit record: kind ``reload`` for a swap, an ``alert`` when the old set stays.

        A swap is recorded under the new revision (the first record it governs), an alert under
        the old one (still in force).
        """
        report = self.report.as_dict() if self.report is not None else {}
        if self.status == "accepted":
            summary = self.report.summary() if self.report is not None else ""
            how = f" ({self.approved})" if self.approved else ""
            return Decision(id=id, ts=ts, revision=self.new_revision, kind="reload",
                            result={"status": "accepted", "old_revision": self.old_revision,
                                    "new_revision": self.new_revision,
                                    "approved": self.approved, "diff": report},
                            message=f"policy set {self.old_revision[:12]} → "
                                    f"{self.new_revision[:12]} swapped in{how}: {summary}")
        if self.status == "rejected":
            errors = list(self.errors)
            first = errors[0] if errors else "unknown error"
            return Decision(id=id, ts=ts, revision=self.old_revision, kind="alert",
                            result={"severity": "critical", "reload": "rejected",
                                    "errors": errors[:100], "error_count": len(errors)},
                            message=f"policy reload rejected ({len(errors)} error(s)); "
                                    f"{self.old_revision[:12]} stays active — {first}")
        loosening = [str(c) for c in self.report.loosening] if self.report is not None else []
        return Decision(id=id, ts=ts, revision=self.old_revision, kind="alert",
                        result={"severity": "warning", "reload": "held",
                                "new_revision": self.new_revision, "loosening": loosening,
                                "diff": report},
                        message=f"policy change {self.new_revision[:12]} loosens hard limits "
                                f"during market hours ({'; '.join(loosening)}); held — apply "
                                f"with `ruleengine reload approve {self.new_revision[:12]}` or "
                                "run with --allow-loosening")


def reload_decision(engine: Engine, result: ReloadResult, now: datetime) -> Decision:
    """The audit record of ``result``, numbered in the engine's own decision sequence.

    The audit store's hash chain is verified in id order, so a record written between two
    ticks must take the next id the engine would have used (``d`` + 8 digits), exactly as
    ``Engine._emit_at`` numbers them; an id from any other series would sort out of write order.
    """
    engine.state.seq += 1
    return result.decision(id=f"d{engine.state.seq:08d}", ts=now)


@dataclass(frozen=True, slots=True)
class _Broken:
    findings: tuple[Finding, ...]
    problem: str = ""


@dataclass(slots=True)
class _Approval:
    prefix: str
    who: str


class PolicyReloader:
    """Watches policy folders off the tick path and hands validated sets to the run loop.

    ``paths`` are the policy and strategy files or folders the run loaded ``active`` from.
    Typical use (what :func:`ruleengine.runner.run` does with ``RunConfig(reload=True)``)::

        with PolicyReloader(paths, policy) as reloader:
            for batch in ...:
                result = reloader.take(now, commands)
                if result is not None and result.policy is not None:
                    engine.swap_policy(result.policy)
                engine.tick(...)

    ``check_now`` loads the set on the caller's thread; tests and the watcher thread use it.
    Every check reads every file, but a file whose bytes are unchanged since the last check
    reuses its parsed and schema-validated documents (a pure function of those bytes); the
    compile, the cross-file lint and the revision always cover the whole set, so the result is
    what :func:`~ruleengine.policyset.load_policy_set` returns, at the cost of one file's YAML
    and schema work instead of all of them.
    """

    def __init__(self, paths: Sequence[str | Path], active: PolicySet, *,
                 allow_loosening: bool = False, strict: bool = False,
                 market_hours: Callable[[datetime], bool] = in_market_hours,
                 force_polling: bool | None = None, step_ms: int = 50,
                 debounce_ms: int = 800) -> None:
        self.paths = tuple(str(p) for p in paths)
        self.active = active
        self.allow_loosening = allow_loosening
        self.strict = strict
        self.market_hours = market_hours
        self.force_polling = force_polling
        self.step_ms = step_ms
        self.debounce_ms = debounce_ms
        #: Set once the watcher is running (a change from then on cannot be missed).
        self.ready = threading.Event()
        self.loads = 0
        self._lock = threading.Lock()
        self._posted: PolicySet | _Broken | None = None
        self._held: PolicySet | None = None
        self._held_said = ""
        self._approvals: list[_Approval] = []
        self._report_cache: tuple[str, str, ChangeReport] | None = None
        self._files: dict[str, tuple[bytes, tuple[LoadedDoc, ...], tuple[Finding, ...]]] = {}
        self._load_lock = threading.Lock()  # one load at a time: the file cache is shared
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the watcher thread -------------------------------------------------------------------
    def start(self) -> PolicyReloader:
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="ruleengine-reload",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> PolicyReloader:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _watch(self) -> None:
        import watchfiles  # only a reloading run needs it

        roots = [p for p in self.paths if Path(p).exists()]
        try:
            for changes in watchfiles.watch(
                    *roots, watch_filter=_is_policy_file, stop_event=self._stop,
                    debounce=self.debounce_ms, step=self.step_ms, rust_timeout=200,
                    yield_on_timeout=True, raise_interrupt=False,
                    force_polling=self.force_polling):
                if not self.ready.is_set():
                    self.ready.set()
                    self.check_now()  # catch an edit saved while the watcher was starting
                elif changes:
                    self.check_now()
        except Exception as exc:  # the watcher must never die silently
            self._post(_Broken((), f"policy file watcher stopped: {type(exc).__name__}: {exc}; "
                                   "hot reload is off for this run"))
        finally:
            self.ready.set()

    def check_now(self) -> None:
        """Load, validate, lint and compile the set on disk now, and post it for :meth:`take`."""
        self.loads += 1
        try:
            posted: PolicySet | _Broken = self.load()
        except PolicyError as exc:
            posted = _Broken(tuple(exc.findings))
        except Exception as exc:  # an unreadable file mid-save, a bug: reject, keep the old set
            posted = _Broken((), f"{type(exc).__name__}: {exc}")
        self._post(posted)

    def load(self) -> PolicySet:
        """:func:`~ruleengine.policyset.load_policy_set` over ``paths``, reusing the validated
        documents of unchanged files; raises :class:`PolicyError` with every finding."""
        with self._load_lock:
            return self._load()

    def _load(self) -> PolicySet:
        files = discover(self.paths)
        if not files:
            return load_policy_set(self.paths, strict=self.strict)  # its "no files" finding
        docs: list[LoadedDoc] = []
        findings: list[Finding] = []
        seen: dict[str, tuple[bytes, tuple[LoadedDoc, ...], tuple[Finding, ...]]] = {}
        for path in files:
            digest = hashlib.sha256(path.read_bytes()).digest()
            hit = self._files.get(str(path))
            if hit is None or hit[0] != digest:
                file_docs, file_findings = read_documents([path])
                hit = (digest, tuple(file_docs), tuple(file_findings))
            seen[str(path)] = hit
            docs.extend(hit[1])
            findings.extend(hit[2])
        self._files = seen
        pset, more = compile_documents(docs)
        problems = [f for f in findings + more if f.severity == "error" or self.strict]
        if problems:
            raise PolicyError(problems)
        return pset

    def _post(self, posted: PolicySet | _Broken) -> None:
        with self._lock:
            self._posted = posted

    # -- the run loop's side --------------------------------------------------------------------
    def take(self, now: datetime, commands: Iterable[OperatorCommand] = ()
             ) -> ReloadResult | None:
        """What to do before the tick at ``now`` (engine time); never waits for a load.

        ``commands`` are the operator commands the runner took for this tick; an
        ``approve_reload`` among them approves the held (or a future) revision it names. An
        accepted result becomes the active set here: the caller must swap it in.
        """
        for cmd in commands:
            if str(cmd.command) == APPROVE_COMMAND and cmd.rule_id:
                self._approvals.append(_Approval(cmd.rule_id.strip().lower(), cmd.who))
        with self._lock:
            posted, self._posted = self._posted, None
        if isinstance(posted, _Broken):
            self._held, self._held_said = None, ""  # the files moved on; latest wins
            return ReloadResult(status="rejected", old_revision=self.active.revision,
                                findings=posted.findings, problem=posted.problem)
        if posted is not None:  # a new save: it replaces anything held, and gets an answer
            self._held = None if posted.revision == self.active.revision else posted
            self._held_said = ""
        pending = self._held
        if pending is None:
            return None
        report = self._report(pending)
        approved = ""
        if report.loosens:
            approval = next((a for a in self._approvals
                             if pending.revision.startswith(a.prefix)), None)
            if self.allow_loosening:
                approved = "loosening allowed by --allow-loosening"
            elif approval is not None:
                approved = f"loosening approved by {approval.who}"
                self._approvals.remove(approval)
            elif not self.market_hours(now):
                approved = "loosening outside market hours"
            else:
                if self._held_said == pending.revision:
                    return None  # already announced; wait for an approval or a new edit
                self._held_said = pending.revision
                return ReloadResult(status="held", old_revision=self.active.revision,
                                    new_revision=pending.revision, report=report)
        old = self.active
        self.active, self._held, self._held_said = pending, None, ""
        return ReloadResult(status="accepted", old_revision=old.revision,
                            new_revision=pending.revision, policy=pending, report=report,
                            approved=approved)

    def _report(self, pending: PolicySet) -> ChangeReport:
        key = (self.active.revision, pending.revision)
        if self._report_cache is None or self._report_cache[:2] != key:
            self._report_cache = (*key, classify_change(self.active, pending))
        return self._report_cache[2]


def _is_policy_file(_change: object, path: str) -> bool:
    """Policy YAML only: not the ``*_test.yaml`` beside it, nor an editor's swap file."""
    return path.endswith(POLICY_SUFFIXES) and not path.endswith(TEST_SUFFIXES)
