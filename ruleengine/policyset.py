"""A directory of YAML files becomes one immutable, versioned, compiled policy set.

Loading is all-or-nothing: every file is read, schema-validated, cross-checked and compiled, and
every problem from every file is collected before anything is decided. Only a set with no errors
becomes a :class:`PolicySet`, stamped with a revision (sha256 of a canonical form of all
documents) that every decision made under it carries.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ExpressionError, Finding, PolicyError
from .expr import CompiledExpr, Origin, Template, compile_expr, compile_template
from .functions import parse_duration, parse_hhmm
from .instruments import Instrument, build_instrument
from .names import NameInfo, Registry, default_registry
from .schema import apply_defaults, validate
from .yamlsource import Document, Path_, load_file

POLICY_SUFFIXES = (".yaml", ".yml")
TEST_SUFFIXES = ("_test.yaml", "_test.yml")


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedDoc:
    """One validated document with defaults applied, and where it came from."""

    file: str
    kind: str
    data: dict[str, Any]
    source: Document = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """A compiled rule. ``file``/``line`` point at its ``id`` for decision records."""

    id: str
    kind: str
    file: str
    line: int
    when: CompiledExpr
    then: tuple[str, ...]
    scope: str
    targets: tuple[str, ...]
    severity: str
    message: Template
    cooldown_s: float
    rearm: str
    rearm_when: CompiledExpr | None
    rearm_hold_s: float
    rearm_after_s: float
    overridable: bool

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Level:
    """A stop or target: ``kind`` is points, pct or amount."""

    kind: str
    value: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Leg:
    id: str
    instrument: str
    option_type: str
    strike_offset: int
    expiry: str
    side: str
    lots: int
    stop_loss: Level | None
    target: Level | None


@dataclass(frozen=True, slots=True, kw_only=True)
class IndicatorSpec:
    name: str
    type: str
    period: int
    source: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Strategy:
    id: str
    file: str
    line: int
    enabled: bool
    underlying: str
    timeframe_s: int
    capital_weight: float
    entry_start_s: int
    entry_end_s: int
    indicators: tuple[IndicatorSpec, ...]
    entry: CompiledExpr
    exit: CompiledExpr
    legs: tuple[Leg, ...]
    stop_loss: Level | None
    target: Level | None
    trail_activate_pct: float
    trail_pct: float
    time_exit_s: int
    max_trades_per_day: int
    reentry_enabled: bool
    reentry_cooldown_s: float
    max_reentries: int
    sizing_mode: str
    max_units: int
    legs_by_id: Mapping[str, Leg] = field(init=False, repr=False, compare=False)
    leg_levels: bool = field(init=False, repr=False, compare=False)  # any per-leg stop/target

    def __post_init__(self) -> None:
        object.__setattr__(self, "legs_by_id", {leg.id: leg for leg in self.legs})
        object.__setattr__(self, "leg_levels", any(
            leg.stop_loss is not None or leg.target is not None for leg in self.legs))


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicySet:
    """Everything the engine needs from YAML, compiled; immutable, identified by ``revision``."""

    revision: str
    files: tuple[str, ...]
    documents: tuple[LoadedDoc, ...] = field(repr=False)
    rules: tuple[Rule, ...]
    strategies: tuple[Strategy, ...]
    instruments: Mapping[str, Instrument]
    capital: float
    per_trade_risk_pct: float
    order_limits: Mapping[str, Mapping[str, int]]
    warnings: tuple[Finding, ...] = ()

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """The (defaulted) data of every document of one kind, in file order."""
        return [d.data for d in self.documents if d.kind == kind]

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Policy files under the given files and folders, sorted; ``*_test.yaml`` are tests."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found.extend(sorted(f for f in p.rglob("*") if f.is_file()
                                and f.name.endswith(POLICY_SUFFIXES)
                                and not f.name.endswith(TEST_SUFFIXES)))
        else:
            found.append(p)
    return list(dict.fromkeys(found))


def _origin(doc: Document, path: Path_, value: str) -> Origin:
    loc = doc.loc(path)
    if loc.style in ("'", '"'):
        return Origin(doc.file, loc.line, loc.col + 1)
    if loc.style in ("|", ">"):
        for i in range(loc.line, len(doc.lines)):  # loc.line is 1-based: next line is index
            text = doc.lines[i]
            if text.strip():
                indent = len(text) - len(text.lstrip()) + 1
                segments = _segments(doc, i + 1, None, value) \
                    if loc.style == ">" else ()
                return Origin(doc.file, i + 1, indent, indent, segments)
    return Origin(doc.file, loc.line, loc.col, loc.col,
                  _segments(doc, loc.line, loc.col, value))


def _segments(doc: Document, line: int, col: int | None,
              value: str) -> tuple[tuple[int, int, int], ...]:
    """Where each physical line of a scalar YAML folded into one line starts in its value.

    YAML joins the lines of a plain or ``>`` scalar with spaces, so a column in the value is
    not a column in the file; this finds each line's text in the value, in order. Empty when
    the scalar sits on one line or its lines cannot be matched (the caller's origin applies).
    """
    segments: list[tuple[int, int, int]] = []
    pos, end = 0, len(value.rstrip())
    i = line - 1
    while pos < end and i < len(doc.lines):
        raw = doc.lines[i]
        start = col - 1 if col is not None else len(raw) - len(raw.lstrip())
        piece = raw[start:].rstrip()
        found = value.find(piece, pos) if piece else -1
        if piece and found < 0 and " #" in piece:  # a comment ends a plain scalar
            piece = piece.split(" #")[0].rstrip()
            found = value.find(piece, pos) if piece else -1
        if piece:
            if found < 0:
                return ()
            segments.append((found, i + 1, start + 1))
            pos = found + len(piece)
        col = None
        i += 1
    return tuple(segments) if len(segments) > 1 else ()


class _Compiler:
    """Turns validated documents into compiled objects, collecting findings instead of stopping."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def expr(self, doc: LoadedDoc, path: Path_, registry: Registry,
             expect: str | None = "bool", warn_constant: bool = True) -> CompiledExpr | None:
        source = _get(doc.data, path)
        try:
            compiled = compile_expr(str(source), registry,
                                    _origin(doc.source, path, str(source)), expect=expect)
        except ExpressionError as exc:
            self.findings.append(exc.finding)
            return None
        if warn_constant and compiled.verdict is not None:
            fires = "always fires" if compiled.verdict == "always" else "can never fire"
            self.findings.append(doc.source.finding(
                path, "constant-condition", f"this condition {fires} ({compiled.source!r}); "
                "check the threshold against the name's range in `ruleengine names`",
                severity="warning"))
        return compiled

    def template(self, doc: LoadedDoc, path: Path_, registry: Registry) -> Template | None:
        try:
            source = str(_get(doc.data, path))
            return compile_template(source, registry, _origin(doc.source, path, source))
        except ExpressionError as exc:
            self.findings.append(exc.finding)
            return None

    def rules(self, doc: LoadedDoc, registry: Registry) -> list[Rule]:
        out: list[Rule] = []
        for i, raw in enumerate(doc.data.get("rules", [])):
            base: Path_ = ("rules", i)
            when = self.expr(doc, (*base, "when"), registry)
            message = self.template(doc, (*base, "message"), registry)
            rearm = raw.get("rearm", "manual")
            rearm_mode = rearm if isinstance(rearm, str) else rearm["mode"]
            rearm_when = None
            if isinstance(rearm, dict) and rearm.get("when"):
                rearm_when = self.expr(doc, (*base, "rearm", "when"), registry)
            hold = parse_duration(rearm.get("hold", "0s")) if isinstance(rearm, dict) else 0.0
            after = parse_duration(rearm.get("after", "0s")) if isinstance(rearm, dict) else 0.0
            if when is None or message is None:
                continue
            out.append(Rule(
                id=raw["id"], kind=doc.kind, file=doc.file, line=doc.source.loc((*base,)).line,
                when=when, then=tuple(raw["then"]), scope=raw["scope"],
                targets=tuple(raw["targets"]), severity=raw["severity"], message=message,
                cooldown_s=parse_duration(raw["cooldown"]), rearm=rearm_mode,
                rearm_when=rearm_when, rearm_hold_s=hold, rearm_after_s=after,
                overridable=raw["overridable"]))
        return out

    def strategy(self, doc: LoadedDoc, registry: Registry) -> Strategy | None:
        d = doc.data
        indicators = tuple(IndicatorSpec(name=k, type=v["type"], period=v["period"],
                                         source=v["source"])
                           for k, v in d["indicators"].items())
        local = registry.extend({
            f"ind.{i.name}": NameInfo(name=f"ind.{i.name}", type="number", unit="",
                                      description=f"{i.type} indicator declared by {d['id']}")
            for i in indicators})
        entry = self.expr(doc, ("entry",), local, warn_constant=False)
        exit_ = self.expr(doc, ("exit",), local, warn_constant=False)
        if entry is None or exit_ is None:
            return None
        legs = tuple(Leg(
            id=leg["id"], instrument=leg["instrument"], option_type=leg["option_type"],
            strike_offset=int(leg["strike"][3:] or 0), expiry=leg["expiry"], side=leg["side"],
            lots=leg["lots"], stop_loss=_level(leg.get("stop_loss")),
            target=_level(leg.get("target"))) for leg in d["legs"])
        return Strategy(
            id=d["id"], file=doc.file, line=doc.source.loc(("id",)).line, enabled=d["enabled"],
            underlying=d["underlying"], timeframe_s=int(d["timeframe"][:-1]) * 60,
            capital_weight=float(d["capital_weight"]),
            entry_start_s=parse_hhmm(d["entry_window"]["start"]),
            entry_end_s=parse_hhmm(d["entry_window"]["end"]), indicators=indicators,
            entry=entry, exit=exit_, legs=legs, stop_loss=_level(d.get("stop_loss")),
            target=_level(d.get("target")),
            trail_activate_pct=float(d["trailing_stop"]["activate_pct"]),
            trail_pct=float(d["trailing_stop"]["trail_pct"]),
            time_exit_s=parse_hhmm(d["time_exit"]), max_trades_per_day=d["max_trades_per_day"],
            reentry_enabled=d["reentry"]["enabled"],
            reentry_cooldown_s=parse_duration(d["reentry"]["cooldown"]),
            max_reentries=d["reentry"]["max_reentries"], sizing_mode=d["sizing"]["mode"],
            max_units=d["sizing"]["max_units"])


