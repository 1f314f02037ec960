"""A seeded synthetic trading day: the market data the engine runs on when no recording is given.

Tests, demos and paper runs need a day that looks like NSE index-option trading (gaps, crashes,
VIX spikes, a market-wide circuit-breaker halt) without a data licence or network access, and
they need the *same* day every time so that a replay can be compared byte for byte. Every random
draw therefore comes from one ``random.Random(seed)`` created per :meth:`SyntheticFeed.events`
call; nothing reads the wall clock, global ``random`` or numpy state.

The day is the normal session 09:15:00–15:30:00 IST in 1-second steps: 22,500 ticks stamped
09:15:00 … 15:29:59 (a tick describes the second that starts at its ``ts``), then one ``Timer`` at
15:30:00 so the engine sees the close. Events within one second come in the order of
:data:`EVENT_ORDER`; ``ts`` never decreases.

Price model, per second: ``index = previous_close * exp(path(t) + noise(t))``. ``path`` is the
scenario's hand-written shape (knots in % from the previous close, linear in log between knots);
``noise`` is a mean-reverting random walk whose per-second volatility is
``VIX/100 * vol_multiplier * sqrt(1 / (252 * 22500))``, so calm days wander little and stressed
days a lot, while the reversion keeps each scenario's signature move from being washed out by
chance. VIX follows its own knot path with a lag plus a slow noise correlated negatively with the
index, as the real one is. During a halt nothing evolves: on resumption the index jumps to where
the path has got to, which is what the call auction does.

The option chain prices each strike with Black-76 on the forward to the weekly expiry, with an
IV smile around an ATM IV tied to VIX (puts richer). Quoted spreads, displayed depth and open
interest come from :class:`ChainModel`. Depth and OI jitter is drawn once at the start of the
day into a fixed table, so the chain cadence and width never change the index path for a seed.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import random
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from ruleengine.events import (
    ChainSnapshot,
    Contract,
    Event,
    IndexTick,
    OptionType,
    PreviousClose,
    Quote,
    Timer,
    VixTick,
)

from .pricing import black76_call_put

SOURCE = "synthetic"
SESSION_OPEN = time(9, 15)
SESSION_SECONDS = 22_500  # 09:15:00 to 15:30:00: the NSE normal market (MARKET_FACTS.md)
PREVIOUS_CLOSE_AT = time(9, 0)  # pre-open start: the previous close is known, trading is not
SECONDS_PER_YEAR = 365.0 * 86_400.0  # calendar-time year for option expiry, as NSE IVs use
TRADING_SECONDS_PER_YEAR = 252.0 * SESSION_SECONDS  # for turning annual vol into per-second
REST_OF_DAY = 24 * 60  # a halt length in minutes that outlasts any session

EVENT_ORDER: tuple[type[Event], ...] = (
    PreviousClose, IndexTick, VixTick, Quote, ChainSnapshot, Timer)
"""Order of event types sharing one ``ts``: the index first, because VIX, the future and the
chain are all derived from it and a consumer reacting to them should already know the spot. A
second carries either market data or a single ``Timer`` (halt, auction, close), never both."""

_JITTER_TABLE_SIZE = 4096


# -- scenario data ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class CircuitBand:
    """One market-wide circuit-breaker level. ``halts`` lists (trigger strictly before this
    clock time, halt minutes) in time order; a trigger after the last entry halts nothing, and
    :data:`REST_OF_DAY` closes the market. Kept as data because SEBI revises these bands."""

    move_pct: float
    halts: tuple[tuple[time, int], ...]

    def halt_minutes(self, at: time) -> int:
        for before, minutes in self.halts:
            if at < before:
                return minutes
        return 0


NSE_MARKET_WIDE_CIRCUIT_BREAKERS: tuple[CircuitBand, ...] = (
    CircuitBand(move_pct=10.0, halts=((time(13, 0), 45), (time(14, 30), 15))),
    CircuitBand(move_pct=15.0, halts=((time(13, 0), 105), (time(14, 0), 45),
                                      (time(15, 30), REST_OF_DAY))),
    CircuitBand(move_pct=20.0, halts=((time(15, 30), REST_OF_DAY),)),
)
"""NIFTY 50 moves from the previous close, either direction (MARKET_FACTS.md, official)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainModel:
    """How the option chain looks around the model price. Tunable so that tests of liquidity
    rules (spread, depth, OI filters) can be pointed at harsher books."""

    atm_iv_to_vix: float = 0.95
    """Weekly ATM IV as a multiple of VIX/100; VIX is a 30-day blend, the weekly sits near it."""
    skew_slope: float = -0.10
    """IV change per standard deviation of log-moneyness; negative makes low strikes (OTM puts)
    richer, because crash protection is what index-option buyers pay up for."""
    skew_curvature: float = 0.03
    """Smile convexity per squared standard deviation: both wings above a straight skew."""
    iv_floor_ratio: float = 0.5
    """No strike's IV falls below this share of ATM IV, so far wings never price at zero vol."""
    smile_flat_beyond_sd: float = 3.0
    """The smile goes flat beyond this many standard deviations: near expiry every strike is
    many deviations away, and an unbounded parabola would price wings at absurd IVs."""
    spread_atm_ticks: float = 2.0
    """ATM bid/ask spread in ticks at ``spread_vix_ref``; never less than one tick."""
    spread_per_strike: float = 0.15
    """Relative spread widening per strike step away from ATM (thinner books in the wings)."""
    spread_vix_ref: float = 15.0
    """VIX at which spreads equal the base; they scale in proportion to VIX (makers widen)."""
    depth_atm_lots: float = 120.0
    """Displayed lots at best bid/ask at the money, in calm markets."""
    depth_decay_strikes: float = 5.0
    """Depth falls by a factor e every this many strikes away from ATM."""
    oi_peak_lots: float = 150_000.0
    """Open interest, in lots, at the most crowded out-of-the-money strike."""
    oi_peak_otm_strikes: float = 6.0
    """Where option writers crowd: this many strikes out of the money from the previous close."""
    oi_width_strikes: float = 5.0
    oi_floor_lots: float = 3_000.0
    oi_intraday_growth: float = 0.3
    """Share by which OI grows from open to close (weekly positions are built during the day)."""
    future_spread_ticks: float = 2.0
    future_depth_lots: float = 40.0
    future_oi_lots: float = 200_000.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ScenarioSpec:
    """A named trading day. Knots are (clock time, value); between knots the value moves
    linearly (in log terms for the index), before the first and after the last it stays put."""

    name: str
    description: str
    path: tuple[tuple[time, float], ...]
    """Index level in % from the previous close; the first knot at 09:15 is the opening gap."""
    vix_path: tuple[tuple[time, float], ...]
    """Where VIX is pulled to (it follows with a lag); the first knot is its opening level."""
    previous_close: float = 24_000.0
    vix_previous_close: float = 13.0
    vol_multiplier: float = 1.0
    """Realised intraday volatility as a share of VIX-implied volatility."""
    noise_half_life_s: float = 3_600.0
    """Half-life of the random deviation from ``path``: short keeps the shape, long wanders."""
    vix_lag_half_life_s: float = 300.0
    """How quickly VIX catches up with ``vix_path`` (the real index is smoothed over quotes)."""
    vix_noise_vol: float = 1.0
    """Annualised volatility of log VIX noise around its path."""
    vix_noise_half_life_s: float = 3_600.0
    price_vix_correlation: float = -0.7
    """Index and VIX noise move against each other: falls make fear, rallies calm it."""
    rate: float = 0.065
    """Risk-free rate (91-day T-bill area) for discounting and the futures basis."""
    dividend_yield: float = 0.013
    """NIFTY dividend yield: with ``rate`` it sets the basis of the future over spot."""
    circuit_breakers: tuple[CircuitBand, ...] = NSE_MARKET_WIDE_CIRCUIT_BREAKERS
    auction_minutes: int = 15
    """Pre-open call auction after every halt: no regular ticks, only ``Timer``."""
    chain: ChainModel = field(default_factory=ChainModel)


