"""The values expressions read, as the engine builds them each tick."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Mapping
from pathlib import Path

from adapters.factory import synthetic_feed
from ruleengine.context import ACCOUNT_EXTRA, FEED_EXTRA, MARKET_EXTRA, VIX_EXTRA, Reads
from ruleengine.engine import Engine, _names_read
from ruleengine.expr import CompiledExpr, Template
from ruleengine.policyset import load_policy_set
from ruleengine.runner import batches

REPO = Path(__file__).resolve().parents[1]

# One term per name the shipped set does not read, each false on a normal day, joined by `or`
# so that every one of them is read on every tick.
READS_EVERY_EXTRA = " or ".join([
    "market.atm_strike < 1", "market.range_pct > 90", "market.prev_close < 1",
    "market.open < 1", "market.day_high < 1", "market.day_low < 1",
    "market.vix_prev_close < 0.01", "market.vix_change_pct > 900", "market.vix_day_low < 0.01",
    "feed.chain_age_s > 86000", 'feed.source == "no-such-feed"', "feed.in_auction",
    "feed.suspect", "account.capital < 1", "account.equity < 1",
    "account.realized_pnl < -1e12", "account.unrealized_pnl < -1e12", "account.charges < 0",
    "account.peak_equity < 1", "account.drawdown_pct > 99", "account.open_orders > 1000",
    "account.orders_today > 100000"])


def test_names_only_some_rule_reads_are_built_when_one_does(tmp_path: Path) -> None:
    """The engine leaves out of each tick's values the groups of names no expression of the
    loaded set reads. A rule reading every one of them must still find them all: it would
    stay in error (and block new risk) if any were left out."""
    policies = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policies)
    (policies / "reads_everything.yaml").write_text(
        "kind: circuit_breakers\nversion: 1\ndescription: Reads every optional name.\nrules:\n"
        "  - id: reads-everything\n    description: Never true; it reads the names.\n"
        f"    when: '{READS_EVERY_EXTRA}'\n    then: [alert]\n    rearm: auto\n"
        "    message: reads everything\n")
    policy = load_policy_set([policies, REPO / "strategies"])
    rule = policy.rule("reads-everything")
    assert rule.when.verdict is None  # not folded to a constant: it reads its names
    assert set(rule.when.names) >= MARKET_EXTRA | VIX_EXTRA | FEED_EXTRA | ACCOUNT_EXTRA
    engine = Engine(policy)
    errors: dict[int, str] = {}  # hour -> the rule's evaluation error then ("" when it evaluated)
    for batch in batches(iter(synthetic_feed("calm", seed=1, policy=policy).events())):
        engine.tick(batch)
        errors.setdefault(batch[0].ts.hour, engine.state.rules[("reads-everything",
                                                                 "account")].errored)
        if batch[0].ts.hour == 10:
            break
    assert "no value for" in errors[9]  # 09:00, before any price: it does read its names
    assert errors[10] == ""


def test_the_shipped_set_leaves_the_unread_groups_out() -> None:
    policy = load_policy_set([REPO / "policies", REPO / "strategies"])
    engine = Engine(policy)
    assert engine._reads == Reads(moves=(10,), market_extra=False, vix_extra=False,
                                  feed_extra=False, account_extra=False)


def _compiled_in(obj: object, seen: set[int]) -> list[CompiledExpr | Template]:
    """Every compiled expression or message template reachable from ``obj``."""
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, (CompiledExpr, Template)):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [c for item in obj for c in _compiled_in(item, seen)]
    if isinstance(obj, Mapping):
        return [c for item in obj.values() for c in _compiled_in(item, seen)]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [c for f in dataclasses.fields(obj)
                for c in _compiled_in(getattr(obj, f.name), seen)]
    return []


def test_every_compiled_expression_of_a_policy_set_counts_as_a_reader() -> None:
    """Names nobody reads are left out of the values, so the engine's list of readers must
    hold every expression and template a policy set compiles: one added to a rule or a
    strategy later, and forgotten there, would find its names missing and block new risk."""
    policy = load_policy_set([REPO / "policies", REPO / "strategies"])
    compiled = _compiled_in(policy, set())
    assert len(compiled) > len(policy.rules) + 2 * len(policy.strategies)  # it found them
    read = _names_read(policy)
    for item in compiled:
        assert set(item.names) <= read, item
