"""Builders that turn a name from configuration into a concrete adapter.

They are registered as entry points (``ruleengine.feeds``, ``ruleengine.brokers`` in
pyproject.toml), so the core finds adapters by name without importing any of them, and a
third-party package can add its own broker the same way.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from ruleengine.contracts import Broker, Feed
from ruleengine.errors import ConfigError
from ruleengine.policyset import PolicySet

from .brokers.paper import PaperBroker, PaperConfig
from .feeds.replay import ReplayFeed
from .feeds.synthetic import SCENARIOS, SyntheticFeed

#: The embedded default day: an ordinary Thursday session (not an NSE holiday).
DEFAULT_DAY = date(2026, 11, 26)


def synthetic_feed(arg: str, *, seed: int, policy: PolicySet, underlying: str = "NIFTY",
                   day: date | None = None, prev_close: float | None = None) -> Feed:
    """``synthetic:<scenario>``; strike step, tick and lot size come from the instruments data."""
    scenario = arg or "calm"
    if scenario not in SCENARIOS:
        raise ConfigError(f"unknown scenario {scenario!r}; known: {', '.join(sorted(SCENARIOS))}")
    the_day = day or DEFAULT_DAY
    inst = policy.instruments.get(underlying)
    if inst is not None:
        return SyntheticFeed(scenario, seed, the_day, underlying=underlying,
                             strike_step=inst.strike_step, tick=inst.tick_size,
                             lot_size=inst.lot_size(the_day), previous_close=prev_close)
    return SyntheticFeed(scenario, seed, the_day, underlying=underlying,
                         previous_close=prev_close)


def replay_feed(arg: str, *, seed: int, policy: PolicySet, underlying: str = "NIFTY",
                day: date | None = None, prev_close: float | None = None) -> Feed:
    """``replay:<path>`` — a CSV, Parquet or Kite JSON file (see docs/replay-formats.md)."""
    if not arg or not Path(arg).is_file():
        raise ConfigError(f"replay file {arg!r} does not exist")
    return ReplayFeed(arg, underlying=underlying, prev_close=prev_close)


def paper_broker(*, policy: PolicySet, seed: int, capital: float) -> Broker:
    return PaperBroker(PaperConfig.from_policy_set(policy), seed=seed, capital=capital)
