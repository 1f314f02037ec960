"""The policy reference for traders, generated from the sources the engine itself reads.

:func:`render_reference` builds one Markdown document (``docs/reference.md``) from the JSON
Schemas of every policy kind, the name registry (``names.yaml``), the function library and the
finding codes, so the reference cannot drift from what ``ruleengine lint`` accepts: a test
compares the committed file with a fresh rendering, and ``ruleengine docs`` rewrites it.

The output is deterministic: kinds in name order, properties in schema order, names in registry
order within fixed groups, functions in library order, codes in their table order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from .errors import CODES
from .functions import FUNCTIONS, Function
from .names import NameInfo, default_registry
from .schema import kinds, load_schema, walk_properties

#: Name groups in the order a trader meets them; any other prefix follows, alphabetically.
NAME_GROUPS: dict[str, str] = {
    "market": "The underlying index, its future and India VIX, in the rule's scope.",
    "account": "The whole trading account: capital, P&L, margin, counts.",
    "strategy": "The strategy a rule or condition is evaluated for.",
    "position": "One open leg of a position (stops, targets and leg conditions).",
    "feed": "Freshness and trust of the market data.",
    "session": "The exchange clock and calendar.",
    "operator": "What a person set from the command line.",
    "order": "The order being checked (pre-trade order checks).",
}

REGENERATE = "python3 -m ruleengine docs"

_TYPE_WORDS = {"number": "number", "integer": "whole number", "string": "text",
               "boolean": "true/false", "array": "list", "object": "mapping", "null": "nothing"}
_PLAIN_TEXT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n"}


def render_reference() -> str:
    """The whole reference as Markdown, ending in one newline."""
    parts = [_header(), _kinds_section(), _names_section(), _functions_section(),
             _codes_section()]
    return "\n\n".join(p.strip("\n") for p in parts) + "\n"


# -- header -------------------------------------------------------------------------------------

def _header() -> str:
    intro = ("Everything a policy file may say, every name an expression may read and every "
             "function it may call. This file is generated from the JSON Schemas in "
             "`ruleengine/schemas/`, the name registry `ruleengine/names.yaml`, the function "
             "library and the finding codes; do not edit it by hand. After changing any of "
             f"those, run `{REGENERATE}` (a test fails while this file is out of date).")
    return f"""\
# Policy reference

{intro}

