"""Policy regression tests: ``*_test.yaml`` files beside the policies, run like unit tests.

A threshold is one edit away from not protecting anyone: ``<= -3`` typed as ``>= -3``, a
circuit-breaker window shifted by an hour, a rule renamed so an override no longer matches.
Lint catches what is malformed, not what is wrong. A policy test pins what each rule must and
must not do, written in the policy's own vocabulary, so such an edit fails review instead of a
trading day. Cases come in three weights, and authors pick the lightest that shows the point:

- ``given`` — every guard rule's condition is evaluated against stated context values. Exact
  and instant; the place for thresholds and time windows (``fires`` / ``does_not_fire``).
- ``events`` — a short tick sequence (index values, VIX, operator commands) through a real
  :class:`~ruleengine.engine.Engine`; expectations are on decisions and trading states, so
  edges, holds and re-arming are tested the way they happen.
- ``scenario`` / ``data`` — a whole synthetic day or a replay file through
  :func:`ruleengine.runner.run` with the paper broker and a throw-away audit database. Slow
  (seconds each), so only for what nothing smaller can show.

Coverage asks, per guard rule, whether some case *asserts* it fires and some case asserts it
does not: a rule that merely happened not to fire in a case shows nothing about its threshold.
Only expectations that held count. Guard rules are those the engine's guard stage evaluates
(:data:`ruleengine.guards.GUARD_KINDS`); ``rules:`` of any other kind are not brakes.

Everything here is deterministic: the same files and policy set give the same report, byte for
byte (no timings, no wall clock), so a report can be diffed in review.
"""

from __future__ import annotations

import dataclasses
import difflib
import operator
import re
import tempfile
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

from .decisions import Decision
from .engine import Engine
from .errors import EvaluationError, Finding, PolicyError, RuleEngineError
from .events import Event, IndexTick, OperatorCommand, PreviousClose, Timer, VixTick
from .functions import parse_hhmm
from .guards import GUARD_KINDS
from .names import default_registry
from .policyset import TEST_SUFFIXES, LoadedDoc, PolicySet, Rule, load_policy_set
from .schema import validate
from .tradingstate import ScopeState, TradingState
from .yamlsource import Document, Path_, load_file

KIND = "policy_test"
#: The synthetic feed's default day (``adapters.factory.DEFAULT_DAY``; the core imports no
#: adapter): an ordinary Thursday session, so event cases and scenarios share a calendar.
DEFAULT_DAY = date(2026, 11, 26)
SOURCE = "policy-test"
DEFAULT_PATHS = ("policies", "strategies")

Mode = Literal["given", "events", "scenario", "data"]
Status = Literal["PASS", "FAIL", "ERROR"]
MODES: tuple[Mode, ...] = ("given", "events", "scenario", "data")
GIVEN_EXPECT = ("fires", "does_not_fire", "errors")
RUN_EXPECT = ("rule_fired", "not_fired", "state", "state_at", "denied", "orders",
              "no_entries_after")
SETUP: dict[Mode, tuple[str, ...]] = {
    "given": (),
    "events": ("day", "prev_close"),
    "scenario": ("day", "prev_close", "seed", "data_seed"),
    "data": ("prev_close", "seed"),
}
_RULE_LISTS = ("fires", "does_not_fire", "errors", "rule_fired", "not_fired")
#: Decision kinds a run case keeps; the rest (fills, signals, data quality) are not expected on.
_KEPT = frozenset({"rule_fired", "rule_error", "state_change", "denied", "order"})
_CLOCK_UNIT = "since midnight"  # names whose unit says so may be written "HH:MM"
_WRITTEN_TIME = re.compile(r"[0-9]+(:[0-9]+)+")


# -- the file and its cases -----------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyCase:
    """One case of a test file: its name, mode and raw YAML mapping, and where it is.

    ``file`` is the file as reports name it; ``path`` is where it is on disk, which ``data:``
    paths are relative to.
    """

    name: str
    mode: Mode
    file: str
    path: Path
    index: int
    raw: Mapping[str, Any] = field(repr=False)
    source: Document = field(repr=False, compare=False)

    @property
    def line(self) -> int:
        return self.source.loc(("cases", self.index)).line

    @property
    def node_id(self) -> str:
        return f"{self.file}::{self.name}"

    def line_of(self, *path: str | int) -> int:
        """The file line of a value inside this case (for problems that point at it)."""
        return self.source.loc(("cases", self.index, *path)).line

    def finding(self, path: Path_, code: str, message: str, *, key: bool = False) -> Finding:
        return self.source.finding(("cases", self.index, *path), code, message, key=key)


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyTestFile:
    path: Path
    file: str
    description: str
    cases: tuple[PolicyCase, ...]


