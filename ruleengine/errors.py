"""One exception tree for the whole package, and the findings that policy checks report.

A trader fixing a policy needs every problem at once, in file order, each with a location and a
code they can look up under ``docs/errors/``. So checks never raise on the first problem: they
collect :class:`Finding` objects, and only the caller that must stop (the loader, the CLI)
raises :class:`PolicyError` carrying all of them.

Exception tree::

    RuleEngineError
     ├── PolicyError            a policy set failed to load, validate or compile (has .findings)
     ├── ExpressionError        one expression could not be compiled (has .finding)
     ├── EvaluationError        a compiled expression failed at run time (caught by the engine)
     ├── AuditError             the audit store refused a write or failed its hash-chain check
     ├── ConfigError            a run was configured with something that does not exist
     └── AdapterError           a feed, broker or alert sink failed
          ├── FeedError
          ├── AlertError
          └── BrokerError
               ├── BrokerRateLimited   the broker answered "too many requests"
               ├── BrokerTimeout       no answer; the order may or may not exist at the broker
               └── BrokerRejected      the broker refused the request
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]

#: Every finding code with a one-line summary. ``docs/errors/<code>.md`` explains each one,
#: and a test keeps this table and that folder in step.
CODES: dict[str, str] = {
    "yaml-syntax": "the file is not valid YAML",
    "yaml-forbidden-tag": "a YAML tag other than the plain scalar, list and mapping tags",
    "yaml-duplicate-key": "the same key appears twice in one mapping",
    "yaml-too-large": "the file is larger than the loader accepts",
    "yaml-too-deep": "lists or mappings nested deeper than the loader accepts",
    "yaml-alias-bomb": "aliases expand to more nodes than the loader accepts",
    "not-a-mapping": "the document is not a mapping with kind and version",
    "unknown-kind": "kind names no policy kind this version knows",
    "schema-unknown-key": "a key the schema of this kind does not define",
    "schema-required": "a required key is missing",
    "schema-type": "a value has the wrong type",
    "schema-value": "a value is outside what the schema allows",
    "expr-syntax": "an expression is not valid expression syntax",
    "expr-forbidden": "an expression uses a construct that is not allowed",
    "expr-too-large": "an expression could produce an unbounded value",
    "unknown-name": "an expression or message reads a name the registry does not define",
    "unknown-function": "an expression calls a function that is not in the library",
    "type-mismatch": "operand types do not fit the operator, function or context",
    "constant-condition": "a condition that always or never fires",
    "template-error": "a message template cannot be formatted",
    "duplicate-id": "two rules, strategies or instruments share an id",
    "unknown-reference": "a policy names a strategy or instrument that is not defined",
    "missing-daily-loss-limit": "no risk rule halts trading on the day's loss",
    "missing-kill-switch": "no risk rule halts trading on the operator kill switch",
    "qty-above-freeze": "a per-order quantity limit above the exchange freeze quantity",
    "lots-look-like-quantity": "a lot count that looks like a quantity typed into a lots field",
    "schedule-order": "dated schedule entries are not in date order or repeat a date",
}


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class Finding:
    """One problem in one place. Ordered by location so reports read top to bottom."""

    file: str
    line: int
    col: int
    code: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        tag = "" if self.severity == "error" else " (warning)"
        return f"{self.file}:{self.line}:{self.col}: {self.code}{tag}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
        }


class RuleEngineError(Exception):
    """Root of every error this package raises on purpose."""


class PolicyError(RuleEngineError):
    """A policy set could not be used; ``findings`` holds every problem, sorted by location."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = sorted(findings)
        super().__init__("\n".join(str(f) for f in self.findings) or "policy error")


class ExpressionError(RuleEngineError):
    """An expression failed to compile; carries the finding with its source location."""

    def __init__(self, finding: Finding) -> None:
        self.finding = finding
        super().__init__(str(finding))


class EvaluationError(RuleEngineError):
    """A compiled expression failed while evaluating; the engine resolves it to the safe side."""


class AuditError(RuleEngineError):
    """The audit store refused a write or its hash chain does not verify."""


class ConfigError(RuleEngineError):
    """A run names a feed, broker, scenario or file that does not exist."""


class AdapterError(RuleEngineError):
    """A feed, broker or alert sink failed."""


class FeedError(AdapterError):
    """A market-data feed failed or produced data it cannot stand behind."""


class AlertError(AdapterError):
    """An alert sink could not deliver a message."""


class BrokerError(AdapterError):
    """The broker failed a request."""


class BrokerRateLimited(BrokerError):
    """The broker said "too many requests"; back off before the next request."""


class BrokerTimeout(BrokerError):
    """No answer in time: the order may exist at the broker, so look it up before retrying."""


class BrokerRejected(BrokerError):
    """The broker refused the request; retrying the same request will not help."""
