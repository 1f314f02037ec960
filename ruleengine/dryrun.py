"""Dry run: what would these policies have done on a recorded day? And how would another version?

``ruleengine lint POLICIES... --dry-run DATA`` replays a recorded file through the full engine,
with the paper broker and a throwaway audit database in a temporary folder, and prints a
timeline: every rule that fired, cleared or could not be evaluated, every trading-state change,
alert, signal and denial, and every order that would have gone out. Nothing is sent anywhere:
the broker is the paper broker, always, and every alert sink of the ``alerts`` policy is switched
off for the replay (the alerts still show on the timeline; a rehearsal must not page anyone).
``--compare OTHER`` runs the
same data through a second policy folder and says where the two versions decided differently
(rules that fired in only one, the same rule at different times, different order counts, and the
timeline entries only one of them has).

Why inside ``lint``: a policy edit is checked in two steps that belong together, "is it valid?"
(the lint) and "what does it change on a day I know?" (this). Linting runs first and a set with
errors is not replayed.

A replay file rarely carries the previous session's close, yet ``market.change_pct`` and
``market.gap_pct`` (the circuit-breaker and gap rules) need it. ``prev_close`` given by the
caller wins; otherwise the first bar's open stands in for it on the first day, which makes that
day's change and gap measured from its open, and the output says so. Later days of a multi-day
file use the last price of the day before, as the engine's market state does, and the engine's
day rollover resets the day's counters.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .audit import AuditStore
from .engine import TickResult
from .errors import ConfigError
from .events import Bar
from .policyset import PolicySet, load_policy_set, read_documents
from .reload import ChangeReport, classify_change
from .runner import RunConfig, build_adapter, run

__all__ = ["TIMELINE_KINDS", "Comparison", "DryRun", "Entry", "compare", "compare_paths",
           "dry_run", "silenced"]

#: Decision kinds shown in the timeline. ``data_quality`` is counted, not listed: a replay of
#: bars classifies every bar, and hundreds of lines would hide the rules.
TIMELINE_KINDS = ("rule_fired", "rule_cleared", "rule_error", "state_change", "alert", "signal",
                  "denied", "order", "fill", "operator", "reload")
#: The one broker a dry run may use.
DRY_RUN_BROKER = "paper"


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One decision on the timeline."""

    ts: datetime
    kind: str
    rule_id: str
    scope: str
    message: str
    result: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """What makes two runs' entries "the same decision" (the decision ids may differ)."""
        return (self.ts.isoformat(), self.kind, self.rule_id, self.scope, self.message)

    def line(self) -> str:
        who = self.rule_id or "-"
        return f"{self.ts:%Y-%m-%d %H:%M:%S}  {self.kind:<12} {who:<28} {self.scope:<28} " \
               f"{self.message}"


@dataclass(frozen=True, slots=True, kw_only=True)
class DryRun:
    """The outcome of one replay: the timeline plus the facts needed to read it."""

    paths: tuple[str, ...]
    revision: str
    data: str
    prev_close: float
    prev_close_note: str
    ticks: int
    first_ts: datetime | None
    last_ts: datetime | None
    entries: tuple[Entry, ...]
    data_quality: int
    policy: PolicySet = field(repr=False, compare=False)

    @property
    def source(self) -> str:
        """The policy paths, shortened when a folder was joined by many strategy files."""
        if len(self.paths) <= 3:
            return " ".join(self.paths)
        return f"{self.paths[0]} + {len(self.paths) - 1} strategy files"

    @property
    def orders(self) -> tuple[Entry, ...]:
        return tuple(e for e in self.entries if e.kind == "order")

    @property
    def fired(self) -> dict[str, list[datetime]]:
        """Rule id → the times it fired, in order."""
        out: dict[str, list[datetime]] = {}
        for e in self.entries:
            if e.kind == "rule_fired":
                out.setdefault(e.rule_id, []).append(e.ts)
        return out

    def orders_by_strategy(self) -> dict[str, int]:
        return dict(Counter(e.scope.partition(":")[2] or e.scope for e in self.orders))

    def header(self) -> list[str]:
        span = (f"{self.first_ts:%Y-%m-%d %H:%M} → {self.last_ts:%Y-%m-%d %H:%M}"
                if self.first_ts and self.last_ts else "no ticks")
        return [f"Dry run of {self.source} (policy {self.revision[:12]}) over "
                f"{Path(self.data).name}",
                f"  {self.ticks} ticks, {span}; paper broker and a throwaway audit database: "
                "nothing was sent to any broker",
                f"  previous close {self.prev_close:.2f}: {self.prev_close_note}"]

    def render(self) -> str:
        lines = self.header()
        lines += ["", f"{'time':<19}  {'kind':<12} {'rule':<28} {'scope':<28} message"]
        lines += [e.line() for e in self.entries if e.kind != "order"]
        lines += ["", f"Orders that would have gone out: {len(self.orders) or 'none'}"]
        for e in self.orders:
            r = e.result
            lines.append(f"  {e.ts:%Y-%m-%d %H:%M:%S}  {r.get('side', '')} {r.get('qty', '')} "
                         f"{r.get('symbol', '')} limit {r.get('limit', '')} "
                         f"({r.get('purpose', '')}, {e.scope})")
        fired = ", ".join(f"{k} ×{len(v)}" for k, v in sorted(self.fired.items())) or "none"
        kinds = Counter(e.kind for e in self.entries)
        lines += ["", f"Rules fired: {fired}",
                  "Decisions: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
                  + f"; data-quality classifications {self.data_quality} (not listed)"]
        return "\n".join(lines)