def discover_tests(paths: Iterable[str | Path]) -> list[Path]:
    """``*_test.yaml`` files under the given folders (sorted), and the given files as they are."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found.extend(sorted(f for f in p.rglob("*")
                                if f.is_file() and f.name.endswith(TEST_SUFFIXES)))
        else:
            found.append(p)
    return list(dict.fromkeys(found))


def policy_folders(paths: Iterable[str | Path]) -> list[Path]:
    """The folders a policy set is loaded from: each folder given, and each file's folder."""
    return list(dict.fromkeys(Path(p) if Path(p).is_dir() else Path(p).parent for p in paths))


def is_policy_test(path: str | Path) -> bool:
    """Whether a ``*_test.yaml`` says ``kind: policy_test`` (a cheap look, no YAML parse), so
    collectors claim only these and leave any other file of that name alone."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(65536)
    except OSError:
        return False
    return re.search(r"^kind:[ \t]*[\"']?policy_test[\"']?[ \t]*(#.*)?$", head,
                     re.MULTILINE) is not None


def load_test_file(path: str | Path, display: str | None = None) -> PolicyTestFile:
    """Load and check one test file; raises :class:`PolicyError` with every located problem.

    The checks here need no policy set (shape, modes, registry names, times); references to
    rules and strategies are checked per case when it runs, against the set it runs on.
    """
    doc = load_file(path, display)
    data = doc.data
    if isinstance(data, dict) and "kind" in data and data["kind"] != KIND:
        raise PolicyError([doc.finding(("kind",), "schema-value",
                                       f"a *_test.yaml file holds policy tests: expected "
                                       f"'kind: {KIND}', found {data['kind']!r}")])
    early = _written_times(doc)
    taken = {(f.line, f.col) for f in early}
    findings = early + [f for f in validate(doc) if (f.line, f.col) not in taken]
    if findings:
        raise PolicyError(findings)
    cases: list[PolicyCase] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(data["cases"]):
        name = raw["name"]
        if name in seen:
            findings.append(doc.finding(("cases", i, "name"), "duplicate-id",
                                        f"case name {name!r} is already used at line "
                                        f"{seen[name]}; names must be unique in a file"))
        seen.setdefault(name, doc.loc(("cases", i, "name")).line)
        modes = [m for m in MODES if raw.get(m) is not None]
        case = PolicyCase(name=name, mode=modes[0] if modes else "given", file=doc.file,
                          path=Path(path), index=i, raw=raw, source=doc)
        problems = _check_case(case, modes)
        findings.extend(problems)
        if not problems:
            cases.append(case)
    if findings:
        raise PolicyError(findings)
    return PolicyTestFile(path=Path(path), file=doc.file, description=data.get("description", ""),
                          cases=tuple(cases))


def _written_times(doc: Document) -> list[Finding]:
    """Times written without quotes: YAML 1.1 reads ``10:30:00`` as the number 37800, which
    would silently mean 00:10:30 in a ``given`` value, so each one is refused by name."""
    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        return []
    spots: list[Path_] = []
    for i, case in enumerate(data["cases"]):
        if not isinstance(case, dict):
            continue
        spots.append(("cases", i, "no_entries_after"))
        for j in range(len(case.get("events") or [])):
            spots.extend([("cases", i, "events", j, "at"), ("cases", i, "events", j, "until")])
        given = case.get("given")
        if isinstance(given, dict):
            spots.extend(("cases", i, "given", name) for name in given)
    out: list[Finding] = []
    for path in spots:
        value = _at(data, path)
        if isinstance(value, int) and not isinstance(value, bool):
            loc = doc.loc(path)
            text = doc.lines[loc.line - 1][loc.col - 1:] if loc.line <= len(doc.lines) else ""
            written = _WRITTEN_TIME.match(text)
            if written and loc.style in (None, ""):
                out.append(doc.finding(path, "schema-type", f"write times in quotes: YAML reads "
                                       f"{written.group(0)} without quotes as the number "
                                       f"{value}; write \"{written.group(0)}\""))
    return out


def _at(data: Any, path: Path_) -> Any:
    for part in path:
        if isinstance(data, dict) and isinstance(part, str):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data


def _check_case(case: PolicyCase, modes: list[Mode]) -> list[Finding]:
    """The rules the schema cannot say: one mode per case, expectations that fit it, known
    names with values of the right type, times in order."""
    raw = case.raw
    if not modes:
        return [case.finding((), "schema-required", "a case needs one of given, events, "
                             "scenario or data")]
    if len(modes) > 1:
        return [case.finding((modes[1],), "schema-value", f"a case takes one of given, events, "
                             f"scenario or data; this one has {modes[0]} and {modes[1]}",
                             key=True)]
    mode = modes[0]
    expect = GIVEN_EXPECT if mode == "given" else RUN_EXPECT
    allowed = {"name", "description", mode, *SETUP[mode], *expect}
    out: list[Finding] = []
    for key in raw:
        if key in allowed:
            continue
        if key in GIVEN_EXPECT:
            hint = "; use rule_fired, not_fired, state, ... for cases that run events"
        elif key in RUN_EXPECT:
            hint = "; given cases expect fires, does_not_fire or errors"
        else:
            hint = f"; a {mode} case may set {', '.join(SETUP[mode])}" if SETUP[mode] else ""
        out.append(case.finding((key,), "schema-unknown-key",
                                f"{key!r} does not apply to {_a(mode)} case{hint}", key=True))
    if not any(raw.get(k) not in (None, [], {}) for k in expect):
        out.append(case.finding((), "schema-required", f"{_a(mode)} case needs at least one "
                                f"expectation: {', '.join(expect)}"))
    if mode == "given":
        out.extend(_check_given(case))
    elif mode == "events":
        out.extend(_check_events(case))
    elif raw.get("prev_close") is not None:
        closes = raw["prev_close"]
        if len(closes) != 1 or "vix" in closes:
            out.append(case.finding(("prev_close",), "schema-value", f"{_a(mode)} run takes the "
                                    "previous close of its one index, e.g. {NIFTY: 9590.15}"))
    orders = raw.get("orders")
    if orders is not None and not {"count", "min", "max"} & set(orders):
        out.append(case.finding(("orders",), "schema-required", "orders needs count, min or "
                                "max (purpose only chooses which orders are counted)"))
    return out


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _check_given(case: PolicyCase) -> list[Finding]:
    registry = default_registry()
    out: list[Finding] = []
    for name, value in case.raw["given"].items():
        info = registry.get(name)
        if info is None:
            close = registry.suggest(name)
            hint = f" — did you mean {close!r}?" if close else "; see `ruleengine names`"
            out.append(case.finding(("given", name), "unknown-name",
                                    f"unknown name {name!r}{hint}", key=True))
            continue
        if info.type == "bool":
            ok = isinstance(value, bool)
        elif info.type == "number":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if isinstance(value, str) and _CLOCK_UNIT in info.unit:
                try:
                    parse_hhmm(value)
                    ok = True
                except ValueError:
                    ok = False
        else:
            ok = isinstance(value, str)
        if not ok:
            want = {"bool": "true or false", "number": "a number", "str": "text"}[info.type]
            if info.type == "number" and _CLOCK_UNIT in info.unit:
                want = 'a time "HH:MM[:SS]" or a number of seconds since midnight'
            elif info.unit:
                want += f" ({info.unit})"
            out.append(case.finding(("given", name), "type-mismatch",
                                    f"{name} takes {want}; got {value!r}"))
    return out


def _check_events(case: PolicyCase) -> list[Finding]:
    out: list[Finding] = []
    last = -1
    for j, item in enumerate(case.raw["events"]):
        at = parse_hhmm(item["at"])
        if at < last:
            out.append(case.finding(("events", j, "at"), "schema-value",
                                    f"{item['at']} is earlier than the event before it; "
                                    "events run in time order"))
        last = max(last, at)
        command = item.get("command")
        if command in ("override", "clear_override") and not item.get("rule"):
            out.append(case.finding(("events", j), "schema-required",
                                    f"{command} needs rule: (the rule id)"))
        if command == "override" and not item.get("until"):
            out.append(case.finding(("events", j), "schema-required",
                                    "override needs until: (a time later the same day)"))
        for key in ("rule", "until", "reason", "who"):
            if key in item and command is None:
                out.append(case.finding(("events", j, key), "schema-value",
                                        f"{key!r} belongs to a command; this item has none",
                                        key=True))
    return out


# -- results ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One unmet expectation, at the line of the test file that states it."""

    line: int
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseResult:
    """PASS, FAIL (an expectation did not hold) or ERROR (the case could not run as written).

    ``fired`` and ``held`` are the rules this case showed firing and not firing: only
    expectations that held count, since a failed one demonstrated nothing.
    """

    case: PolicyCase
    status: Status
    problems: tuple[Problem, ...] = ()
    fired: frozenset[str] = frozenset()
    held: frozenset[str] = frozenset()

    @property
    def passed(self) -> bool:
        return self.status == "PASS"

    def render(self) -> str:
        lines = [f"{self.status:<5} {self.case.node_id}"]
        lines.extend(f"      {self.case.file}:{p.line}: {p.text}" for p in self.problems)
        return "\n".join(lines)

    def difference(self) -> str:
        """The problems alone, for a test runner that prints the case's name itself."""
        return "\n".join(f"{self.case.file}:{p.line}: {p.text}" for p in self.problems)


