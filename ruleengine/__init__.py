"""ruleengine: a deterministic safety and strategy layer for Indian index-option trading.

The public API is small on purpose: load and check a policy set, run it through the engine
(directly, tick by tick, or as a whole run with adapters), and read the audit store.
"""

from .corebuild import core_build  # first: decides compiled or pure before a core module imports

# isort: split
from .audit import AuditStore
from .decisions import Decision
from .engine import Engine, TickResult
from .errors import (
    AdapterError,
    AuditError,
    BrokerError,
    ConfigError,
    EvaluationError,
    ExpressionError,
    FeedError,
    Finding,
    PolicyError,
    RuleEngineError,
)
from .policyset import PolicySet, lint, load_policy_set
from .runner import RunConfig, RunOutcome, run

__all__ = [
    "AdapterError",
    "AuditError",
    "AuditStore",
    "BrokerError",
    "ConfigError",
    "Decision",
    "Engine",
    "EvaluationError",
    "ExpressionError",
    "FeedError",
    "Finding",
    "PolicyError",
    "PolicySet",
    "RuleEngineError",
    "RunConfig",
    "RunOutcome",
    "TickResult",
    "core_build",
    "lint",
    "load_policy_set",
    "run",
]
