"""Market-data reliability: feeds that die, recover, disagree, skew, repeat and arrive late.

Real synthetic days, broken by the fault-injecting feed wrapper and merged by the composite
feed, run through the real engine; assertions read its decisions and state.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import date, datetime, time
from pathlib import Path

import pytest

from adapters.feeds.composite import CompositeFeed
from adapters.feeds.faulty import FaultyFeed, FeedFaults
from adapters.feeds.synthetic import SyntheticFeed
from ruleengine.decisions import Decision
from ruleengine.engine import Engine
from ruleengine.events import Event
from ruleengine.policyset import load_policy_set
from ruleengine.runner import RunConfig, batches, run
from ruleengine.tradingstate import TradingState

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
POLICY = load_policy_set([REPO / "policies", REPO / "strategies"])
DAY = date(2026, 11, 26)


def _drive(events: Iterable[Event], until: time) -> tuple[Engine, list[Decision]]:
    engine = Engine(POLICY)
    decisions: list[Decision] = []
    for batch in batches(iter(events)):
        if batch[0].ts.time() > until:
            break
        decisions.extend(engine.tick(batch).decisions)
    return engine, decisions


def _dq(decisions: list[Decision], what: str, instrument: str | None = None) -> list[Decision]:
    return [d for d in decisions if d.kind == "data_quality"
            and d.result["classification"] == what
            and instrument in (None, d.result.get("instrument"))]


def _two_feeds(primary: FeedFaults, secondary: FeedFaults | None = None) -> CompositeFeed:
    return CompositeFeed([
        ("primary", FaultyFeed(SyntheticFeed("calm", 1, DAY), primary)),
        ("secondary", FaultyFeed(SyntheticFeed("calm", 1, DAY), secondary or FeedFaults())),
    ])


def test_primary_dies_and_the_secondary_takes_over_within_the_staleness_threshold() -> None:
    feed = _two_feeds(FeedFaults(dies_at=time(10, 0)))
    engine, decisions = _drive(feed.events(), time(10, 5))
    [failover] = _dq(decisions, "failover", "NIFTY")
    [vix_failover] = _dq(decisions, "failover", "VIX")  # VIX is slower to count as stale
    assert vix_failover.result["to"] == "secondary"
    assert failover.result["from"] == "primary" and failover.result["to"] == "secondary"
    delay = failover.ts - datetime.combine(DAY, time(10, 0))
    assert delay.total_seconds() <= POLICY_STALE_S + 1
    u = engine.state.market.underlyings["NIFTY"]
    assert u.feeds.active == "secondary"
    assert u.spot_ts == datetime.combine(DAY, time(10, 5))  # prices kept flowing
    assert "underlying:NIFTY" not in engine.state.scopes  # no gap long enough to block


POLICY_STALE_S = 3.0


def test_both_feeds_die_entries_are_blocked_and_an_alert_fires() -> None:
    feed = _two_feeds(FeedFaults(dies_at=time(10, 0)), FeedFaults(dies_at=time(10, 0)))
    engine, decisions = _drive(_with_timers(feed.events(), time(10, 2)), time(10, 2))
    fired = [d for d in decisions if d.kind == "rule_fired" and d.rule_id == "feed-stale"]
    assert fired and fired[0].ts <= datetime.combine(DAY, time(10, 0, 5))
    assert any(d.kind == "alert" and d.rule_id == "feed-stale" for d in decisions)
    assert engine.state.scopes["underlying:NIFTY"].state >= TradingState.REDUCE_ONLY


def _with_timers(events: Iterable[Event], until: time) -> Iterable[Event]:
    """A clock that keeps ticking every second when every feed falls silent, as a live
    runner's clock adapter does."""
    from datetime import timedelta

    from ruleengine.events import Timer

    last: datetime | None = None
    end = datetime.combine(DAY, until)
    for e in events:
        while last is not None and e.ts - last > timedelta(seconds=1) and last < end:
            last += timedelta(seconds=1)
            yield Timer(ts=last, source="clock")
        yield e
        last = e.ts


def test_primary_recovers_and_is_used_again_only_after_the_hysteresis() -> None:
    feed = _two_feeds(FeedFaults(dies_at=time(10, 0), recovers_at=time(10, 10)))
    engine, decisions = _drive(feed.events(), time(10, 20))
    [failback] = _dq(decisions, "failback", "NIFTY")
    assert failback.result["to"] == "primary"
    waited = failback.ts - datetime.combine(DAY, time(10, 10))
    assert 60 <= waited.total_seconds() <= 62  # failback_after: 60s in data_quality.yaml
    assert engine.state.market.underlyings["NIFTY"].feeds.active == "primary"


def test_a_source_clock_running_ahead_is_rejected_as_future_timestamps() -> None:
    feed = _two_feeds(FeedFaults(), FeedFaults(clock_skew_s=30))
    _engine, decisions = _drive(feed.events(), time(9, 20))
    future = _dq(decisions, "future_timestamp")
    assert len(future) > 100
    assert {d.result["source"] for d in future} == {"secondary"}


def test_duplicate_and_late_ticks_are_recorded_not_used() -> None:
    feed = CompositeFeed([("primary", FaultyFeed(SyntheticFeed("calm", 1, DAY),
                                                 FeedFaults(duplicate_every=50, late_every=70)))])
    engine, decisions = _drive(feed.events(), time(9, 45))
    dups, late = _dq(decisions, "duplicate"), _dq(decisions, "out_of_order")
    assert len(dups) >= 30 and len(late) >= 20
    # the engine's clock never went backwards and prices are from the newest ticks
    times = [d.ts for d in decisions]
    assert times == sorted(times)
    assert engine.state.market.underlyings["NIFTY"].spot_ts == datetime.combine(DAY, time(9, 45))