def guard_rules(policy: PolicySet) -> list[Rule]:
    """The rules the engine evaluates every tick: what a policy test can exercise."""
    return [r for r in policy.rules if r.kind in GUARD_KINDS]


def run_case(case: PolicyCase, policy: PolicySet) -> CaseResult:
    """Run one case against a policy set; never raises for a problem of the case itself."""
    refs = _reference_problems(case, policy)
    if refs:
        return CaseResult(case=case, status="ERROR", problems=tuple(refs))
    try:
        if case.mode == "given":
            problems, fired, held = _run_given(case, policy)
        elif case.mode == "events":
            problems, fired, held = _run_events(case, policy)
        else:
            problems, fired, held = _run_day(case, policy)
    except (RuleEngineError, OSError, ValueError) as exc:
        return CaseResult(case=case, status="ERROR", problems=(Problem(
            line=case.line_of(case.mode), text=f"could not run this case: {exc}"),))
    return CaseResult(case=case, status="FAIL" if problems else "PASS",
                      problems=tuple(problems), fired=frozenset(fired), held=frozenset(held))


def _reference_problems(case: PolicyCase, policy: PolicySet) -> list[Problem]:
    """Rule ids and strategy scopes the case names must exist in the set it runs on."""
    guards = [r.id for r in guard_rules(policy)]
    others = {r.id: r.kind for r in policy.rules if r.kind not in GUARD_KINDS}
    out: list[Problem] = []
    for key in _RULE_LISTS:
        for j, rule_id in enumerate(case.raw.get(key) or []):
            if rule_id in guards:
                continue
            if rule_id in others:
                text = (f"{rule_id} is a {others[rule_id]} rule, which the engine does not "
                        f"evaluate as a guard (guard kinds: {', '.join(sorted(GUARD_KINDS))})")
            else:
                close = difflib.get_close_matches(rule_id, guards, n=1)
                hint = f" — did you mean {close[0]!r}?" if close else ""
                text = f"no guard rule {rule_id!r} in the policy set{hint}"
            out.append(Problem(line=case.line_of(key, j), text=text))
    strategies = {s.id for s in policy.strategies}
    scoped: list[tuple[tuple[str | int, ...], str]] = [
        (("state", s), s) for s in case.raw.get("state") or {}]
    for at, states in (case.raw.get("state_at") or {}).items():
        scoped.extend((("state_at", at, s), s) for s in states)
    for path, scope in scoped:
        kind, _, name = scope.partition(":")
        if kind == "strategy" and name not in strategies:
            close = difflib.get_close_matches(name, sorted(strategies), n=1)
            hint = f" — did you mean 'strategy:{close[0]}'?" if close else \
                " (strategies are loaded from the folders under test)"
            out.append(Problem(line=case.line_of(*path), text=f"no strategy {name!r} in the "
                               f"policy set{hint}"))
    return out


