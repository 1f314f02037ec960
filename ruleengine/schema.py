"""JSON Schemas per policy kind: lookup, validation into located findings, and defaults.

The schemas are plain files in ``ruleengine/schemas/`` so an editor's YAML language server can
use the very same files for completion. jsonschema's messages are written for programmers;
here each error becomes a :class:`~ruleengine.errors.Finding` at the exact line and column of the
offending key or value, worded for a trader, with a "did you mean" where a spelling is close.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

from .errors import Finding
from .yamlsource import Document

_COMMON = "common.schema.json"


def _schema_dir() -> Any:
    return resources.files(__package__).joinpath("schemas")


@cache
def kinds() -> tuple[str, ...]:
    """Every policy kind this version understands, from the schema files shipped."""
    names = [p.name.removesuffix(".schema.json") for p in _schema_dir().iterdir()
             if p.name.endswith(".schema.json") and p.name != _COMMON]
    return tuple(sorted(names))


@cache
def schema_text(kind: str) -> str:
    name = _COMMON if kind == "common" else f"{kind}.schema.json"
    return str(_schema_dir().joinpath(name).read_text(encoding="utf-8"))


@cache
def load_schema(kind: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(schema_text(kind))
    return data


@cache
def _validator(kind: str) -> jsonschema.protocols.Validator:
    registry: Registry[Any] = Registry().with_resource(
        _COMMON, Resource.from_contents(load_schema("common")))
    cls = jsonschema.validators.validator_for(load_schema(kind))
    return cls(load_schema(kind), registry=registry)


def validate(doc: Document) -> list[Finding]:
    """Every schema problem of one document, each located; empty when the document is valid."""
    data = doc.data
    if not isinstance(data, dict):
        return [doc.finding((), "not-a-mapping", "a policy file must be a mapping that starts "
                            "with 'kind:' and 'version:'")]
    kind = data.get("kind")
    if kind is None:
        return [doc.finding((), "schema-required", "missing 'kind:'; one of: "
                            + ", ".join(kinds()))]
    if kind not in kinds():
        close = difflib.get_close_matches(str(kind), kinds(), n=1)
        hint = f" — did you mean {close[0]!r}?" if close else f"; one of: {', '.join(kinds())}"
        return [doc.finding(("kind",), "unknown-kind", f"unknown kind {kind!r}{hint}")]
    findings: list[Finding] = []
    for error in _validator(kind).iter_errors(data):
        findings.extend(_to_findings(doc, error, kind))
    return sorted(set(findings))


def _to_findings(doc: Document, error: ValidationError, kind: str) -> Iterator[Finding]:
    path = tuple(error.absolute_path)
    what = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    inst = error.instance
    value: Any = error.validator_value
    shown = _short(inst) or _kind_of(inst)  # a list or mapping is named, not printed
    if what in ("oneOf", "anyOf") and error.context:
        for chosen in _alternative_errors(error):
            yield from _to_findings(doc, chosen, kind)
        return
    if what == "additionalProperties" and isinstance(inst, dict):
        known = list(schema.get("properties", {}))
        for key in inst:
            if key in known:
                continue
            close = difflib.get_close_matches(key, known, n=1)
            hint = (f" — did you mean {close[0]!r}?" if close else
                    f"; allowed here: {', '.join(known)}" if known else "")
            yield doc.finding((*path, key), "schema-unknown-key",
                              f"unknown key {key!r}{hint}", key=True)
        return
    if what == "required" and isinstance(inst, dict):
        props = schema.get("properties", {})
        for key in value:
            if key not in inst:
                desc = _describe(props.get(key, {}))
                yield doc.finding(path, "schema-required", f"missing required key {key!r}"
                                  + (f" ({desc})" if desc else ""))
        return
    if what == "type":
        want = value
        want_text = " or ".join(want) if isinstance(want, list) else want
        yield doc.finding(path, "schema-type", f"expected {_article(want_text)}, got "
                          + f"{_kind_of(inst)} {_short(inst)}".rstrip())
        return
    if what in ("enum", "const"):
        options = value if what == "enum" else [value]
        close = difflib.get_close_matches(str(inst), [str(o) for o in options], n=1)
        hint = f" — did you mean {close[0]!r}?" if close else ""
        listed = ", ".join(str(o) for o in options)
        yield doc.finding(path, "schema-value", f"{shown} is not allowed here; expected "
                          f"{'one of ' if len(options) > 1 else ''}{listed}{hint}")
        return
    if what == "pattern":
        desc = _describe(schema)
        yield doc.finding(path, "schema-value", f"{_short(inst)} is not in the expected form"
                          + (f": {desc}" if desc else f" (pattern {value})"))
        return
    if what == "propertyNames":
        yield doc.finding(path, "schema-value", f"{error.message}")
        return
    words = {
        "minimum": "at least", "maximum": "at most", "exclusiveMinimum": "more than",
        "exclusiveMaximum": "less than", "minItems": "at least this many items:",
        "maxItems": "at most this many items:", "minLength": "at least this many characters:",
        "minProperties": "at least this many keys:", "maxProperties": "at most this many keys:",
    }
    if what in words:
        yield doc.finding(path, "schema-value", f"{shown} is not allowed here; must be "
                          f"{words[what]} {value}")
        return
    yield doc.finding(path, "schema-value", error.message)


def _alternative_errors(error: ValidationError) -> list[ValidationError]:
    """The errors of the oneOf/anyOf alternative the value was written for.

    An alternative whose basic shape does not fit (a wrong type, or a list of words offered for
    a mapping) is not what the author meant; when exactly one alternative fits, all of its
    errors are reported, else the best match among the fitting ones (or among all).
    """
    def misfit(e: ValidationError) -> bool:
        return not e.relative_path and (e.validator == "type" or (
            e.validator in ("enum", "const") and isinstance(e.instance, (dict, list))))

    branches: dict[Any, list[ValidationError]] = {}
    for e in error.context or []:
        branches.setdefault(e.relative_schema_path[0], []).append(e)
    fitting = [errs for errs in branches.values() if not any(misfit(e) for e in errs)]
    if len(fitting) == 1:
        return fitting[0]
    pool = [e for errs in fitting for e in errs] or list(error.context or [])
    return [best_match(pool)]


def _describe(schema: dict[str, Any]) -> str:
    desc = schema.get("description", "")
    if not desc and "$ref" in schema:
        desc = _resolve(schema["$ref"], {})[0].get("description", "")
    return str(desc)


def _article(word: str) -> str:
    nice = {"number": "a number", "integer": "a whole number", "string": "text",
            "boolean": "true or false", "array": "a list", "object": "a mapping (key: value)"}
    return nice.get(word, word)


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "nothing" if value is None else type(value).__name__


def _short(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return ""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- defaults ---------------------------------------------------------------------------------

def _resolve(ref: str, root: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    file, _, pointer = ref.partition("#")
    base = load_schema(file.removesuffix(".schema.json")) if file else root
    node: Any = base
    for part in pointer.strip("/").split("/"):
        if part:
            node = node[part]
    return node, base


def _effective(schema: dict[str, Any], root: dict[str, Any]) -> tuple[dict[str, Any],
                                                                       dict[str, Any]]:
    """Merge a ``$ref`` target with its siblings (2020-12 allows both)."""
    while "$ref" in schema:
        target, root = _resolve(schema["$ref"], root)
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema, root


def apply_defaults(data: dict[str, Any], kind: str) -> dict[str, Any]:
    """A copy of a *valid* document with every missing optional key set to its default."""
    root = load_schema(kind)
    out = copy.deepcopy(data)
    _fill(out, root, root)
    return out


def _fill(value: Any, schema: dict[str, Any], root: dict[str, Any]) -> None:
    schema, root = _effective(schema, root)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key, sub in props.items():
            sub_eff, _ = _effective(sub, root)
            if key not in value and sub_eff.get("default") is not None:
                value[key] = copy.deepcopy(sub_eff["default"])
            if key in value:
                _fill(value[key], sub, root)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in value:
                if key not in props:
                    _fill(value[key], extra, root)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _fill(item, schema["items"], root)


def walk_properties(kind: str) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """Every property schema of a kind as (dotted path, effective schema, required)."""
    root = load_schema(kind)
    seen: set[int] = set()

    def walk(schema: dict[str, Any], root_: dict[str, Any], prefix: str) -> Iterator[
            tuple[str, dict[str, Any], bool]]:
        schema, root_ = _effective(schema, root_)
        if id(schema) in seen and not prefix:
            return
        required = set(schema.get("required", []))
        for key, sub in schema.get("properties", {}).items():
            eff, sub_root = _effective(sub, root_)
            path = f"{prefix}.{key}" if prefix else key
            yield path, eff, key in required
            yield from walk(eff, sub_root, path)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            yield from walk(extra, root_, f"{prefix}.<name>" if prefix else "<name>")
        items = schema.get("items")
        if isinstance(items, dict):
            yield from walk(items, root_, f"{prefix}[]")
        for alt in schema.get("oneOf", []):
            if isinstance(alt, dict) and "properties" in alt:
                yield from walk(alt, root_, prefix)

    yield from walk(root, root, "")
