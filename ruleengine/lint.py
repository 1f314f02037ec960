"""Trading-aware checks across a whole policy set, beyond what a schema can say.

A schema sees one file; these checks see the set: ids that collide across files, references to
strategies or instruments that do not exist, a risk set missing its two non-negotiable brakes
(a daily-loss halt and a kill switch), and the two classic fat-finger traps in order limits
(a per-order quantity above the exchange freeze, and a quantity typed into a lots field).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

from .calendar import check_schedule
from .errors import Finding
from .instruments import Instrument

if TYPE_CHECKING:
    from .policyset import LoadedDoc, Rule

#: Names whose reading marks a rule as a daily-loss limit.
DAY_LOSS_NAMES = frozenset({"account.day_pnl", "account.day_pnl_pct", "account.equity"})
KILL_SWITCH_NAMES = frozenset({"operator.kill_switch"})


def check_documents(docs: list[LoadedDoc], rules: list[Rule],
                    instruments: Mapping[str, Instrument]) -> list[Finding]:
    findings: list[Finding] = []
    findings += _duplicate_ids(docs)
    findings += _schedules(docs)
    findings += _references(docs, instruments)
    findings += _order_limits(docs, instruments)
    findings += _brakes(docs, rules)
    findings += [f for d in docs if d.kind == "schedule" for f in check_schedule(d)]
    return findings


def _duplicate_ids(docs: list[LoadedDoc]) -> list[Finding]:
    out: list[Finding] = []
    seen: dict[tuple[str, str], str] = {}

    def see(space: str, ident: str, doc: LoadedDoc, path: tuple[Any, ...]) -> None:
        loc = doc.source.loc(path)
        here = f"{doc.file}:{loc.line}"
        first = seen.get((space, ident))
        if first is None:
            seen[(space, ident)] = here
        else:
            out.append(doc.source.finding(path, "duplicate-id",
                                          f"{space} id {ident!r} is already used at {first}"))

    for doc in docs:
        for i, rule in enumerate(doc.data.get("rules", [])):
            see("rule", rule["id"], doc, ("rules", i, "id"))
        if doc.kind == "strategy":
            see("strategy", doc.data["id"], doc, ("id",))
            for j, leg in enumerate(doc.data["legs"]):
                see(f"leg of {doc.data['id']}", leg["id"], doc, ("legs", j, "id"))
        if doc.kind == "instruments":
            for j, inst in enumerate(doc.data["instruments"]):
                see("instrument", inst["symbol"], doc, ("instruments", j, "symbol"))
    return out


def _schedules(docs: list[LoadedDoc]) -> list[Finding]:
    out: list[Finding] = []
    for doc in docs:
        if doc.kind != "instruments":
            continue
        for j, inst in enumerate(doc.data["instruments"]):
            for field in ("lot_sizes", "freeze_qty", "expiries"):
                last: date | None = None
                for k, entry in enumerate(inst.get(field, [])):
                    day = date.fromisoformat(entry["effective_from"])
                    if last is not None and day <= last:
                        out.append(doc.source.finding(
                            ("instruments", j, field, k, "effective_from"), "schedule-order",
                            f"{field} dates must increase; {day} does not come after {last}"))
                    last = day
    return out


def _references(docs: list[LoadedDoc], instruments: Mapping[str, Instrument]) -> list[Finding]:
    out: list[Finding] = []
    have_instruments = any(d.kind == "instruments" for d in docs)
    strategy_ids = {d.data["id"] for d in docs if d.kind == "strategy"}
    known = sorted(instruments)
    for doc in docs:
        if doc.kind == "strategy" and have_instruments and \
                doc.data["underlying"] not in instruments:
            out.append(doc.source.finding(("underlying",), "unknown-reference",
                                          f"underlying {doc.data['underlying']!r} is not in the "
                                          f"instruments data; known: {', '.join(known)}"))
        for i, rule in enumerate(doc.data.get("rules", [])):
            scope = rule["scope"]
            for k, target in enumerate(rule["targets"]):
                path = ("rules", i, "targets", k)
                if scope == "account":
                    out.append(doc.source.finding(path, "unknown-reference",
                                                  "targets only apply to scope underlying or "
                                                  "strategy; this rule has scope account"))
                elif scope == "strategy" and strategy_ids and target not in strategy_ids:
                    out.append(doc.source.finding(path, "unknown-reference",
                                                  f"no strategy with id {target!r}; known: "
                                                  f"{', '.join(sorted(strategy_ids))}"))
                elif scope == "underlying" and have_instruments and target not in instruments:
                    out.append(doc.source.finding(path, "unknown-reference",
                                                  f"no instrument {target!r}; known: "
                                                  f"{', '.join(known)}"))
        if doc.kind == "risk" and have_instruments:
            for sym in doc.data["order_limits"]:
                if sym not in instruments:
                    out.append(doc.source.finding(("order_limits", sym), "unknown-reference",
                                                  f"no instrument {sym!r}; known: "
                                                  f"{', '.join(known)}", key=True))
    return out


def _order_limits(docs: list[LoadedDoc], instruments: Mapping[str, Instrument]) -> list[Finding]:
    """Checked against the latest dated lot size and freeze quantity."""
    out: list[Finding] = []
    for doc in docs:
        if doc.kind != "risk":
            continue
        for sym, lim in doc.data["order_limits"].items():
            inst = instruments.get(sym)
            if inst is None:
                continue
            lot, freeze = inst.lot_sizes.latest, inst.freeze_qty.latest
            max_lots_exchange = freeze // lot
            if "max_qty" in lim and lim["max_qty"] > freeze:
                out.append(doc.source.finding(
                    ("order_limits", sym, "max_qty"), "qty-above-freeze",
                    f"max_qty {lim['max_qty']} is above the {sym} freeze quantity {freeze}; "
                    f"the exchange rejects larger orders, so this ceiling never protects you"))
            lots = lim.get("max_lots")
            if lots is not None and lots % lot == 0 and lots > max_lots_exchange:
                out.append(doc.source.finding(
                    ("order_limits", sym, "max_lots"), "lots-look-like-quantity",
                    f"max_lots {lots} is a multiple of the {sym} lot size {lot} and above the "
                    f"{max_lots_exchange} lots one order may hold: it looks like a quantity "
                    f"({lots // lot} lot(s)) typed as lots ({lots * lot:,} units)"))
    return out


def _brakes(docs: list[LoadedDoc], rules: list[Rule]) -> list[Finding]:
    risk_docs = [d for d in docs if d.kind == "risk"]
    if not risk_docs:
        return []
    halting = [r for r in rules if "halt" in r.then]
    out: list[Finding] = []
    anchor = risk_docs[0]
    path: tuple[str, ...] = ("rules",) if ("rules",) in anchor.source.locs else ()
    if not any(DAY_LOSS_NAMES.intersection(r.when.names) for r in halting):
        out.append(anchor.source.finding(
            path, "missing-daily-loss-limit", "no risk rule halts trading on the day's loss; add "
            "one such as `when: account.day_pnl_pct <= -3` with `then: [halt, cancel_pending, "
            "square_off, alert]`", key=bool(path)))
    if not any(KILL_SWITCH_NAMES.intersection(r.when.names) for r in halting):
        out.append(anchor.source.finding(
            path, "missing-kill-switch", "no risk rule halts trading on the kill switch; add one "
            "with `when: operator.kill_switch` and `then: [halt, cancel_pending, square_off, "
            "alert]`", key=bool(path)))
    return out