# -- given: rule conditions against stated values ----------------------------------------------

def given_values(case: PolicyCase) -> dict[str, Any]:
    """The case's values as the engine would hold them (times of day in seconds)."""
    registry = default_registry()
    out: dict[str, Any] = {}
    for name, value in case.raw["given"].items():
        info = registry[name]
        if isinstance(value, str) and info.type == "number" and _CLOCK_UNIT in info.unit:
            value = parse_hhmm(value)
        out[name] = value
    return out


Outcome = tuple[Literal["fires", "holds", "error"], str]


def evaluate_rules(policy: PolicySet, values: Mapping[str, Any]) -> dict[str, Outcome]:
    """Every guard rule's outcome for these values: fires, holds (does not fire) or error,
    with the evaluation error's text. An error is what the engine resolves to the safe side
    (new risk blocked in the rule's scope), which is neither firing nor holding."""
    out: dict[str, Outcome] = {}
    for rule in guard_rules(policy):
        try:
            out[rule.id] = ("fires" if rule.when.evaluate(values) else "holds", "")
        except EvaluationError as exc:
            out[rule.id] = ("error", str(exc))
    return out


def _run_given(case: PolicyCase, policy: PolicySet) -> tuple[list[Problem], set[str], set[str]]:
    values = given_values(case)
    outcomes = evaluate_rules(policy, values)
    rules = {r.id: r for r in policy.rules}
    problems: list[Problem] = []
    fired: set[str] = set()
    held: set[str] = set()
    wants: dict[str, Literal["fires", "holds", "error"]] = {
        "fires": "fires", "does_not_fire": "holds", "errors": "error"}
    for key, want in wants.items():
        for j, rule_id in enumerate(case.raw.get(key) or []):
            got, error = outcomes[rule_id]
            if got == want:
                if want == "fires":
                    fired.add(rule_id)
                elif want == "holds":
                    held.add(rule_id)
                continue
            read = format_values(rules[rule_id].when.inputs(values))
            expected = {"fires": f"expected {rule_id} to fire",
                        "holds": f"expected {rule_id} not to fire",
                        "error": f"expected {rule_id} to be unevaluable (a value it reads "
                                 "missing)"}[want]
            actual = {"fires": "it fired", "holds": "it did not",
                      "error": f"it could not be evaluated: {error}"}[got]
            if want == "error":
                actual = f"it evaluated to {'true' if got == 'fires' else 'false'}"
            problems.append(Problem(line=case.line_of(key, j),
                                    text=f"{expected}; {actual} (values read: {read})"))
    return problems, fired, held