def _level(raw: Mapping[str, Any] | None) -> Level | None:
    if not raw:
        return None
    (kind, value), = raw.items()
    return Level(kind=kind, value=float(value))


def _get(data: Any, path: Path_) -> Any:
    for p in path:
        data = data[p]
    return data


def revision_of(docs: Iterable[LoadedDoc]) -> str:
    """sha256 over a canonical JSON form of every document (content only, not file names)."""
    canon = sorted(json.dumps(d.data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                   for d in docs)
    return hashlib.sha256("\n".join(canon).encode()).hexdigest()


def read_documents(paths: Iterable[str | Path]) -> tuple[list[LoadedDoc], list[Finding]]:
    """Load and schema-validate every file; invalid files are reported and left out."""
    docs: list[LoadedDoc] = []
    findings: list[Finding] = []
    files = discover(paths)
    if not files:
        findings.append(Finding(file=" ".join(str(p) for p in paths) or ".", line=1, col=1,
                                code="yaml-syntax", message="no policy files (*.yaml) found"))
    for path in files:
        try:
            source = load_file(path, str(path))
        except PolicyError as exc:
            findings.extend(exc.findings)
            continue
        problems = validate(source)
        findings.extend(problems)
        if problems:
            continue
        kind = source.data["kind"]
        docs.append(LoadedDoc(file=source.file, kind=kind,
                              data=apply_defaults(source.data, kind), source=source))
    return docs, findings


def compile_documents(docs: list[LoadedDoc],
                      registry: Registry | None = None) -> tuple[PolicySet, list[Finding]]:
    """Compile validated documents and run every cross-file and trading-aware check."""
    from .lint import check_documents  # the linter reads compiled pieces; avoid a cycle

    registry = registry or default_registry()
    comp = _Compiler()
    rules: list[Rule] = []
    strategies: list[Strategy] = []
    instruments: dict[str, Instrument] = {}
    for doc in docs:
        if doc.kind == "instruments":
            for entry in doc.data["instruments"]:
                instruments.setdefault(entry["symbol"], build_instrument(entry))
        elif doc.kind == "strategy":
            s = comp.strategy(doc, registry)
            if s is not None:
                strategies.append(s)
        if "rules" in doc.data:
            rules.extend(comp.rules(doc, registry))
    comp.findings.extend(check_documents(docs, rules, instruments))
    risk = [d.data for d in docs if d.kind == "risk"]
    order_limits: dict[str, dict[str, int]] = {}
    for r in risk:
        for sym, lim in r["order_limits"].items():
            order_limits.setdefault(sym, dict(lim))
    pset = PolicySet(
        revision=revision_of(docs), files=tuple(d.file for d in docs), documents=tuple(docs),
        rules=tuple(rules), strategies=tuple(strategies), instruments=instruments,
        capital=float(risk[0]["capital"]) if risk else 1_000_000.0,
        per_trade_risk_pct=float(risk[0]["per_trade_risk_pct"]) if risk else 1.0,
        order_limits=order_limits,
        warnings=tuple(sorted(f for f in comp.findings if f.severity == "warning")))
    return pset, comp.findings


def lint(paths: Iterable[str | Path], *, strict: bool = False) -> list[Finding]:
    """Every finding for the files under ``paths``, sorted by location (warnings included)."""
    docs, findings = read_documents(paths)
    _, more = compile_documents(docs)
    out = sorted(set(findings + more))
    if strict:
        out = [Finding(file=f.file, line=f.line, col=f.col, code=f.code, message=f.message)
               for f in out]
    return out


def load_policy_set(paths: Iterable[str | Path], *, strict: bool = False) -> PolicySet:
    """Load a usable policy set or raise :class:`PolicyError` with every error found."""
    paths = list(paths)
    docs, findings = read_documents(paths)
    pset, more = compile_documents(docs)
    problems = [f for f in findings + more if f.severity == "error" or strict]
    if problems:
        raise PolicyError(problems)
    return pset