def first_open(data: str | Path, policy: PolicySet) -> float | None:
    """The first bar's open, read through the replay feed (the core imports no adapter)."""
    feed = build_adapter("feeds", "replay", arg=str(data), seed=1, policy=policy, day=None,
                         prev_close=None)
    for event in feed.events():
        if isinstance(event, Bar):
            return float(event.open)
    return None


def silenced(policy: PolicySet) -> PolicySet:
    """The same set with every alert sink disabled. The revision is kept: it names the policies
    being tried, and where alerts are delivered is not a decision the engine makes."""
    docs = []
    for doc in policy.documents:
        if doc.kind == "alerts":
            data = copy.deepcopy(doc.data)
            for sink in data.get("sinks", {}).values():
                sink["enabled"] = False
            doc = dataclasses.replace(doc, data=data)
        docs.append(doc)
    return dataclasses.replace(policy, documents=tuple(docs))


def dry_run(data: str | Path, paths: Sequence[str | Path], *, prev_close: float | None = None,
            seed: int = 1, policy: PolicySet | None = None) -> DryRun:
    """Replay ``data`` through the policy set under ``paths`` with the paper broker.

    The audit database lives in a temporary folder that is deleted afterwards; raises
    :class:`~ruleengine.errors.PolicyError` if the set does not load and
    :class:`~ruleengine.errors.ConfigError` if the file does not exist.
    """
    data = Path(data)
    if not data.is_file():
        raise ConfigError(f"replay file {str(data)!r} does not exist")
    path_list = tuple(str(p) for p in paths)
    policy = policy or load_policy_set(path_list)
    if prev_close is not None:
        note = "given with --prev-close"
    else:
        opened = first_open(data, policy)
        if opened is None:
            raise ConfigError(f"{data}: no bars to replay")
        prev_close = opened
        note = ("the file has none, so the first bar's open stands in (pass --prev-close): the "
                "first day's change and gap are measured from its open")
    note += "; later days use the day before's last price"
    first: list[datetime] = []

    def on_tick(result: TickResult) -> None:
        if not first:
            first.append(result.ts)

    with tempfile.TemporaryDirectory(prefix="ruleengine-dryrun-") as tmp:
        db = Path(tmp) / "dryrun.db"
        config = RunConfig(policies=path_list, strategies=(), feed=f"replay:{data}",
                           broker=DRY_RUN_BROKER, db=str(db), seed=seed, prev_close=prev_close)
        outcome = run(config, policy=silenced(policy), on_tick=on_tick)
        store = AuditStore(db)
        try:
            rows = list(store.decisions(outcome.run_id))
        finally:
            store.close()
    entries = tuple(Entry(ts=datetime.fromisoformat(r["ts"]), kind=r["kind"],
                          rule_id=r["rule_id"] or "", scope=r["scope"] or "",
                          message=r["message"] or "", result=json.loads(r["result"] or "{}"))
                    for r in rows if r["kind"] in TIMELINE_KINDS)
    return DryRun(paths=path_list, revision=policy.revision, data=str(data),
                  prev_close=prev_close, prev_close_note=note, ticks=outcome.ticks,
                  first_ts=first[0] if first else None, last_ts=outcome.last_ts,
                  entries=entries,
                  data_quality=sum(1 for r in rows if r["kind"] == "data_quality"),
                  policy=policy)