def format_values(values: Mapping[str, Any]) -> str:
    """``name=value`` pairs as a trader reads them: times as HH:MM:SS, true/false, no
    float noise, and ``<missing>`` for a value the case did not give."""
    registry = default_registry()
    parts = []
    for name, value in values.items():
        info = registry.get(name)
        parts.append(f"{name}={_show(value, clock=info is not None and _CLOCK_UNIT in info.unit)}")
    return ", ".join(parts) or "none"


def _show(value: Any, *, clock: bool = False) -> str:
    if value is None:
        return "<missing>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if clock and isinstance(value, (int, float)):
        secs = int(value)
        return f"{secs // 3600:02d}:{secs % 3600 // 60:02d}:{secs % 60:02d}"
    if isinstance(value, float):
        return format(value, ".10g")
    return str(value)


# -- events: a tick sequence through a real engine ----------------------------------------------

def _day(case: PolicyCase) -> date:
    return date.fromisoformat(case.raw.get("day") or DEFAULT_DAY.isoformat())


def _clock(day: date, text: str) -> datetime:
    return datetime.combine(day, time()) + timedelta(seconds=parse_hhmm(text))


def _closes(closes: Mapping[str, float], ts: datetime) -> list[Event]:
    vix = closes.get("vix")
    out: list[Event] = []
    for i, (symbol, close) in enumerate((k, v) for k, v in closes.items() if k != "vix"):
        out.append(PreviousClose(ts=ts, source=SOURCE, underlying=symbol, close=float(close),
                                 vix_close=float(vix) if vix is not None and i == 0 else None))
    return out


