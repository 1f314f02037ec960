"""The JSON Schemas: valid, documented, defaulted, and turned into located findings."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from typing import Any

import jsonschema
import pytest

from ruleengine.cli import main
from ruleengine.schema import apply_defaults, kinds, load_schema, validate, walk_properties
from ruleengine.yamlsource import load_text

SCHEMA_FILES = sorted(p.name for p in resources.files("ruleengine").joinpath("schemas").iterdir()
                      if p.name.endswith(".schema.json"))


def test_kinds_include_the_foundation_kinds() -> None:
    assert {"risk", "strategy", "instruments"} <= set(kinds())
    assert "common" not in kinds()


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_schema_file_is_valid_draft_2020_12(name: str) -> None:
    text = resources.files("ruleengine").joinpath("schemas", name).read_text(encoding="utf-8")
    schema = json.loads(text)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema.get("description"), f"{name} needs a top-level description"


@pytest.mark.parametrize("kind", kinds())
def test_every_property_is_described_and_defaulted(kind: str) -> None:
    props = list(walk_properties(kind))
    assert props, f"{kind} defines no properties"
    undescribed = [path for path, schema, _ in props if not schema.get("description")]
    assert not undescribed, f"{kind}: properties without a description: {undescribed}"
    no_default = [path for path, schema, required in props
                  if not required and "default" not in schema]
    assert not no_default, f"{kind}: optional properties without a default: {no_default}"


@pytest.mark.parametrize("kind", kinds())
def test_kind_property_is_pinned(kind: str) -> None:
    schema = load_schema(kind)
    assert schema["properties"]["kind"].get("const") == kind
    assert {"kind", "version"} <= set(schema["required"])


def test_walk_properties_reaches_nested_rule_fields() -> None:
    paths = {path: required for path, _, required in walk_properties("risk")}
    assert paths["rules[].when"] is True
    assert paths["rules[].severity"] is False
    assert paths["order_limits.<name>.max_qty"] is False
    assert paths["kind"] is True


def codes(text: str) -> list[tuple[str, int, int]]:
    return [(f.code, f.line, f.col) for f in validate(load_text(text, "p.yaml"))]


def test_valid_document_has_no_findings() -> None:
    assert codes("kind: risk\nversion: 1\ncapital: 500000\n") == []


@pytest.mark.parametrize(("text", "expected"), [
    ("- a\n", [("not-a-mapping", 1, 1)]),
    ("just text\n", [("not-a-mapping", 1, 1)]),
    ("version: 1\n", [("schema-required", 1, 1)]),
    ("kind: rsik\nversion: 1\n", [("unknown-kind", 1, 7)]),
    ("kind: risk\n", [("schema-required", 1, 1)]),
    ("kind: risk\nversion: 1\ncapitol: 5\n", [("schema-unknown-key", 3, 1)]),
    ("kind: risk\nversion: 1\ncapital: lots\n", [("schema-type", 3, 10)]),
    ("kind: risk\nversion: 1\ncapital: 0\n", [("schema-value", 3, 10)]),
    ("kind: risk\nversion: 1\norder_limits: {nifty: {max_lots: 2}}\n",
     [("schema-value", 3, 15)]),
    ("kind: risk\nversion: 1\nrules:\n  - {id: a, when: 'true', then: [stop]}\n",
     [("schema-value", 4, 34)]),
    ("kind: risk\nversion: 1\nrules:\n  - {id: a, when: 'true', then: []}\n",
     [("schema-value", 4, 33)]),
    ("kind: risk\nversion: 1\nrules:\n  - {id: a, when: 'true', then: [halt], rearm: soon}\n",
     [("schema-value", 4, 48)]),
    ("kind: risk\nversion: 1\nrules:\n  - {id: a, when: 'true', then: [halt],"
     " rearm: {mode: auto, hold: 5 min}}\n", [("schema-value", 4, 67)]),
    ("kind: risk\nversion: 1\nrules:\n  - {id: a, when: 'true', then: [halt],"
     " rearm: {mode: auto, hodl: 5s}}\n", [("schema-unknown-key", 4, 61)]),
])
def test_schema_findings_are_located(text: str, expected: list[tuple[str, int, int]]) -> None:
    assert codes(text) == expected


def test_all_problems_reported_at_once() -> None:
    text = "kind: risk\nversion: 1\ncapitol: 5\nper_trade_risk_pct: 200\nrules: nope\n"
    assert codes(text) == [("schema-unknown-key", 3, 1), ("schema-value", 4, 21),
                           ("schema-type", 5, 8)]


def test_messages_suggest_spellings() -> None:
    doc = load_text("kind: risk\nversion: 1\nrules:\n  - id: a\n    when: 'true'\n"
                    "    then: [halt]\n    severty: critical\n    scope: acount\n", "p.yaml")
    messages = [f.message for f in validate(doc)]
    assert any("did you mean 'severity'?" in m for m in messages)
    assert any("did you mean 'account'?" in m for m in messages)
    kind = validate(load_text("kind: stratgy\nversion: 1\n", "p.yaml"))
    assert "did you mean 'strategy'?" in kind[0].message


@pytest.mark.parametrize(("value", "message"), [
    ("soon", "'soon' is not allowed here; expected one of manual, next_session, auto"),
    ("[manual]", "a list is not allowed here; expected one of manual, next_session, auto"
     " — did you mean 'manual'?"),
    ("{mode: auto, hold: 5 min}", "'5 min' is not in the expected form: A duration such as "
     "90s, 15m or 1h (ms, s, m and h are understood)."),
    ("{mode: auto, hodl: 5s}", "unknown key 'hodl' — did you mean 'hold'?"),
    ("{mode: later}", "'later' is not allowed here; expected one of manual, next_session, "
     "auto"),
])
def test_one_of_reports_the_alternative_that_was_meant(value: str, message: str) -> None:
    text = f"kind: risk\nversion: 1\nrules:\n  - id: a\n    when: 'true'\n    then: [halt]\n" \
        f"    rearm: {value}\n"
    assert [f.message for f in validate(load_text(text, "p.yaml"))] == [message]


def test_lists_and_mappings_are_named_in_messages() -> None:
    [empty] = validate(load_text("kind: risk\nversion: 1\nrules:\n  - id: a\n    when: x\n"
                                 "    then: []\n", "p.yaml"))
    assert empty.message == "a list is not allowed here; must be at least this many items: 1"
    [wrong] = validate(load_text("kind: risk\nversion: 1\nrules: {a: 1}\n", "p.yaml"))
    assert wrong.message == "expected a list, got a mapping"


def test_required_message_describes_the_key() -> None:
    [finding] = validate(load_text("kind: risk\nversion: 1\nrules:\n  - id: a\n    when: x\n",
                                   "p.yaml"))
    assert finding.code == "schema-required"
    assert "'then'" in finding.message and "Actions to take" in finding.message


def test_defaults_applied_to_risk() -> None:
    data: dict[str, Any] = {"kind": "risk", "version": 1,
                            "order_limits": {"NIFTY": {"max_lots": 5}},
                            "rules": [{"id": "a", "when": "true", "then": ["halt"]}]}
    out = apply_defaults(data, "risk")
    assert out["capital"] == 1_000_000 and out["per_trade_risk_pct"] == 1
    assert out["description"] == ""
    assert out["order_limits"]["NIFTY"] == {"max_lots": 5, "max_qty": 650}
    assert out["rules"][0] == {"id": "a", "when": "true", "then": ["halt"], "description": "",
                               "scope": "account", "targets": [], "severity": "warning",
                               "message": "", "cooldown": "0s", "rearm": "manual",
                               "overridable": True}
    assert "capital" not in data and "scope" not in data["rules"][0]  # input untouched


def test_defaults_applied_to_strategy() -> None:
    data = {"kind": "strategy", "version": 1, "id": "s", "underlying": "NIFTY",
            "legs": [{"id": "ce", "side": "SELL"}]}
    out = apply_defaults(data, "strategy")
    assert out["entry_window"] == {"start": "09:20", "end": "15:00"}
    assert out["entry"] == "true" and out["exit"] == "false"
    assert out["legs"][0]["lots"] == 1 and out["legs"][0]["strike"] == "ATM"
    assert "stop_loss" not in out["legs"][0]  # a null default means "absent"
    assert out["sizing"] == {"mode": "risk", "max_units": 1}
    assert out["reentry"] == {"enabled": False, "cooldown": "15m", "max_reentries": 1}


def test_defaults_do_not_overwrite_written_values() -> None:
    data = {"kind": "strategy", "version": 1, "id": "s", "underlying": "NIFTY",
            "entry_window": {"start": "10:00"}, "legs": [{"id": "ce", "side": "BUY",
                                                          "lots": 3}]}
    out = apply_defaults(data, "strategy")
    assert out["entry_window"] == {"start": "10:00", "end": "15:00"}
    assert out["legs"][0]["lots"] == 3


def test_cli_schema_prints_valid_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "risk"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == load_schema("risk")
    jsonschema.Draft202012Validator.check_schema(printed)


def test_cli_schema_subprocess() -> None:
    proc = subprocess.run([sys.executable, "-m", "ruleengine.cli", "schema", "risk"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["title"] == "ruleengine risk policy"