def compare_paths(base: Sequence[str | Path], other: str | Path) -> list[str]:
    """The sources of the other version: ``other`` alone when it holds strategies, else
    ``other`` plus the strategy files of ``base``, so that ``--compare old/policies`` compares
    the policies under the same strategies."""
    other_docs, _ = read_documents([other])
    if any(d.kind == "strategy" for d in other_docs):
        return [str(other)]
    base_docs, _ = read_documents(base)
    return [str(other), *(d.file for d in base_docs if d.kind == "strategy")]


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    """How two policy versions decided differently on the same data."""

    a: DryRun
    b: DryRun
    fired_only_a: dict[str, list[datetime]]
    fired_only_b: dict[str, list[datetime]]
    fired_at_other_times: dict[str, tuple[list[datetime], list[datetime]]]
    only_a: tuple[Entry, ...]
    only_b: tuple[Entry, ...]
    changes: ChangeReport

    @property
    def same(self) -> bool:
        return not (self.only_a or self.only_b)

    def render(self, limit: int = 60) -> str:
        a, b = self.a, self.b
        lines = [f"Compare over {Path(a.data).name} ({a.ticks} ticks); previous close "
                 f"{a.prev_close:.2f}: {a.prev_close_note}",
                 f"  A: {a.source} (policy {a.revision[:12]})",
                 f"  B: {b.source} (policy {b.revision[:12]})",
                 "What changed from A to B:",
                 *(f"  {c}" for c in self.changes.changes[:limit])]
        if not self.changes.changes:
            lines.append("  nothing that the engine reads")
        if self.same:
            lines.append("No difference: both versions made the same decisions at the same "
                         "times.")
            return "\n".join(lines)

        def times(ts: list[datetime]) -> str:
            shown = ", ".join(f"{t:%Y-%m-%d %H:%M}" for t in ts[:5])
            return shown + (f" (+{len(ts) - 5} more)" if len(ts) > 5 else "")

        lines.append("")
        for label, only in (("A", self.fired_only_a), ("B", self.fired_only_b)):
            for rid, ts in sorted(only.items()):
                lines.append(f"Fired only in {label}: {rid} at {times(ts)}")
        for rid, (ta, tb) in sorted(self.fired_at_other_times.items()):
            lines.append(f"Fired at different times: {rid}: A {times(ta)}; B {times(tb)}")
        oa, ob = len(a.orders), len(b.orders)
        lines.append(f"Orders: A {oa}, B {ob}" + (" (same count)" if oa == ob else
                                                   f" ({ob - oa:+d} in B)"))
        for sid in sorted(a.orders_by_strategy().keys() | b.orders_by_strategy().keys()):
            na, nb = a.orders_by_strategy().get(sid, 0), b.orders_by_strategy().get(sid, 0)
            if na != nb:
                lines.append(f"  {sid}: A {na}, B {nb}")
        for label, entries in (("A", self.only_a), ("B", self.only_b)):
            lines += ["", f"Timeline entries only in {label} ({len(entries)}):"]
            lines += [f"  {e.line()}" for e in entries[:limit]]
            if len(entries) > limit:
                lines.append(f"  ... {len(entries) - limit} more")
        return "\n".join(lines)


def compare(a: DryRun, b: DryRun) -> Comparison:
    """Differences between two dry runs of the same data (a pure function of the two)."""
    fa, fb = a.fired, b.fired
    keys_b = Counter(e.key for e in b.entries)
    keys_a = Counter(e.key for e in a.entries)
    only_a, only_b = [], []
    seen: Counter[tuple[str, str, str, str, str]] = Counter()
    for e in a.entries:
        seen[e.key] += 1
        if seen[e.key] > keys_b.get(e.key, 0):
            only_a.append(e)
    seen.clear()
    for e in b.entries:
        seen[e.key] += 1
        if seen[e.key] > keys_a.get(e.key, 0):
            only_b.append(e)
    return Comparison(
        a=a, b=b,
        fired_only_a={k: v for k, v in fa.items() if k not in fb},
        fired_only_b={k: v for k, v in fb.items() if k not in fa},
        fired_at_other_times={k: (fa[k], fb[k]) for k in fa.keys() & fb.keys()
                              if fa[k] != fb[k]},
        only_a=tuple(only_a), only_b=tuple(only_b),
        changes=classify_change(a.policy, b.policy))