def event_batches(case: PolicyCase) -> list[list[Event]]:
    """The case's events as engine ticks: items that share a time form one tick, the case's
    ``prev_close`` opens the first, and an item with nothing but ``at`` is a timer tick."""
    day = _day(case)
    batches: list[tuple[datetime, list[Event]]] = []

    def add(ts: datetime, events: list[Event]) -> None:
        if batches and batches[-1][0] == ts:
            batches[-1][1].extend(events)
        else:
            batches.append((ts, events))

    items = case.raw["events"]
    if case.raw.get("prev_close"):
        add(_clock(day, items[0]["at"]), _closes(case.raw["prev_close"], _clock(day,
                                                                               items[0]["at"])))
    for item in items:
        ts = _clock(day, item["at"])
        events: list[Event] = []
        if item.get("prev_close"):
            events.extend(_closes(item["prev_close"], ts))
        for symbol, value in (item.get("index") or {}).items():
            events.append(IndexTick(ts=ts, source=SOURCE, underlying=symbol, value=float(value)))
        if item.get("vix") is not None:
            events.append(VixTick(ts=ts, source=SOURCE, value=float(item["vix"])))
        if item.get("command"):
            events.append(OperatorCommand(
                ts=ts, source=SOURCE, command=item["command"],
                reason=item.get("reason", "policy test"), who=item.get("who", SOURCE),
                rule_id=item.get("rule", ""),
                until=_clock(day, item["until"]) if item.get("until") else None))
        add(ts, events or [Timer(ts=ts, source=SOURCE)])
    return [events for _, events in batches]


def _run_events(case: PolicyCase, policy: PolicySet) -> tuple[list[Problem], set[str], set[str]]:
    engine = Engine(policy)
    decisions: list[Decision] = []
    for batch in event_batches(case):
        decisions.extend(engine.tick(batch).decisions)
    return check_decisions(case, decisions, engine.state.scopes, _day(case))


# -- scenario and data: a whole run through the runner ------------------------------------------

def _run_day(case: PolicyCase, policy: PolicySet) -> tuple[list[Problem], set[str], set[str]]:
    from .runner import RunConfig, run  # only run cases pay for the runner and its adapters

    raw = case.raw
    if case.mode == "data":
        path = case.path.parent / raw["data"]
        if not path.is_file():
            raise ValueError(f"data file {str(path)!r} does not exist (paths are relative to "
                             "the test file)")
        feed = f"replay:{path}"
    else:
        feed = f"synthetic:{raw['scenario']}"
    closes = raw.get("prev_close") or {}
    decisions: list[Decision] = []
    first: list[date] = []

    def keep(result: Any) -> None:
        if not first:
            first.append(result.ts.date())
        decisions.extend(d for d in result.decisions if d.kind in _KEPT)

    folders = tuple(dict.fromkeys(str(Path(f).parent) for f in policy.files))
    with tempfile.TemporaryDirectory(prefix="ruleengine-test-") as tmp:
        config = RunConfig(policies=folders, strategies=(), feed=feed,
                           db=str(Path(tmp) / "audit.db"), seed=int(raw.get("seed", 1)),
                           data_seed=int(raw.get("data_seed", 1)),
                           day=_day(case) if case.mode == "scenario" else None,
                           prev_close=float(next(iter(closes.values()))) if closes else None)
        outcome = run(config, policy=without_alert_sinks(policy), on_tick=keep)
    day = first[0] if first else _day(case)
    return check_decisions(case, decisions, outcome.engine.state.scopes, day)


def without_alert_sinks(policy: PolicySet) -> PolicySet:
    """The same set with an ``alerts`` policy that has no sinks.

    A test run must not page anyone: with Telegram or e-mail enabled for live trading, every
    scenario case would otherwise send its halts and breaches to the desk. Decisions, the audit
    trail and the revision are unchanged; only delivery is switched off.
    """
    data = {"kind": "alerts", "version": 1, "sinks": {}}
    silent = LoadedDoc(file="<policy test: no alert sinks>", kind="alerts", data=data,
                       source=Document(file="<policy test>", data=data))
    docs = tuple(d for d in policy.documents if d.kind != "alerts")
    return dataclasses.replace(policy, documents=(*docs, silent))


# -- expectations on decisions -----------------------------------------------------------------