def test_diverging_feeds_block_entries_on_that_underlying() -> None:
    feed = CompositeFeed([("primary", SyntheticFeed("calm", 1, DAY)),
                          ("secondary", SyntheticFeed("trend-up", 1, DAY))])
    _engine, decisions = _drive(feed.events(), time(12, 0))
    fired = [d for d in decisions if d.kind == "rule_fired" and d.rule_id == "feed-divergence"]
    assert fired and fired[0].inputs["feed.divergence_pct"] > 0.3


def test_a_partial_option_chain_keeps_a_strategy_out(tmp_path: Path) -> None:
    feed = CompositeFeed([("primary", FaultyFeed(SyntheticFeed("calm", 1, DAY),
                                                 FeedFaults(missing_strikes=3)))])
    _engine, decisions = _drive(feed.events(), time(9, 30))
    alerts = [d for d in decisions if d.rule_id == "chain-incomplete" and d.kind == "alert"]
    assert alerts
    denied = [d for d in decisions if d.kind == "denied"
              and d.scope == "strategy:short-straddle-0920"]
    assert denied and denied[0].result["code"] in ("no-quote", "invalid-quote")
    assert not [d for d in decisions if d.kind == "order"
                and d.scope == "strategy:short-straddle-0920"]


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"real market data not found at {SHARED}")
def test_13_march_2020_pre_open_halt_auction_and_post_close_are_classified(tmp_path: Path
                                                                           ) -> None:
    path = SHARED / "intraday_1min_gdfl" / "NIFTY_1min_2020-03-13.csv"
    db = tmp_path / "dq.db"
    run(RunConfig(policies=(str(REPO / "policies"),), strategies=(str(REPO / "strategies"),),
                  feed=f"replay:{path}", db=str(db), prev_close=9590.15))
    conn = sqlite3.connect(db)
    rows = [json.loads(r[0]) for r in conn.execute(
        "SELECT result FROM decisions WHERE kind = 'data_quality' ORDER BY id")]
    by_kind: dict[str, list[str]] = {}
    for r in rows:
        by_kind.setdefault(r["classification"], []).append(r["ts"][11:16])
    assert by_kind["pre_open"] == ["09:08"]
    assert by_kind["halt_detected"] == ["10:07"]
    assert by_kind["auction_indicative"] == [f"10:{m:02d}" for m in range(7, 15)]
    assert by_kind["post_close"] == ["15:31", "15:35", "17:01"]
    # none of those values became a price: the day's low stays the official 8555.15, not the
    # auction's 8476.15
    lows = [json.loads(r[0]) for r in conn.execute(
        "SELECT inputs FROM decisions WHERE kind = 'rule_fired' AND inputs LIKE "
        "'%market.change_pct%'")]
    assert lows
    spot_values = [json.loads(r[0])["value"] for r in conn.execute(
        "SELECT payload FROM events WHERE type = 'IndexTick' AND ts >= '2020-03-13T10:07' AND "
        "ts < '2020-03-13T10:15'")]
    assert min(spot_values) < 8555.15  # the auction prints really are below the day low
    # 13 March 2020 moved more than 1.5% in a minute several times: each such print is held
    # for one bar and confirmed by the next, never thrown away
    suspects = by_kind.get("spike_suspect", [])
    assert len(by_kind.get("spike_confirmed", [])) == len(suspects)
    assert "spike_rejected" not in by_kind


def test_staleness_thresholds_follow_the_session_phase() -> None:
    from ruleengine.dataquality import DQParams

    params = DQParams.from_policy(POLICY.of_kind("data_quality")[0])
    first_minute = datetime.combine(DAY, time(9, 15, 30))
    later = datetime.combine(DAY, time(11, 0))
    assert params.stale_s("underlying", first_minute) == 10.0  # phases: 09:15-09:16
    assert params.stale_s("options", first_minute) == 30.0
    assert params.stale_s("vix", first_minute) == 60.0  # not overridden in the phase
    assert params.stale_s("underlying", later) == 3.0
    assert params.stale_s("options", later) == 10.0


def test_thresholds_kept_between_phase_edges_match_a_fresh_lookup() -> None:
    """thresholds_at keeps its last answer until the next phase edge; over random, overlapping
    phases and seconds asked in and out of order (edges and their neighbours included) it
    must give what stale_at gives for each class."""
    import random

    from ruleengine.dataquality import DQParams

    kinds = ("underlying", "futures", "options", "vix")
    rng = random.Random(5)
    for trial in range(200):
        phases = []
        for _ in range(rng.randint(0, 4)):
            start = rng.randint(0, 86_399)
            end = min(86_400, start + rng.randint(0, 20_000))
            phases.append((start, end, tuple((k, float(rng.randint(1, 99))) for k in kinds
                                             if rng.random() < 0.6)))
        params = DQParams(phases=tuple(phases))
        asked = [rng.randint(0, 86_399) for _ in range(200)]
        if trial % 2:
            asked.sort()  # as a session asks: forwards, second by second
        asked += [e + d for start, end, _ in phases for e in (start, end) for d in (-1, 0, 1)
                  if 0 <= e + d < 86_400]
        for secs in asked:
            assert tuple(params.thresholds_at(secs)) == \
                tuple(params.stale_at(k, secs) for k in kinds), (phases, secs)
