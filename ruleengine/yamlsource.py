"""Safe YAML loading that remembers where every value came from.

Policies are written by people and may be hostile or broken, so loading is bounded before any
object is built: the file size is checked first, then one streaming pass over parser events
bounds nesting depth and refuses every tag that is not a plain scalar, list or mapping (so
``!!python/object`` never reaches a constructor). That pass also counts values with every alias
expanded, so a "billion laughs" file stops at the alias that passes the node budget, and a file
that simply holds too many values is refused as too large. Nodes are then converted by hand.
Every value's line and column are kept so later checks can point at the exact place.

Parsing uses libyaml's C parser when PyYAML was built with it (same events, same marks, many
times faster), else the pure-Python one. libyaml words its syntax errors tersely and stops at
its own nesting bound, so when it refuses a file the pure-Python parser reads the file again:
a broken file gets the same message and location either way. (libyaml follows the YAML spec a
little more closely: it accepts a tab between tokens on a line, or '?' inside a plain value in
a flow list, which the pure-Python parser refuses as a syntax error.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeAlias

import yaml

from .errors import Finding, PolicyError

#: Loader safety bounds. These protect the process, they are not trading parameters.
MAX_BYTES = 1_000_000
MAX_DEPTH = 64
MAX_NODES = 100_000

Path_ = tuple[str | int, ...]

_Loader: TypeAlias = "type[yaml.SafeLoader] | type[yaml.CSafeLoader]"  # no CSafeLoader without C
_PURE: _Loader = yaml.SafeLoader
#: The parser tried first: libyaml's when PyYAML has it.
_FAST: _Loader = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader

_STANDARD_TAG = "tag:yaml.org,2002:"

_PLAIN_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:timestamp",
    "!",
}


@dataclass(frozen=True, slots=True)
class Loc:
    """A 1-based line and column, and how the scalar there was written (for column maths)."""

    line: int
    col: int
    style: str | None = None


@dataclass(slots=True)
class Document:
    """One loaded YAML document: plain data plus the location of every value and key."""

    file: str
    data: Any
    locs: dict[Path_, Loc] = field(default_factory=dict)
    key_locs: dict[Path_, Loc] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def loc(self, path: Path_) -> Loc:
        """The location of ``path``, or of its nearest ancestor that exists in the file."""
        p = tuple(path)
        while p not in self.locs and p:
            p = p[:-1]
        return self.locs.get(p, Loc(1, 1))

    def key_loc(self, path: Path_) -> Loc:
        return self.key_locs.get(tuple(path)) or self.loc(path)

    def finding(self, path: Path_, code: str, message: str, *, key: bool = False,
                severity: str = "error") -> Finding:
        where = self.key_loc(path) if key else self.loc(path)
        return Finding(file=self.file, line=where.line, col=where.col, code=code,
                       message=message, severity=severity)  # type: ignore[arg-type]


def _mark(mark: Any) -> Any:
    """Events always carry a mark when parsed from text; fall back to the file start."""
    return mark if mark is not None else yaml.Mark("", 0, 0, 0, "", 0)


def _fail(file: str, line: int, col: int, code: str, message: str) -> PolicyError:
    return PolicyError([Finding(file=file, line=line, col=col, code=code, message=message)])


def load_file(path: str | Path, display: str | None = None) -> Document:
    """Load one policy file; raises :class:`PolicyError` with a located finding on any problem."""
    p = Path(path)
    name = display or str(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise _fail(name, 1, 1, "yaml-syntax", f"cannot read file: {exc.strerror}") from exc
    if size > MAX_BYTES:
        raise _fail(name, 1, 1, "yaml-too-large",
                    f"file is {size:,} bytes; policy files may be at most {MAX_BYTES:,} bytes")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(name, 1, 1, "yaml-syntax", f"file is not UTF-8 text: {exc.reason}") from exc
    return load_text(text, name)


def load_text(text: str, file: str = "<string>") -> Document:
    """Load YAML text as one document; see the module docstring for the bounds applied."""
    if len(text) > MAX_BYTES:
        raise _fail(file, 1, 1, "yaml-too-large",
                    f"text is {len(text):,} characters; at most {MAX_BYTES:,} are accepted")
    try:
        try:
            node = _parse(text, file, _FAST)
        except (yaml.YAMLError, UnicodeEncodeError):  # libyaml cannot take lone surrogates
            if _FAST is _PURE:
                raise
            node = _parse(text, file, _PURE)  # the wording and place the docs show
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            start = exc.context_mark
            since = f" that starts at line {start.line + 1}, column {start.column + 1}" \
                if start and mark and start.line != mark.line else ""
            problem = f"{exc.problem} ({exc.context}{since})"
        raise _fail(file, line, col, "yaml-syntax", problem) from exc
    except yaml.YAMLError as exc:  # pragma: no cover - PyYAML raises marked errors in practice
        raise _fail(file, 1, 1, "yaml-syntax", str(exc)) from exc
    doc = Document(file=file, data=None, lines=text.splitlines())
    if node is None:
        return doc
    budget = [MAX_NODES]
    doc.data = _convert(node, (), doc, budget, 0)
    return doc


def _parse(text: str, file: str, loader: _Loader) -> yaml.Node | None:
    """Scan the events for the bounds, then compose the node tree, both with ``loader``."""
    _scan_events(text, file, loader)
    return yaml.compose(text, Loader=loader)


def _scan_events(text: str, file: str, loader: _Loader) -> None:
    """One streaming pass that bounds depth and refuses unsafe tags before any node is built.

    It also measures what each anchor expands to (values, and nesting below it), so an alias
    that would blow the node budget or the depth bound is reported where that alias is written.
    A file whose own values pass the budget is refused as too large, at the value that passes.
    """
    depth = 0
    documents = 0
    total = 0  # values in the document with every alias expanded
    copied = 0  # of those, the values aliases stand for
    anchors: dict[str, tuple[int, int]] = {}  # anchor -> (values, depth below it)
    open_: list[list[Any]] = [[None, 0, 0]]  # per open collection: anchor, values, depth below
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.ScalarEvent):
            _check_tag(file, event)
            if event.anchor:
                anchors[event.anchor] = (1, 0)
            size, below = 1, 0
        elif isinstance(event, yaml.AliasEvent):
            size, below = anchors.get(event.anchor or "", (1, 0))
        elif isinstance(event, yaml.CollectionStartEvent):
            _check_tag(file, event)
            depth += 1
            if depth > MAX_DEPTH:
                m = _mark(event.start_mark)
                raise _fail(file, m.line + 1, m.column + 1, "yaml-too-deep",
                            f"nesting deeper than {MAX_DEPTH} levels")
            total += 1
            if total > MAX_NODES:
                _too_many(file, event, total, copied)
            open_.append([event.anchor, 1, 0])
            continue
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
            if len(open_) > 1:
                anchor, size, below = open_.pop()
                if anchor:
                    anchors[anchor] = (size, below + 1)
                open_[-1][1] += size
                open_[-1][2] = max(open_[-1][2], below + 1)
            continue
        else:
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    m = _mark(event.start_mark)
                    raise _fail(file, m.line + 1, m.column + 1, "yaml-syntax",
                                "a policy file holds one YAML document; found a second '---'")
            continue
        # A scalar, or an alias standing for everything under its anchor.
        total += size
        if isinstance(event, yaml.AliasEvent):
            copied += size
        parent = open_[-1]
        parent[1] += size
        if below > parent[2]:
            parent[2] = below
        if total > MAX_NODES:
            _too_many(file, event, total, copied)
        if depth + below > MAX_DEPTH:
            m = _mark(event.start_mark)
            raise _fail(file, m.line + 1, m.column + 1, "yaml-too-deep",
                        f"nesting deeper than {MAX_DEPTH} levels (through aliases)")


def _check_tag(file: str, event: yaml.Event) -> None:
    tag = getattr(event, "tag", None)
    if tag is not None and tag not in _PLAIN_TAGS:
        m = _mark(event.start_mark)
        raise _fail(file, m.line + 1, m.column + 1, "yaml-forbidden-tag",
                    f"tag {_tag_as_written(tag)!r} is not allowed; policies hold plain values, "
                    "lists and mappings only")


def _too_many(file: str, event: yaml.Event, total: int, copied: int) -> NoReturn:
    """Refuse a document that passed the value budget: an alias bomb, or simply too large.

    It is an alias bomb when the alias just read pushed the count over, or when aliases
    supplied most of the values; otherwise the file holds too many values of its own.
    """
    m = _mark(event.start_mark)
    if isinstance(event, yaml.AliasEvent) or copied > total - copied:
        raise _fail(file, m.line + 1, m.column + 1, "yaml-alias-bomb",
                    f"aliases expand to more than {MAX_NODES:,} values")
    copies = f", {copied:,} of them copied by aliases" if copied else ""
    raise _fail(file, m.line + 1, m.column + 1, "yaml-too-large",
                f"file holds more than {MAX_NODES:,} values{copies}; policy files may hold at "
                f"most {MAX_NODES:,}, counting keys and list items")


def _tag_as_written(tag: str) -> str:
    """``tag:yaml.org,2002:python/name:x`` → ``!!python/name:x``, the way people write it."""
    if tag.startswith("!"):
        return tag  # a local tag such as '!custom' is kept as it is
    if tag.startswith(_STANDARD_TAG):
        return "!!" + tag.removeprefix(_STANDARD_TAG)
    return f"!<{tag}>"


_constructor = yaml.constructor.SafeConstructor()


def _convert(node: yaml.Node, path: Path_, doc: Document, budget: list[int], depth: int) -> Any:
    budget[0] -= 1
    m = node.start_mark
    if budget[0] < 0:
        raise _fail(doc.file, m.line + 1, m.column + 1, "yaml-alias-bomb",
                    f"aliases expand to more than {MAX_NODES:,} values")
    if depth > MAX_DEPTH:  # aliases can nest a shallow text deeply
        raise _fail(doc.file, m.line + 1, m.column + 1, "yaml-too-deep",
                    f"nesting deeper than {MAX_DEPTH} levels (through aliases)")
    # libyaml marks a plain scalar with style '', the pure-Python parser with None.
    style = (node.style or None) if isinstance(node, yaml.ScalarNode) else None
    doc.locs.setdefault(path, Loc(m.line + 1, m.column + 1, style))
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            km = key_node.start_mark
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _fail(doc.file, km.line + 1, km.column + 1, "yaml-forbidden-tag",
                            "merge keys ('<<') are not supported; write the values out")
            if not isinstance(key_node, yaml.ScalarNode):
                raise _fail(doc.file, km.line + 1, km.column + 1, "yaml-syntax",
                            "mapping keys must be plain text")
            key = str(key_node.value)
            if key in out:
                first = doc.key_locs[(*path, key)]
                raise _fail(doc.file, km.line + 1, km.column + 1, "yaml-duplicate-key",
                            f"key {key!r} appears twice in this mapping (first at line "
                            f"{first.line}); YAML would silently keep only the last one")
            doc.key_locs[(*path, key)] = Loc(km.line + 1, km.column + 1)
            out[key] = _convert(value_node, (*path, key), doc, budget, depth + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, i), doc, budget, depth + 1)
                for i, item in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)
    return _scalar(node, doc)


def _scalar(node: yaml.ScalarNode, doc: Document) -> Any:
    tag = node.tag
    m = node.start_mark
    try:
        if tag == "tag:yaml.org,2002:int":
            return _constructor.construct_yaml_int(node)
        if tag == "tag:yaml.org,2002:float":
            value = _constructor.construct_yaml_float(node)
            if not math.isfinite(value):
                raise _fail(doc.file, m.line + 1, m.column + 1, "schema-value",
                            f"{node.value!r} is not a finite number")
            return value
        if tag == "tag:yaml.org,2002:bool":
            return _constructor.construct_yaml_bool(node)
        if tag == "tag:yaml.org,2002:null":
            return None
    except ValueError as exc:
        raise _fail(doc.file, m.line + 1, m.column + 1, "schema-value",
                    f"cannot read number {str(node.value)[:40]!r}: {exc}") from exc
    # Strings, and timestamps kept as the text written (dates are validated by the schema).
    return str(node.value)