def check_decisions(case: PolicyCase, decisions: Sequence[Decision],
                    scopes: Mapping[str, ScopeState],
                    day: date) -> tuple[list[Problem], set[str], set[str]]:
    """Compare what a run decided with what the case expects; returns the problems and the
    rules shown firing and not firing."""
    raw = case.raw
    problems: list[Problem] = []
    fired: set[str] = set()
    held: set[str] = set()

    def when(d: Decision) -> str:
        return f"{d.ts:%H:%M:%S}" if d.ts.date() == day else d.ts.isoformat()

    firings: dict[str, list[Decision]] = {}
    errors: dict[str, list[Decision]] = {}
    for d in decisions:
        if d.kind == "rule_fired":
            firings.setdefault(d.rule_id, []).append(d)
        elif d.kind == "rule_error":
            errors.setdefault(d.rule_id, []).append(d)
    for j, rule_id in enumerate(raw.get("rule_fired") or []):
        if rule_id in firings:
            fired.add(rule_id)
            continue
        if rule_id in errors:
            e = errors[rule_id][0]
            why = f"it could not be evaluated ({e.result.get('error')}) at {when(e)}"
        else:
            seen = ", ".join(sorted(firings)) or "none"
            why = f"it did not (rules that fired: {seen})"
        problems.append(Problem(line=case.line_of("rule_fired", j),
                                text=f"expected {rule_id} to fire; {why}"))
    for j, rule_id in enumerate(raw.get("not_fired") or []):
        if rule_id not in firings:
            held.add(rule_id)
            continue
        d = firings[rule_id][0]
        problems.append(Problem(line=case.line_of("not_fired", j), text=(
            f"expected {rule_id} not to fire; it fired at {when(d)} in {d.scope} "
            f"(values read: {format_values(d.inputs)})")))
    for scope, want in (raw.get("state") or {}).items():
        now = scopes.get(scope)
        got = now.state.name if now is not None else TradingState.ACTIVE.name
        if got != want:
            why = f"held by {now.rule_id}: {now.reason}" if now is not None and now.rule_id \
                else "no rule restricts it"
            problems.append(Problem(line=case.line_of("state", scope), text=(
                f"expected {scope} to be {want} after the last tick; it is {got} ({why})")))
    for at, states in (raw.get("state_at") or {}).items():
        moment = _moment(at, day)
        for scope, want in states.items():
            changes = [d for d in decisions if d.kind == "state_change" and d.scope == scope
                       and d.ts <= moment]
            got = changes[-1].result.get("to", "ACTIVE") if changes else "ACTIVE"
            if got != want:
                last = changes[-1] if changes else None
                why = (f"last change at {when(last)} by {last.rule_id}: {last.message}"
                       if last is not None else "no change before then")
                problems.append(Problem(line=case.line_of("state_at", at, scope), text=(
                    f"expected {scope} to be {want} at {at}; it was {got} ({why})")))
    denied = [d for d in decisions if d.kind == "denied"]
    codes = {str(d.result.get("code")) for d in denied}
    for j, code in enumerate(raw.get("denied") or []):
        if code not in codes:
            seen = f"codes seen: {', '.join(sorted(codes))}" if codes else "nothing was refused"
            problems.append(Problem(line=case.line_of("denied", j), text=(
                f"expected an order or signal refused with code {code!r}; {seen}")))
    orders = raw.get("orders")
    if orders is not None:
        purpose = orders.get("purpose", "any")
        chosen = [d for d in decisions if d.kind == "order"
                  and purpose in ("any", d.result.get("purpose"))]
        word = "" if purpose == "any" else f"{purpose} "
        n = len(chosen)
        for key, ok, text in (("count", operator.eq, "exactly"), ("min", operator.ge, "at least"),
                              ("max", operator.le, "at most")):
            want_n = orders.get(key)
            if want_n is None or ok(n, want_n):
                continue
            first = f" (first at {when(chosen[0])}: {chosen[0].message})" if chosen else ""
            problems.append(Problem(line=case.line_of("orders", key), text=(
                f"expected {text} {want_n} {word}order(s) approved; there were {n}{first}")))
    cutoff = raw.get("no_entries_after")
    if cutoff is not None:
        moment = _moment(cutoff, day)
        late = [d for d in decisions if d.kind == "order" and d.ts >= moment
                and d.result.get("purpose") == "entry"]
        if late:
            problems.append(Problem(line=case.line_of("no_entries_after"), text=(
                f"expected no entry order at or after {cutoff}; {len(late)} approved, first "
                f"at {when(late[0])}: {late[0].message}")))
    return problems, fired, held


