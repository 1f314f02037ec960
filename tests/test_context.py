"""The values expressions read, as the engine builds them each tick."""

from __future__ import annotations

import shutil
from pathlib import Path

from adapters.factory import synthetic_feed
from ruleengine.context import ACCOUNT_EXTRA, FEED_EXTRA, MARKET_EXTRA, VIX_EXTRA, Reads
from ruleengine.engine import Engine
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