SCENARIOS: dict[str, ScenarioSpec] = {
    spec.name: spec for spec in (
        ScenarioSpec(
            name="calm",
            description="VIX about 13, a slight upward drift and quiet two-way trade.",
            path=((time(9, 15), 0.05), (time(15, 30), 0.25)),
            vix_previous_close=13.0,
            vix_path=((time(9, 15), 13.1), (time(15, 30), 12.8)),
            vol_multiplier=0.8,
        ),
        ScenarioSpec(
            name="trend-up",
            description="Opens flat and rises a steady 1.2% into the close; VIX drifts lower.",
            path=((time(9, 15), 0.0), (time(15, 30), 1.2)),
            vix_previous_close=13.5,
            vix_path=((time(9, 15), 13.4), (time(15, 30), 12.4)),
            vol_multiplier=0.8,
        ),
        ScenarioSpec(
            name="gap-down-3pct",
            description="Opens 3% below the previous close, then chops in a band around it "
                        "with VIX elevated near 18.",
            path=((time(9, 15), -3.0), (time(9, 50), -2.3), (time(10, 40), -3.4),
                  (time(11, 30), -2.5), (time(12, 30), -3.5), (time(13, 30), -2.6),
                  (time(14, 30), -3.2), (time(15, 30), -2.8)),
            vix_previous_close=14.0,
            vix_path=((time(9, 15), 18.5), (time(12, 0), 17.5), (time(15, 30), 17.0)),
            vol_multiplier=1.3,
            noise_half_life_s=900.0,
        ),
        ScenarioSpec(
            name="flash-crash",
            description="Quiet morning, then about -5.5% in 8 minutes from 10:55 with VIX "
                        "jumping from 14 towards 26; half the fall is recovered by 11:50.",
            path=((time(9, 15), 0.0), (time(10, 55), 0.2), (time(11, 3), -5.4),
                  (time(11, 50), -2.6), (time(15, 30), -2.3)),
            vix_previous_close=14.0,
            vix_path=((time(9, 15), 14.0), (time(10, 58), 14.0), (time(11, 8), 26.0),
                      (time(12, 0), 21.0), (time(15, 30), 19.0)),
            vix_lag_half_life_s=120.0,
            noise_half_life_s=1_800.0,
        ),
        ScenarioSpec(
            name="vix-spike",
            description="VIX climbs from 14 to about 48 between 10:00 and 10:30, holds till "
                        "11:00, then eases below 35 by 13:00 (so hysteresis can re-arm); the "
                        "index sags 2% and recovers half of it.",
            path=((time(9, 15), 0.0), (time(10, 0), 0.1), (time(10, 30), -1.8),
                  (time(11, 0), -2.0), (time(13, 0), -1.0), (time(15, 30), -0.8)),
            vix_previous_close=14.0,
            vix_path=((time(9, 15), 14.0), (time(10, 0), 14.0), (time(10, 30), 48.0),
                      (time(11, 0), 48.0), (time(13, 0), 31.0), (time(14, 0), 28.0),
                      (time(15, 30), 26.0)),
            vix_lag_half_life_s=120.0,
            noise_half_life_s=1_800.0,
        ),
        ScenarioSpec(
            name="lower-circuit",
            description="Opens 2% down and slides through -10% late in the morning: the "
                        "market-wide circuit breaker halts trading for 45 minutes, a 15-minute "
                        "call auction follows, and trading resumes near -9% (the auction "
                        "prices in a rebound during the halt) and recovers a little more.",
            path=((time(9, 15), -2.0), (time(10, 0), -3.5), (time(11, 0), -11.5),
                  (time(11, 15), -11.0), (time(11, 40), -9.0), (time(12, 30), -8.5),
                  (time(15, 30), -7.5)),
            vix_previous_close=20.0,
            vix_path=((time(9, 15), 24.0), (time(10, 0), 27.0), (time(11, 0), 42.0),
                      (time(12, 30), 38.0), (time(15, 30), 34.0)),
            noise_half_life_s=900.0,
        ),
    )
}
"""The built-in days; pass a :class:`ScenarioSpec` to :class:`SyntheticFeed` for others."""


