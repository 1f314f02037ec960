"""The synthetic day is the default market for tests, demos and paper runs, so its promises are
tested here: one exact day of ticks, a defined order inside each second, bit-for-bit
determinism, each scenario's signature move, and an option chain that behaves like a real book
(spreads, depth, skew) so that liquidity and volatility rules meet realistic data."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import random
from collections import deque
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta

import pytest

from adapters.feeds.pricing import black76_price
from adapters.feeds.synthetic import (
    EVENT_ORDER,
    NSE_MARKET_WIDE_CIRCUIT_BREAKERS,
    SCENARIOS,
    SESSION_SECONDS,
    ScenarioSpec,
    SyntheticFeed,
    _make_quote,
    _quote_via_init,
    monthly_expiry,
    scenario_names,
    weekly_expiry,
)
from ruleengine.contracts import Feed
from ruleengine.events import (
    ChainSnapshot,
    Contract,
    Event,
    IndexTick,
    PreviousClose,
    Quote,
    Timer,
    VixTick,
)

DAY = date(2026, 11, 26)
TICK = 0.05
FAST = 3_600  # chain cadence for tests about the index path: the path does not depend on it


def day_events(scenario: str = "calm", seed: int = 1, chain_every_s: int = 5) -> tuple[Event, ...]:
    """Days are shared between tests because a full day with chains takes a second or two."""
    return _cached_day(scenario, seed, chain_every_s)


@functools.cache
def _cached_day(scenario: str, seed: int, chain_every_s: int) -> tuple[Event, ...]:
    return tuple(SyntheticFeed(scenario, seed=seed, chain_every_s=chain_every_s).events())


def index_ticks(events: Sequence[Event]) -> list[IndexTick]:
    return [e for e in events if isinstance(e, IndexTick)]


def vix_ticks(events: Sequence[Event]) -> list[VixTick]:
    return [e for e in events if isinstance(e, VixTick)]


def chains(events: Sequence[Event]) -> list[ChainSnapshot]:
    return [e for e in events if isinstance(e, ChainSnapshot)]


def previous_close(events: Sequence[Event]) -> float:
    first = events[0]
    assert isinstance(first, PreviousClose)
    return first.close


def largest_drop_within(values: Sequence[float], window: int) -> float:
    """Largest fractional fall from a running high to a value at most ``window`` steps later."""
    highs: deque[int] = deque()
    best = 0.0
    for j, v in enumerate(values):
        while highs and values[highs[-1]] <= v:
            highs.pop()
        highs.append(j)
        while highs[0] < j - window:
            highs.popleft()
        best = max(best, 1.0 - v / values[highs[0]])
    return best


def on_grid(price: float) -> bool:
    return abs(price / TICK - round(price / TICK)) < 1e-6 and round(price, 2) == price


# -- the feed contract ------------------------------------------------------------------------

def test_is_a_feed() -> None:
    feed = SyntheticFeed()
    assert isinstance(feed, Feed)
    assert feed.name == "synthetic"


def test_scenario_names() -> None:
    assert scenario_names() == sorted(SCENARIOS)
    assert set(scenario_names()) == {"calm", "trend-up", "gap-down-3pct", "flash-crash",
                                     "vix-spike", "lower-circuit"}
    for name, spec in SCENARIOS.items():
        assert spec.name == name and spec.description


def test_calm_day_has_one_tick_per_second_of_the_session() -> None:
    events = day_events()
    ticks = index_ticks(events)
    assert len(ticks) == SESSION_SECONDS == 22_500
    start = datetime(2026, 11, 26, 9, 15)
    assert [t.ts for t in ticks] == [start + timedelta(seconds=s) for s in range(22_500)]
    assert all(t.underlying == "NIFTY" and t.source == "synthetic" for t in ticks)
    assert len(vix_ticks(events)) == 22_500
    assert len(chains(events)) == 22_500 // 5


def test_day_opens_with_previous_close_and_ends_with_a_timer_at_the_close() -> None:
    events = day_events()
    first, last = events[0], events[-1]
    assert isinstance(first, PreviousClose)
    assert first.ts == datetime(2026, 11, 26, 9, 0)
    assert (first.underlying, first.close, first.vix_close) == ("NIFTY", 24_000.0, 13.0)
    assert isinstance(last, Timer) and last.ts == datetime(2026, 11, 26, 15, 30)
    assert sum(isinstance(e, PreviousClose) for e in events) == 1


@pytest.mark.parametrize(("scenario", "every"), [("calm", 5), ("lower-circuit", 30)])
def test_order_within_and_across_seconds(scenario: str, every: int) -> None:
    """``ts`` never decreases; events sharing a second follow EVENT_ORDER with each type at most
    once (one chain snapshot per second at most), and a Timer second has nothing else."""
    events = day_events(scenario, 1, every)
    rank = {kind: i for i, kind in enumerate(EVENT_ORDER)}
    for prev, cur in itertools.pairwise(events):
        assert cur.ts >= prev.ts
        assert cur.ts.microsecond == 0
        if cur.ts == prev.ts:
            assert rank[type(cur)] > rank[type(prev)]
            assert not isinstance(cur, Timer)
    seconds = [e.ts for e in events if isinstance(e, IndexTick | Timer)]
    assert len(seconds) == len(set(seconds))  # a second is either trading or silent


def test_engine_sees_every_tick_before_its_derived_data() -> None:
    events = day_events()
    last_index_ts = None
    for e in events:
        if isinstance(e, IndexTick):
            last_index_ts = e.ts
        elif isinstance(e, VixTick | Quote | ChainSnapshot):
            assert e.ts == last_index_ts


# -- determinism ------------------------------------------------------------------------------

def test_same_seed_same_day_byte_for_byte() -> None:
    first = list(SyntheticFeed("flash-crash", seed=7, chain_every_s=60).events())
    second = list(SyntheticFeed("flash-crash", seed=7, chain_every_s=60).events())
    assert first == second
    assert repr(first) == repr(second)
    head = list(itertools.islice(SyntheticFeed("flash-crash", seed=7).events(), 3_000))
    assert head == list(itertools.islice(SyntheticFeed("flash-crash", seed=7).events(), 3_000))


def test_events_can_be_replayed_from_the_same_instance() -> None:
    feed = SyntheticFeed("gap-down-3pct", seed=3)
    first = list(itertools.islice(feed.events(), 20_000))
    assert first == list(itertools.islice(feed.events(), 20_000))


def test_different_seed_different_path() -> None:
    a = [t.value for t in index_ticks(day_events("calm", 1, FAST))]
    b = [t.value for t in index_ticks(day_events("calm", 2, FAST))]
    assert a != b
    assert a[0] == b[0]  # the open is the scenario's, only the path after it is random


def test_chain_settings_do_not_move_the_index_path() -> None:
    base = [(t.ts, t.value) for t in index_ticks(day_events("calm", 1, 5))]
    sparse = SyntheticFeed("calm", seed=1, chain_every_s=FAST, strikes_each_side=3)
    assert [(t.ts, t.value) for t in index_ticks(list(sparse.events()))] == base


def test_global_random_state_is_untouched() -> None:
    random.seed(12345)
    before = random.getstate()
    for _ in itertools.islice(SyntheticFeed("vix-spike").events(), 20_000):
        pass
    assert random.getstate() == before


def test_generation_is_lazy() -> None:
    stream = SyntheticFeed().events()
    head = [next(stream) for _ in range(4)]
    assert [type(e) for e in head] == [PreviousClose, IndexTick, VixTick, Quote]


# -- scenarios --------------------------------------------------------------------------------

SEEDS = (1, 2)  # the signature margins were checked by hand on seeds 1-10


@pytest.mark.parametrize("seed", SEEDS)
def test_calm(seed: int) -> None:
    events = day_events("calm", seed, FAST)
    values = [t.value for t in index_ticks(events)]
    vix = [v.value for v in vix_ticks(events)]
    assert min(vix) > 11.0 and max(vix) < 16.0
    assert abs(values[-1] / previous_close(events) - 1) < 0.015
    assert largest_drop_within(values, 600) < 0.01


@pytest.mark.parametrize("seed", SEEDS)
def test_trend_up(seed: int) -> None:
    values = [t.value for t in index_ticks(day_events("trend-up", seed, FAST))]
    assert 0.005 < values[-1] / values[0] - 1 < 0.02
    hourly = values[::3_600]
    assert sum(b > a for a, b in itertools.pairwise(hourly)) >= 4


@pytest.mark.parametrize("seed", SEEDS)
def test_gap_down_3pct(seed: int) -> None:
    events = day_events("gap-down-3pct", seed, FAST)
    close = previous_close(events)
    values = [t.value for t in index_ticks(events)]
    assert values[0] / close - 1 == pytest.approx(-0.03, abs=1e-4)
    assert all(-0.05 < v / close - 1 < -0.01 for v in values)
    # Choppy: the index crosses back over its opening level again and again.
    level = values[0]
    crossings = sum((a - level) * (b - level) < 0 for a, b in zip(values[::60], values[60::60],
                                                                  strict=False))
    assert crossings >= 3
    assert vix_ticks(events)[0].value > 17.0


@pytest.mark.parametrize("seed", SEEDS)
def test_flash_crash(seed: int) -> None:
    events = day_events("flash-crash", seed, FAST)
    ticks = index_ticks(events)
    values = [t.value for t in ticks]
    assert largest_drop_within(values, 600) >= 0.05
    low = min(range(len(values)), key=values.__getitem__)
    assert time(10, 55) <= ticks[low].ts.time() <= time(11, 15)
    before = max(t.value for t in ticks if time(10, 45) <= t.ts.time() <= time(10, 56))
    after = next(t.value for t in ticks if t.ts.time() == time(12, 30))
    recovered = (after - values[low]) / (before - values[low])
    assert 0.3 < recovered < 0.7  # "about half"
    vix = {v.ts.time(): v.value for v in vix_ticks(events)}
    assert max(v for t, v in vix.items() if t >= time(11, 0)) > 1.5 * vix[time(10, 50)]


@pytest.mark.parametrize("seed", SEEDS)
def test_vix_spike(seed: int) -> None:
    vix = vix_ticks(day_events("vix-spike", seed, FAST))
    peak = max(range(len(vix)), key=lambda i: vix[i].value)
    assert vix[0].value == pytest.approx(14.0, abs=0.5)
    assert vix[peak].value >= 45.0
    assert time(10, 0) < vix[peak].ts.time() < time(11, 30)
    later = [v for v in vix[peak:] if v.value < 35.0]
    assert later and later[0].ts.time() < time(14, 0)
    assert all(v.value < 35.0 for v in vix if v.ts.time() >= time(14, 0))
    rise_start = next(v for v in vix if v.ts.time() == time(10, 0))
    reach_45 = next(v for v in vix if v.value >= 45.0)
    assert reach_45.ts - rise_start.ts <= timedelta(minutes=45)


@pytest.mark.parametrize("seed", SEEDS)
def test_lower_circuit_halt_then_auction(seed: int) -> None:
    events = day_events("lower-circuit", seed, FAST)
    close = previous_close(events)
    ticks = index_ticks(events)
    k = next(i for i, t in enumerate(ticks) if t.value <= 0.9 * close)
    trigger, resume = ticks[k], ticks[k + 1]
    assert trigger.ts.time() < time(13, 0)
    gap = resume.ts - trigger.ts
    assert gap >= timedelta(minutes=45)
    assert gap == timedelta(minutes=45 + 15, seconds=1)  # halt, then the call auction
    silent = [e for e in events if trigger.ts < e.ts < resume.ts]
    assert silent and all(isinstance(e, Timer) for e in silent)
    assert [e.ts for e in silent] == [trigger.ts + timedelta(seconds=s)
                                      for s in range(1, 3_601)]
    after = [t for t in ticks if t.ts >= resume.ts]
    assert after[-1].ts.time() == time(15, 29, 59)
    assert resume.value > trigger.value  # the auction prices in the rebound during the halt
    assert len(ticks) == SESSION_SECONDS - 3_600


def test_circuit_breaker_bands_depend_on_time_of_day() -> None:
    """10% after 13:00 halts 15 minutes (plus the auction); after 14:30 it halts nothing."""
    def gap_for(fall_at: time) -> timedelta:
        spec = ScenarioSpec(
            name="custom", description="a 10.5% fall at a chosen time",
            path=((time(9, 15), 0.0), (fall_at, 0.0),
                  (time(fall_at.hour, fall_at.minute + 5), -10.5)),
            vix_path=((time(9, 15), 20.0),), noise_half_life_s=300.0)
        ticks = index_ticks(list(SyntheticFeed(spec, chain_every_s=FAST).events()))
        return max(b.ts - a.ts for a, b in itertools.pairwise(ticks))

    assert gap_for(time(13, 30)) == timedelta(minutes=30, seconds=1)
    assert gap_for(time(14, 40)) == timedelta(seconds=1)
    assert NSE_MARKET_WIDE_CIRCUIT_BREAKERS[0].halt_minutes(time(12, 59, 59)) == 45


def test_twenty_percent_fall_closes_the_market_for_the_day() -> None:
    spec = ScenarioSpec(name="crash", description="-21% by 10:00",
                        path=((time(9, 15), 0.0), (time(10, 0), -21.0)),
                        vix_path=((time(9, 15), 30.0),), noise_half_life_s=300.0)
    events = list(SyntheticFeed(spec, chain_every_s=FAST).events())
    ticks = index_ticks(events)
    # 10% fires first (45-minute halt and the auction); the market reopens at -21%, which
    # fires the 20% band and closes it for the day.
    first = next(i for i, t in enumerate(ticks) if t.value <= 0.9 * 24_000.0)
    assert ticks[first + 1].ts - ticks[first].ts == timedelta(minutes=60, seconds=1)
    assert ticks[-1] is ticks[first + 1]
    assert ticks[-1].value <= 0.8 * 24_000.0
    tail = [e for e in events if e.ts > ticks[-1].ts]
    assert all(isinstance(e, Timer) for e in tail)
    assert tail[-1].ts == datetime(2026, 11, 26, 15, 30)


# -- the future -------------------------------------------------------------------------------

def test_future_quotes_track_spot_with_a_small_positive_basis() -> None:
    events = day_events()
    spot = {t.ts: t.value for t in index_ticks(events)}
    futures = [e for e in events if isinstance(e, Quote)]
    assert len(futures) == 22_500
    for q in futures[::97]:
        assert q.contract == Contract(underlying="NIFTY", kind="FUT", expiry=date(2026, 12, 29))
        assert q.bid is not None and q.ask is not None
        assert q.bid < q.ask and q.bid <= q.ltp <= q.ask
        assert all(on_grid(p) for p in (q.ltp, q.bid, q.ask))
        basis = q.ltp / spot[q.ts] - 1
        assert 0.0 < basis < 0.01
        assert q.bid_qty % 65 == 0 and q.bid_qty > 0 and q.oi > 0
    assert futures[0].contract.symbol == "NIFTY26DEC29FUT"


# -- the option chain -------------------------------------------------------------------------

def sample_chains(scenario: str = "calm") -> list[ChainSnapshot]:
    return chains(day_events(scenario))[::45]


def by_strike(snapshot: ChainSnapshot) -> dict[tuple[float, str], Quote]:
    out: dict[tuple[float, str], Quote] = {}
    for q in snapshot.quotes:
        assert q.contract.strike is not None and q.contract.option_type is not None
        out[(q.contract.strike, q.contract.option_type)] = q
    return out


def atm_strike(snapshot: ChainSnapshot) -> float:
    return round(snapshot.spot / 50) * 50.0


def spread(q: Quote) -> float:
    assert q.bid is not None and q.ask is not None
    return q.ask - q.bid


def test_chain_shape() -> None:
    for snap in sample_chains():
        assert snap.underlying == "NIFTY"
        assert snap.expiry == date(2026, 12, 1)  # nearest Tuesday after Thursday 26 Nov
        assert len(snap.quotes) == 2 * 31
        atm = atm_strike(snap)
        strikes = [q.contract.strike for q in snap.quotes]
        assert strikes == [atm + 50 * i for i in range(-15, 16) for _ in range(2)]
        assert [q.contract.option_type for q in snap.quotes] == ["CE", "PE"] * 31
        assert all(q.contract.kind == "OPT" and q.contract.expiry == snap.expiry
                   and q.ts == snap.ts for q in snap.quotes)
    assert sample_chains()[0].quotes[30].contract.symbol == "NIFTY26DEC0124000CE"


@pytest.mark.parametrize(("scenario", "every"),
                         [("calm", 5), ("vix-spike", 5), ("lower-circuit", 30)])
def test_every_quote_is_a_valid_book(scenario: str, every: int) -> None:
    for snap in chains(day_events(scenario, 1, every))[::20]:
        for q in snap.quotes:
            assert q.bid is not None and q.ask is not None
            assert q.bid >= TICK
            assert q.bid < q.ask
            assert q.bid <= q.ltp <= q.ask
            assert on_grid(q.bid) and on_grid(q.ask) and on_grid(q.ltp)
            assert q.bid_qty > 0 and q.ask_qty > 0
            assert q.bid_qty % 65 == 0 and q.ask_qty % 65 == 0
            assert q.oi > 0 and q.oi % 1 == 0
            assert q.iv is not None and 0.03 < q.iv < 1.5


def test_quotes_are_black76_prices() -> None:
    for snap in sample_chains():
        t = ((datetime(2026, 12, 1, 15, 30) - snap.ts).total_seconds()) / (365 * 86_400)
        fwd = snap.spot * math.exp((0.065 - 0.013) * t)  # the scenario's rate and dividends
        for q in snap.quotes:
            assert q.contract.strike is not None and q.contract.option_type is not None
            assert q.iv is not None
            theo = black76_price(fwd, q.contract.strike, t, 0.065, q.iv,
                                 q.contract.option_type)
            if q.bid is not None and q.bid > TICK:
                assert abs(q.ltp - theo) <= 0.1 + 1e-9  # tick rounding plus 4-decimal IV


def test_spreads_widen_away_from_the_money() -> None:
    for snap in sample_chains():
        quotes = by_strike(snap)
        atm = atm_strike(snap)
        for opt in ("CE", "PE"):
            widths = [spread(quotes[(atm + 50 * d * sign, opt)])
                      for d in range(16) for sign in ((1,) if d == 0 else (1, -1))]
            assert widths[-1] > widths[0]
            by_distance = [max(spread(quotes[(atm + 50 * d, opt)]),
                               spread(quotes[(atm - 50 * d, opt)])) for d in range(16)]
            assert all(a <= b + 1e-9 for a, b in itertools.pairwise(by_distance))
            assert spread(quotes[(atm + 750, opt)]) > spread(quotes[(atm, opt)])
            assert spread(quotes[(atm - 750, opt)]) > spread(quotes[(atm, opt)])


def test_spreads_widen_when_vix_is_high() -> None:
    events = day_events("vix-spike")
    vix = {v.ts: v.value for v in vix_ticks(events)}
    snaps = chains(events)
    calm = next(s for s in snaps if s.ts.time() == time(9, 30))
    stressed = max(snaps, key=lambda s: vix[s.ts])
    assert vix[stressed.ts] > 2.5 * vix[calm.ts]
    for d in (0, 5, 15):
        for opt in ("CE", "PE"):
            q_calm = by_strike(calm)[(atm_strike(calm) + 50 * d, opt)]
            q_stressed = by_strike(stressed)[(atm_strike(stressed) + 50 * d, opt)]
            assert spread(q_stressed) > spread(q_calm)


def test_skew_puts_richer_than_calls_at_equal_distance() -> None:
    for snap in sample_chains() + sample_chains("vix-spike"):
        quotes = by_strike(snap)
        atm = atm_strike(snap)
        for d in range(1, 16):
            put_iv = quotes[(atm - 50 * d, "PE")].iv
            call_iv = quotes[(atm + 50 * d, "CE")].iv
            assert put_iv is not None and call_iv is not None
            assert put_iv > call_iv


def test_atm_iv_follows_vix() -> None:
    events = day_events("vix-spike")
    vix = {v.ts: v.value for v in vix_ticks(events)}
    for snap in chains(events)[::200]:
        q = by_strike(snap)[(atm_strike(snap), "CE")]
        assert q.iv is not None
        assert q.iv == pytest.approx(vix[snap.ts] / 100 * 0.95, rel=0.05)


def test_depth_thins_away_from_the_money() -> None:
    for snap in sample_chains():
        quotes = by_strike(snap)
        atm = atm_strike(snap)

        def depth(strikes: list[float], quotes: dict[tuple[float, str], Quote] = quotes) -> float:
            qs = [quotes[(k, o)] for k in strikes for o in ("CE", "PE")]
            return sum(q.bid_qty + q.ask_qty for q in qs) / len(qs)

        assert depth([atm]) > depth([atm - 250, atm + 250]) > depth([atm - 750, atm + 750])


def test_open_interest_is_plausible() -> None:
    snap = chains(day_events())[0]
    quotes = by_strike(snap)
    atm = atm_strike(snap)
    ois = [q.oi for q in snap.quotes]
    assert all(65 * 1_000 <= oi <= 65 * 500_000 for oi in ois)
    # Writers crowd out-of-the-money strikes: OTM calls above ATM outweigh ITM calls below.
    otm = sum(quotes[(atm + 50 * d, "CE")].oi for d in range(3, 10))
    itm = sum(quotes[(atm - 50 * d, "CE")].oi for d in range(3, 10))
    assert otm > 2 * itm
    later = by_strike(chains(day_events())[-1])
    same = [k for k in quotes if k in later]
    assert sum(later[k].oi for k in same) > sum(quotes[k].oi for k in same)


def test_every_tick_cadence_and_width() -> None:
    feed = SyntheticFeed("calm", chain_every_s=1, strikes_each_side=2)
    stream = feed.events()
    snaps = []
    for e in stream:
        if isinstance(e, ChainSnapshot):
            snaps.append(e)
            if len(snaps) == 10:
                break
    assert [s.ts.second for s in snaps] == list(range(10))
    assert all(len(s.quotes) == 10 for s in snaps)


def test_expiry_day_prices_to_intrinsic_at_the_close() -> None:
    feed = SyntheticFeed("calm", day=date(2026, 12, 1), chain_every_s=60, strikes_each_side=3)
    assert feed.weekly_expiry == date(2026, 12, 1)
    snaps = chains(list(feed.events()))
    last = snaps[-1]
    assert last.ts.time() == time(15, 29)
    for q in last.quotes:
        assert q.contract.strike is not None and q.bid is not None and q.ask is not None
        intrinsic = (max(last.spot - q.contract.strike, 0.0) if q.contract.option_type == "CE"
                     else max(q.contract.strike - last.spot, 0.0))
        assert q.bid <= max(intrinsic, TICK) + 5.0
        assert q.ask >= intrinsic - 1.0


# -- calendar ---------------------------------------------------------------------------------

def test_expiries() -> None:
    assert weekly_expiry(date(2026, 11, 26)) == date(2026, 12, 1)
    assert weekly_expiry(date(2026, 12, 1)) == date(2026, 12, 1)
    assert weekly_expiry(date(2026, 11, 26), holidays={date(2026, 12, 1)}) == date(2026, 11, 30)
    # 24 Nov 2026 is an NSE holiday: that week's expiry moves to Monday the 23rd.
    assert weekly_expiry(date(2026, 11, 20), holidays={date(2026, 11, 24)}) == date(2026, 11, 23)
    assert monthly_expiry(date(2026, 11, 26)) == date(2026, 12, 29)
    assert monthly_expiry(date(2026, 11, 20), holidays={date(2026, 11, 24)}) == date(2026, 11, 23)
    assert monthly_expiry(date(2026, 12, 30)) == date(2027, 1, 26)
    assert weekly_expiry(date(2025, 6, 2), weekday=3) == date(2025, 6, 5)  # pre-Sep-2025 Thursday


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        SyntheticFeed("meltdown")
    with pytest.raises(ValueError, match="not a trading day"):
        SyntheticFeed(day=date(2026, 11, 28))  # Saturday
    with pytest.raises(ValueError, match="not a trading day"):
        SyntheticFeed(day=date(2026, 11, 24), holidays={date(2026, 11, 24)})
    with pytest.raises(ValueError, match="chain_every_s"):
        SyntheticFeed(chain_every_s=0)
    with pytest.raises(ValueError, match="expiry_weekday"):
        SyntheticFeed(expiry_weekday=6)


def test_previous_close_can_be_overridden() -> None:
    feed = SyntheticFeed("gap-down-3pct", previous_close=50_000.0, chain_every_s=FAST)
    events = list(feed.events())
    assert previous_close(events) == 50_000.0
    assert index_ticks(events)[0].value == pytest.approx(48_500.0, abs=0.01)


# -- the fast quote constructor ---------------------------------------------------------------

def test_fast_quote_equals_constructed_quote_and_stays_frozen() -> None:
    contract = Contract(underlying="NIFTY", kind="OPT", expiry=date(2026, 12, 1),
                        strike=24_000.0, option_type="CE")
    args = (datetime(2026, 11, 26, 10), contract, 101.5, 101.4, 101.6, 650, 130, 6_500, 0.1234)
    fast, slow = _make_quote(*args), _quote_via_init(*args)
    assert fast == slow and repr(fast) == repr(slow) and hash(fast.contract) == hash(slow.contract)
    assert [f.name for f in dataclasses.fields(Quote)] == [
        "ts", "source", "received", "contract", "ltp", "bid", "ask", "bid_qty", "ask_qty", "oi",
        "iv"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.ltp = 1.0  # type: ignore[misc]