- [Policy kinds](#policy-kinds)
- [Names expressions can read](#names-expressions-can-read)
- [Functions](#functions)
- [Finding codes](#finding-codes)"""


# -- policy kinds -------------------------------------------------------------------------------

def _kinds_section() -> str:
    lines = [
        "## Policy kinds",
        "",
        "Each YAML file holds one document that starts with `kind:` and `version:`; the kind "
        "decides which keys the file may hold. `ruleengine schema KIND` prints the JSON Schema "
        "of a kind, for editors and tools.",
        "",
        "In the tables, a key is a dotted path from the top of the file: `[]` stands for each "
        "item of a list and `<name>` for a key you choose (an underlying, an indicator name, "
        "...). A key that is not required and not written takes its default.",
        "",
        "| Kind | What it holds |",
        "| --- | --- |",
    ]
    for kind in kinds():
        desc = load_schema(kind).get("description", "")
        lines.append(f"| [`{kind}`](#kind-{kind}) | {_cell(desc)} |")
    for kind in kinds():
        lines += ["", *_kind_section(kind)]
    return "\n".join(lines)


def _kind_section(kind: str) -> list[str]:
    schema = load_schema(kind)
    lines = [f"### kind: `{kind}`", ""]
    if schema.get("description"):
        lines += [_text(schema["description"]), ""]
    lines += ["| Key | Type | Default | Required | Allowed | Description |",
              "| --- | --- | --- | --- | --- | --- |"]
    for path, eff, required in walk_properties(kind):
        lines.append("| " + " | ".join([
            f"`{_cell(path)}`",
            _cell(_type_of(eff, kind)),
            _cell(_default_of(eff)),
            "yes" if required else "",
            _cell(_allowed(eff, kind)),
            _cell(str(eff.get("description", ""))),
        ]) + " |")
    return lines


def _resolve(schema: Any, kind: str) -> dict[str, Any]:
    """Follow ``$ref`` (into this kind's schema or the shared one), siblings winning."""
    for _ in range(16):  # refs chain a step or two; a cycle must not hang the docs
        if not isinstance(schema, dict) or "$ref" not in schema:
            break
        file, _, pointer = str(schema["$ref"]).partition("#")
        bases = [file.removesuffix(".schema.json")] if file else [kind, "common"]
        target: Any = None
        for base in bases:
            node: Any = load_schema(base)
            for part in pointer.strip("/").split("/"):
                node = node.get(part) if isinstance(node, dict) and part else node
            if isinstance(node, dict):
                target = node
                break
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**(target or {}), **rest}
    return schema if isinstance(schema, dict) else {}


def _type_of(eff: dict[str, Any], kind: str) -> str:
    if "oneOf" in eff or "anyOf" in eff:
        alts = [_type_of(_resolve(a, kind), kind) for a in eff.get("oneOf", eff.get("anyOf", []))]
        return " or ".join(dict.fromkeys(a for a in alts if a))
    declared = eff.get("type")
    if declared is None:
        values = eff.get("enum", [eff["const"]] if "const" in eff else [])
        declared = sorted({_json_type(v) for v in values})
    names = declared if isinstance(declared, list) else [declared]
    words = []
    for name in names:
        word = _TYPE_WORDS.get(str(name), str(name))
        if name == "array" and isinstance(eff.get("items"), dict):
            item = _type_of(_resolve(eff["items"], kind), kind)
            word = f"list of {_plural(item)}" if item else word
        words.append(word)
    return " or ".join(words)


def _plural(word: str) -> str:
    return {"text": "text", "true/false": "true/false", "mapping": "mappings",
            "number": "numbers", "whole number": "whole numbers"}.get(word, word)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object" if isinstance(value, dict) else "null"


def _default_of(eff: dict[str, Any]) -> str:
    if eff.get("default") is None:
        return "—"
    return f"`{_yaml(eff['default'])}`"


def _yaml(value: Any) -> str:
    """A value in YAML flow style, the way it would be written in a policy."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return _num(value)
    if isinstance(value, str):
        plain = _PLAIN_TEXT.match(value) and value.lower() not in _YAML_WORDS
        return value if plain else json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in value.items()) + "}"
    return str(value)


def _num(value: float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _allowed(eff: dict[str, Any], kind: str) -> str:
    parts: list[str] = []
    if "const" in eff:
        parts.append(f"`{_yaml(eff['const'])}`")
    if "enum" in eff:
        parts.append(_values(eff["enum"]))
    parts.extend(_range(eff))
    if "pattern" in eff:
        parts.append(_form(str(eff["pattern"])))
    for alt in eff.get("oneOf", []):
        alt = _resolve(alt, kind)
        if "enum" in alt and alt.get("type") != "object":
            parts.append(_values(alt["enum"]))
    items = _resolve(eff["items"], kind) if isinstance(eff.get("items"), dict) else {}
    if "enum" in items:
        parts.append("each one of " + _values(items["enum"]))
    elif "pattern" in items:
        parts.append("each " + _form(str(items["pattern"])))
    counts = [("minItems", "at least", "item"), ("maxItems", "at most", "item"),
              ("minProperties", "at least", "key"), ("maxProperties", "at most", "key"),
              ("minLength", "at least", "character"), ("maxLength", "at most", "character")]
    if eff.get("minProperties") == eff.get("maxProperties") == 1:
        counts = [c for c in counts if "Properties" not in c[0]]
        parts.append("exactly one key")
    for key, bound, unit in counts:
        n = eff.get(key)
        if isinstance(n, int) and not (key == "minLength" and n == 1):  # 1: "not empty"
            parts.append(f"{bound} {n} {unit}{'' if n == 1 else 's'}")
    if eff.get("uniqueItems"):
        parts.append("no repeats")
    names = _resolve(eff["propertyNames"], kind) if isinstance(eff.get("propertyNames"),
                                                                 dict) else {}
    if names:
        desc = str(names.get("description", "")).rstrip(".")
        parts.append("keys: " + (_sentence_part(desc) if desc else
                                 _form(str(names.get("pattern", "")))))
    return "; ".join(p for p in parts if p)


def _values(values: Iterable[Any]) -> str:
    return ", ".join(f"`{_yaml(v)}`" for v in values)


def _range(eff: dict[str, Any]) -> list[str]:
    bounds = [("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"),
              ("exclusiveMaximum", "<")]
    return [f"{sign} {_num(eff[key])}" for key, sign in bounds
            if isinstance(eff.get(key), (int, float)) and not isinstance(eff.get(key), bool)]


def _form(pattern: str) -> str:
    """A pattern named by the shared definition that declares it, else shown as written."""
    for definition in load_schema("common").get("$defs", {}).values():
        if isinstance(definition, dict) and definition.get("pattern") == pattern:
            desc = str(definition.get("description", "")).rstrip(".")
            if desc:
                return _sentence_part(desc)
    return f"pattern `{pattern}`"


def _sentence_part(text: str) -> str:
    """"A time of day" → "a time of day"; "HH:MM or ..." and "NIFTY ..." stay as written."""
    word = text.split(maxsplit=1)[0] if text.strip() else ""
    if word[:1].isupper() and not any(c.isupper() for c in word[1:]):
        return text[0].lower() + text[1:]
    return text


# -- names ----------------------------------------------------------------------------------------

def _names_section() -> str:
    registry = default_registry()
    groups: dict[str, list[NameInfo]] = {}
    for name, info in registry.items():
        groups.setdefault(name.partition(".")[0], []).append(info)
    order = [g for g in NAME_GROUPS if g in groups] + sorted(set(groups) - set(NAME_GROUPS))
    indicator_types = _indicator_types()
    lines = [
        "## Names expressions can read",
        "",
        "Conditions (`when:`, `entry:`, `exit:`, ...) and message templates read these names. A "
        "name whose value cannot be known yet (no price, a stale feed) never counts as fine: a "
        "risk rule that cannot be evaluated blocks new entries in its scope. Times are seconds "
        "since midnight IST (compare them with `t(\"HH:MM\")`); percentages are written as "
        "numbers (3 means 3 %). `ruleengine names` prints the same list.",
        "",
        "A strategy's conditions can also read `ind.<name>` (a number) for each indicator it "
        "declares under `indicators:`"
        + (f" (types: {', '.join(f'`{t}`' for t in indicator_types)})" if indicator_types
           else "") + "; for example `ind.ema_fast > ind.ema_slow`.",
        "",
        " · ".join(f"[`{g}.*`](#{g})" for g in order),
    ]
    for group in order:
        lines += ["", f"### {group}", ""]
        if group in NAME_GROUPS:
            lines += [NAME_GROUPS[group], ""]
        lines += ["| Name | Type | Unit | Range | Description |",
                  "| --- | --- | --- | --- | --- |"]
        for info in groups[group]:
            lines.append(f"| `{info.name}` | {info.type} | {_cell(info.unit)} | "
                         f"{_name_range(info)} | {_cell(info.description)} |")
    return "\n".join(lines)


def _name_range(info: NameInfo) -> str:
    low, high = info.low, info.high
    if low is not None and high is not None:
        return f"{_num(low)} to {_num(high)}"
    if low is not None:
        return f"≥ {_num(low)}"
    if high is not None:
        return f"≤ {_num(high)}"
    return ""


def _indicator_types() -> list[str]:
    if "strategy" not in kinds():
        return []
    for path, eff, _ in walk_properties("strategy"):
        if path == "indicators.<name>.type":
            return [str(v) for v in eff.get("enum", [])]
    return []


# -- functions ------------------------------------------------------------------------------------

def _functions_section() -> str:
    lines = [
        "## Functions",
        "",
        "The only functions an expression may call. Each is pure: the same arguments always "
        "give the same result.",
        "",
        "| Function | Returns | Description |",
        "| --- | --- | --- |",
    ]
    for name, fn in FUNCTIONS.items():
        note = " Its argument must be written in the policy, not computed." \
            if fn.const_args else ""
        lines.append(f"| `{_cell(_signature(name, fn))}` | {fn.returns} | "
                     f"{_cell(fn.doc + note)} |")
    return "\n".join(lines)


def _signature(name: str, fn: Function) -> str:
    args = [f"{a[1:]}, ..." if a.startswith("*") else a for a in fn.args]
    return f"{name}({', '.join(args)})"


# -- finding codes --------------------------------------------------------------------------------

def _codes_section() -> str:
    lines = [
        "## Finding codes",
        "",
        "`ruleengine lint` reports each problem as `file:line:col: code: message`. Every code "
        "has a page in [`docs/errors/`](errors/README.md) with an example and the fix.",
        "",
        "| Code | Meaning |",
        "| --- | --- |",
    ]
    for code, summary in CODES.items():
        lines.append(f"| [`{code}`](errors/{code}.md) | {_cell(summary)} |")
    return "\n".join(lines)


# -- Markdown helpers -----------------------------------------------------------------------------

def _text(value: str) -> str:
    return " ".join(str(value).split())


def _cell(value: str) -> str:
    """Text safe inside a table cell: one line, pipes escaped."""
    return _text(value).replace("|", "\\|")