def scenario_names() -> list[str]:
    """For CLIs and parametrised tests that enumerate what the feed can play."""
    return sorted(SCENARIOS)


# -- calendar helpers -------------------------------------------------------------------------

def _is_trading_day(day: date, holidays: Collection[date]) -> bool:
    return day.weekday() < 5 and day not in holidays


def _previous_trading_day(day: date, holidays: Collection[date]) -> date:
    while not _is_trading_day(day, holidays):
        day -= timedelta(days=1)
    return day


def weekly_expiry(day: date, weekday: int = 1, holidays: Collection[date] = ()) -> date:
    """Nearest weekly expiry on or after ``day``: the ``weekday`` (Tuesday = 1 for NIFTY since
    Sep 2025), moved to the previous trading day when that is a holiday."""
    candidate = day + timedelta(days=(weekday - day.weekday()) % 7)
    while True:
        expiry = _previous_trading_day(candidate, holidays)
        if expiry >= day:
            return expiry
        candidate += timedelta(days=7)


def monthly_expiry(day: date, weekday: int = 1, holidays: Collection[date] = ()) -> date:
    """Near-month futures expiry: the month's last ``weekday`` (holiday-adjusted), rolling to
    next month once it has passed."""
    year, month = day.year, day.month
    while True:
        first_next = date(year + month // 12, month % 12 + 1, 1)
        last = first_next - timedelta(days=1)
        last -= timedelta(days=(last.weekday() - weekday) % 7)
        expiry = _previous_trading_day(last, holidays)
        if expiry >= day:
            return expiry
        year, month = first_next.year, first_next.month


# -- the feed ---------------------------------------------------------------------------------

def _knot_series(knots: tuple[tuple[time, float], ...], n: int, *,
                 pct: bool = False) -> list[float]:
    """Per-second values of a knot path, in log terms so that interpolation is multiplicative
    (a 5% fall takes the same shape at any index level)."""
    base = SESSION_OPEN.hour * 3600 + SESSION_OPEN.minute * 60 + SESSION_OPEN.second
    pts: list[tuple[int, float]] = []
    for at, value in knots:
        level = math.log1p(value / 100.0) if pct else math.log(value)
        pts.append((at.hour * 3600 + at.minute * 60 + at.second - base, level))
    pts.sort(key=lambda p: p[0])
    out = [pts[0][1]] * max(0, min(n, pts[0][0]))
    for (s0, v0), (s1, v1) in itertools.pairwise(pts):
        lo, hi = max(s0, 0), min(s1, n)
        if hi > lo:
            slope = (v1 - v0) / (s1 - s0)
            out.extend([v0 + slope * (s - s0) for s in range(lo, hi)])
    out.extend([pts[-1][1]] * (n - len(out)))
    return out


class SyntheticFeed:
    """One synthetic trading day implementing the :class:`~ruleengine.contracts.Feed` protocol.

    ``strike_step``, ``tick``, ``lot_size``, ``expiry_weekday`` and ``holidays`` default to
    NIFTY's 2026 facts; a runner that has the instruments and calendar policies loaded should
    pass their values so the synthetic day follows the same data as live trading.
    """

    name: str = SOURCE

    def __init__(self, scenario: str | ScenarioSpec = "calm", seed: int = 1,
                 day: date = date(2026, 11, 26), chain_every_s: int = 5,
                 strikes_each_side: int = 15, underlying: str = "NIFTY", *,
                 previous_close: float | None = None, strike_step: float = 50.0,
                 tick: float = 0.05, lot_size: int = 65, expiry_weekday: int = 1,
                 holidays: Collection[date] = ()) -> None:
        if isinstance(scenario, str):
            if scenario not in SCENARIOS:
                raise ValueError(f"unknown scenario {scenario!r}; known: "
                                 f"{', '.join(scenario_names())}")
            scenario = SCENARIOS[scenario]
        if not _is_trading_day(day, holidays):
            raise ValueError(f"{day} is not a trading day")
        if chain_every_s < 1:
            raise ValueError("chain_every_s must be at least 1")
        if strikes_each_side < 0:
            raise ValueError("strikes_each_side must not be negative")
        if strike_step <= 0 or tick <= 0 or lot_size <= 0:
            raise ValueError("strike_step, tick and lot_size must be positive")
        if not 0 <= expiry_weekday <= 4:
            raise ValueError("expiry_weekday must be a weekday number, Monday = 0 to Friday = 4")
        self.spec = scenario
        self.seed = seed
        self.day = day
        self.chain_every_s = chain_every_s
        self.strikes_each_side = strikes_each_side
        self.underlying = underlying
        self.previous_close = (scenario.previous_close if previous_close is None
                               else previous_close)
        self.strike_step = strike_step
        self.tick = tick
        self.lot_size = lot_size
        self.weekly_expiry = weekly_expiry(day, expiry_weekday, holidays)
        self.future_expiry = monthly_expiry(day, expiry_weekday, holidays)
        self.future = Contract(underlying=underlying, kind="FUT", expiry=self.future_expiry)
        exponent = Decimal(str(tick)).normalize().as_tuple().exponent
        self.decimals = max(0, -exponent) if isinstance(exponent, int) else 2

    def events(self) -> Iterator[Event]:
        """A fresh, lazily generated day; calling it twice replays the identical stream."""
        return self._generate(random.Random(self.seed))

    # -- generation ---------------------------------------------------------------------------

    def _generate(self, rng: random.Random) -> Iterator[Event]:
        spec = self.spec
        n = SESSION_SECONDS
        prev = self.previous_close
        underlying = self.underlying
        # Drawn first and in a fixed amount, so chain cadence/width never shift the index path.
        jitter = [1.0 + 0.3 * rng.uniform(-1.0, 1.0) for _ in range(_JITTER_TABLE_SIZE)]
        path = _knot_series(spec.path, n, pct=True)
        vix_target = _knot_series(spec.vix_path, n)
        chain = _ChainBuilder(self, jitter)

        open_dt = datetime.combine(self.day, SESSION_OPEN)
        yield PreviousClose(ts=datetime.combine(self.day, PREVIOUS_CLOSE_AT), source=SOURCE,
                            underlying=underlying, close=prev,
                            vix_close=spec.vix_previous_close)

        sqrt_dt = math.sqrt(1.0 / TRADING_SECONDS_PER_YEAR)
        vol_per_vix_point = spec.vol_multiplier * sqrt_dt / 100.0
        keep_noise = 0.5 ** (1.0 / spec.noise_half_life_s)
        keep_vix_lag = 0.5 ** (1.0 / spec.vix_lag_half_life_s)
        keep_vix_noise = 0.5 ** (1.0 / spec.vix_noise_half_life_s)
        vix_noise_step = spec.vix_noise_vol * sqrt_dt
        rho = spec.price_vix_correlation
        rho_c = math.sqrt(max(0.0, 1.0 - rho * rho))

        bands = sorted(spec.circuit_breakers, key=lambda b: b.move_pct)
        next_band = 0  # bands below this index have fired (each fires once a day)
        next_trigger = bands[0].move_pct if bands else math.inf
        resume_at = 0  # first second of regular trading after a halt and its auction

        noise = 0.0
        vix_noise = 0.0
        vix_log = vix_target[0]
        gauss = rng.gauss
        exp = math.exp
        one = timedelta(seconds=1)
        every = self.chain_every_s
        ts = open_dt - one

        for s in range(n):
            ts += one
            if s < resume_at:
                yield Timer(ts=ts, source=SOURCE)
                continue
            # The opening tick and the first tick after a halt carry no fresh noise: the open
            # is the scenario's gap, and a resumption jumps to wherever the path has got to.
            target = vix_target[s]
            vix_log = target + (vix_log - target) * keep_vix_lag
            if s and s != resume_at:
                z1 = gauss()
                vix_noise = vix_noise * keep_vix_noise + vix_noise_step * (
                    rho * z1 + rho_c * gauss())
                vix = exp(vix_log + vix_noise)
                noise = noise * keep_noise + vix * vol_per_vix_point * z1
            else:
                vix = exp(vix_log + vix_noise)
            spot = round(prev * exp(path[s] + noise), 2)
            vix = round(vix, 2)
            yield IndexTick(ts=ts, source=SOURCE, underlying=underlying, value=spot)
            yield VixTick(ts=ts, source=SOURCE, value=vix)
            yield chain.future_quote(ts, s, spot, vix)
            if s % every == 0:
                yield chain.snapshot(ts, s, spot, vix)

            move = abs(spot / prev - 1.0) * 100.0
            if move >= next_trigger:
                # A jump through several levels at once fires the highest one reached.
                band = bands[next_band]
                while next_band < len(bands) and move >= bands[next_band].move_pct:
                    band = bands[next_band]
                    next_band += 1
                next_trigger = bands[next_band].move_pct if next_band < len(bands) else math.inf
                minutes = band.halt_minutes(ts.time())
                if minutes:
                    resume_at = min(n, s + 1 + (minutes + spec.auction_minutes) * 60)
        yield Timer(ts=open_dt + timedelta(seconds=n), source=SOURCE)


class _ChainBuilder:
    """Quotes for the future and the weekly chain, with per-day caches: contracts are immutable
    and reused, and each strike's OI level is fixed for the day (positions were built on earlier
    days around the previous close)."""

    def __init__(self, feed: SyntheticFeed, jitter: list[float]) -> None:
        spec = feed.spec
        self.feed = feed
        self.model = spec.chain
        self.jitter = jitter
        self.tick = feed.tick
        self.lot = feed.lot_size
        self.rate = spec.rate
        self.carry = spec.rate - spec.dividend_yield
        self.side = feed.strikes_each_side
        self.per_snapshot = 4 * (2 * self.side + 1)
        self.week_close_s = (feed.weekly_expiry - feed.day).days * 86_400.0 + SESSION_SECONDS
        self.fut_close_s = (feed.future_expiry - feed.day).days * 86_400.0 + SESSION_SECONDS
        self.fut_oi = self.model.future_oi_lots * feed.lot_size
        self.decay = [math.exp(-d / self.model.depth_decay_strikes) for d in range(self.side + 1)]
        self.prices = _tick_prices(feed.tick, feed.decimals)
        self.strikes: dict[int, tuple[Contract, Contract, float, float]] = {}

    def price(self, ticks: int) -> float:
        prices = self.prices
        return prices[ticks] if ticks < len(prices) else round(ticks * self.tick,
                                                                self.feed.decimals)

    def future_quote(self, ts: datetime, s: int, spot: float, vix: float) -> Quote:
        m = self.model
        tick, dec = self.tick, self.feed.decimals
        fut = spot * math.exp(self.carry * (self.fut_close_s - s) / SECONDS_PER_YEAR)
        ticks = max(1, round(m.future_spread_ticks * vix / m.spread_vix_ref))
        mid = round(fut / tick)
        bid_t = mid - ticks // 2
        depth = m.future_depth_lots * min(1.0, m.spread_vix_ref / vix)
        j = (s * 2) % _JITTER_TABLE_SIZE  # even, so j + 1 stays inside the table
        return _make_quote(
            ts, self.feed.future, round(mid * tick, dec), round(bid_t * tick, dec),
            round((bid_t + ticks) * tick, dec),
            self.lot * (int(depth * self.jitter[j] + 0.5) or 1),
            self.lot * (int(depth * self.jitter[j + 1] + 0.5) or 1),
            int(self.fut_oi * (1.0 + 0.05 * s / SESSION_SECONDS) + 0.5), None)

    def _strike(self, index: int) -> tuple[Contract, Contract, float, float]:
        feed = self.feed
        m = self.model
        centre = round(feed.previous_close / feed.strike_step)
        contracts: list[Contract] = []
        ois: list[float] = []
        sides: tuple[tuple[OptionType, int, int], ...] = (
            ("CE", index - centre, 0), ("PE", centre - index, 40_503))
        for opt, otm, salt in sides:
            contracts.append(Contract(underlying=feed.underlying, kind="OPT",
                                      expiry=feed.weekly_expiry,
                                      strike=float(index * feed.strike_step), option_type=opt))
            lots = m.oi_peak_lots * math.exp(
                -((otm - m.oi_peak_otm_strikes) ** 2) / (2.0 * m.oi_width_strikes ** 2))
            if index % 10 == 0:
                lots *= 1.6  # round numbers (every 500 for NIFTY's 50 step) attract writers
            elif index % 2 == 0:
                lots *= 1.2
            j = (index * 2_654_435_761 + salt) % _JITTER_TABLE_SIZE
            ois.append((lots + m.oi_floor_lots) * self.jitter[j] * feed.lot_size)
        entry = (contracts[0], contracts[1], ois[0], ois[1])
        self.strikes[index] = entry
        return entry

    def snapshot(self, ts: datetime, s: int, spot: float, vix: float) -> ChainSnapshot:
        feed = self.feed
        m = self.model
        step = feed.strike_step
        tick = self.tick
        lot = self.lot
        jitter = self.jitter
        prices = self.prices
        top = len(prices)
        t = (self.week_close_s - s) / SECONDS_PER_YEAR
        fwd = spot * math.exp(self.carry * t)
        disc = math.exp(-self.rate * t)
        atm_iv = vix / 100.0 * m.atm_iv_to_vix
        sqrt_t = math.sqrt(t)
        sd = atm_iv * sqrt_t
        vix_scale = vix / m.spread_vix_ref
        spreads = [max(1, round(m.spread_atm_ticks * vix_scale * (1.0 + m.spread_per_strike * d)))
                   for d in range(self.side + 1)]
        depth_scale = m.depth_atm_lots * min(1.0, 1.0 / vix_scale)
        depths = [depth_scale * k for k in self.decay]
        oi_growth = 1.0 + m.oi_intraday_growth * s / SESSION_SECONDS
        slope, curv, floor_ratio = m.skew_slope, m.skew_curvature, m.iv_floor_ratio
        z_cap = m.smile_flat_beyond_sd
        atm_index = round(spot / step)
        j0 = (s // feed.chain_every_s) * self.per_snapshot
        log, floor = math.log, math.floor
        quotes: list[Quote] = []
        append = quotes.append
        make_quote = _make_quote
        for i in range(-self.side, self.side + 1):
            index = atm_index + i
            entry = self.strikes.get(index) or self._strike(index)
            strike = index * step
            z = log(strike / fwd) / sd
            z = z_cap if z > z_cap else -z_cap if z < -z_cap else z
            iv = atm_iv * max(floor_ratio, 1.0 + slope * z + curv * z * z)
            call, put = black76_call_put(fwd, strike, t, self.rate, iv, disc=disc)
            dist = i if i >= 0 else -i
            spread_t = spreads[dist]
            half = 0.5 * spread_t * tick
            depth = depths[dist]
            iv_out = round(iv, 4)
            jj = (j0 + 4 * (i + self.side)) % _JITTER_TABLE_SIZE  # multiple of 4: jj+3 fits
            for contract, theo, oi, jk in ((entry[0], call, entry[2], jj),
                                           (entry[1], put, entry[3], jj + 2)):
                bid_t = floor((theo - half) / tick + 1e-9)
                if bid_t < 1:
                    bid_t = 1  # nobody bids below one tick; the ask stays a spread above
                ask_t = bid_t + spread_t
                ltp_t = floor(theo / tick + 0.5)
                ltp_t = bid_t if ltp_t < bid_t else ask_t if ltp_t > ask_t else ltp_t
                if ask_t < top:
                    bid, ask, ltp = prices[bid_t], prices[ask_t], prices[ltp_t]
                else:
                    bid, ask, ltp = self.price(bid_t), self.price(ask_t), self.price(ltp_t)
                append(make_quote(ts, contract, ltp, bid, ask,
                                  lot * (int(depth * jitter[jk] + 0.5) or 1),
                                  lot * (int(depth * jitter[jk + 1] + 0.5) or 1),
                                  int(oi * oi_growth + 0.5), iv_out))
        return ChainSnapshot(ts=ts, source=SOURCE, underlying=feed.underlying,
                             expiry=feed.weekly_expiry, spot=spot, quotes=tuple(quotes))


_QUOTE_FIELDS = ("ts", "source", "received", "contract", "ltp", "bid", "ask", "bid_qty",
                 "ask_qty", "oi", "iv")


def _quote_via_init(ts: datetime, contract: Contract, ltp: float, bid: float, ask: float,
                    bid_qty: int, ask_qty: int, oi: int, iv: float | None) -> Quote:
    return Quote(ts=ts, source=SOURCE, contract=contract, ltp=ltp, bid=bid, ask=ask,
                 bid_qty=bid_qty, ask_qty=ask_qty, oi=oi, iv=iv)


def _fast_quote_maker() -> Callable[[datetime, Contract, float, float, float, int, int, int,
                                     float | None], Quote]:
    """A day holds ~280,000 chain quotes, and a frozen dataclass's ``__init__`` (ten
    ``object.__setattr__`` calls through keyword binding) is half the generation time. Writing
    the slots through their descriptors builds the identical immutable object in half the time.
    If ``Quote`` ever gains or renames a field, this falls back to the constructor rather than
    build incomplete objects (a test compares both paths)."""
    if tuple(f.name for f in dataclasses.fields(Quote)) != _QUOTE_FIELDS:
        return _quote_via_init
    new = object.__new__
    s_ts, s_src, s_rcv, s_con, s_ltp, s_bid, s_ask, s_bq, s_aq, s_oi, s_iv = (
        getattr(Quote, name).__set__ for name in _QUOTE_FIELDS)

    def make(ts: datetime, contract: Contract, ltp: float, bid: float, ask: float,
             bid_qty: int, ask_qty: int, oi: int, iv: float | None) -> Quote:
        q: Quote = new(Quote)
        s_ts(q, ts)
        s_src(q, SOURCE)
        s_rcv(q, None)  # simulated data has no receive time
        s_con(q, contract)
        s_ltp(q, ltp)
        s_bid(q, bid)
        s_ask(q, ask)
        s_bq(q, bid_qty)
        s_aq(q, ask_qty)
        s_oi(q, oi)
        s_iv(q, iv)
        return q

    return make


_make_quote = _fast_quote_maker()


@functools.lru_cache(maxsize=4)
def _tick_prices(tick: float, decimals: int) -> tuple[float, ...]:
    """Every price on the tick grid up to 2,500 (50,000 ticks of 0.05), rounded once: the chain
    looks prices up instead of rounding ~800,000 floats a day."""
    return tuple(round(k * tick, decimals) for k in range(int(2_500 / tick) + 1))