def _moment(text: str, day: date) -> datetime:
    """``HH:MM[:SS]`` on the run's first day, or a full ``YYYY-MM-DDTHH:MM[:SS]``. A time
    names the end of its second: state "at 10:30:00" includes the tick at 10:30:00."""
    if "T" in text:
        return datetime.fromisoformat(text)
    return _clock(day, text)


# -- coverage and reports -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class Coverage:
    """Which guard rules no case asserts firing, and which none asserts not firing."""

    rules: tuple[str, ...]
    never_fired: tuple[str, ...]
    never_held: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.never_fired and not self.never_held

    def render(self) -> str:
        n = len(self.rules)
        if self.complete:
            return f"coverage: {n} guard rules; every one made to fire and shown not firing"
        lines = [f"coverage: {n} guard rules; {n - len(self.never_fired)} made to fire, "
                 f"{n - len(self.never_held)} shown not firing"]
        for title, ids in (("never made to fire", self.never_fired),
                           ("never shown not firing", self.never_held)):
            if ids:
                lines.extend(textwrap.wrap(f"{title}: {', '.join(ids)}", width=96,
                                           initial_indent="  ", subsequent_indent="    ",
                                           break_on_hyphens=False))
        return "\n".join(lines)


def coverage(policy: PolicySet, results: Iterable[CaseResult]) -> Coverage:
    fired: set[str] = set()
    held: set[str] = set()
    for r in results:
        fired |= r.fired
        held |= r.held
    ids = tuple(r.id for r in guard_rules(policy))
    return Coverage(rules=ids, never_fired=tuple(i for i in ids if i not in fired),
                    never_held=tuple(i for i in ids if i not in held))


@dataclass(slots=True, kw_only=True)
class Report:
    """Everything one ``ruleengine test`` run found, in file and case order."""

    files: list[Path] = field(default_factory=list)
    results: list[CaseResult] = field(default_factory=list)
    load_errors: list[Finding] = field(default_factory=list)  # test files that do not load
    policy_errors: list[Finding] = field(default_factory=list)  # the policy set does not load
    coverage: Coverage | None = None

    def ok(self, *, need_coverage: bool = False) -> bool:
        if self.policy_errors or self.load_errors or not all(r.passed for r in self.results):
            return False
        return not need_coverage or (self.coverage is not None and self.coverage.complete)

    def summary(self) -> str:
        counts = {s: sum(1 for r in self.results if r.status == s)
                  for s in ("PASS", "FAIL", "ERROR")}
        parts = [f"{counts['PASS']} passed"]
        if counts["FAIL"]:
            parts.append(f"{counts['FAIL']} failed")
        if counts["ERROR"]:
            parts.append(f"{counts['ERROR']} could not run")
        files = f"{len(self.files)} test file{'s' if len(self.files) != 1 else ''}"
        bad = len({f.file for f in self.load_errors})
        if bad:
            files += f", {bad} that do{'es' if bad == 1 else ''} not load"
        if self.policy_errors:
            files += "; the policy set under test does not load"
        return f"{', '.join(parts)} ({files})"


def run_tests(paths: Sequence[str | Path], *,
              on_output: Callable[[str], None] | None = None) -> Report:
    """Find the test files under ``paths``, load one policy set from the same folders, run
    every case. ``on_output`` receives each result (or load error) as soon as it is known,
    since a scenario case takes seconds and a person is watching."""
    say = on_output or (lambda _text: None)
    report = Report(files=discover_tests(paths))
    try:
        policy = load_policy_set(policy_folders(paths))
    except PolicyError as exc:
        report.policy_errors.extend(exc.findings)
        say("ERROR the policy set under test does not load:\n" + "\n".join(
            f"      {f}" for f in exc.findings))
        return report
    for path in report.files:
        try:
            test_file = load_test_file(path)
        except PolicyError as exc:
            report.load_errors.extend(exc.findings)
            say(f"ERROR {path}\n" + "\n".join(f"      {f}" for f in exc.findings))
            continue
        for case in test_file.cases:
            result = run_case(case, policy)
            report.results.append(result)
            say(result.render())
    report.coverage = coverage(policy, report.results)
    return report
