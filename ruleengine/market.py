"""Stage 1 — market state: what the engine currently believes about prices, and how fresh it is.

Each event updates the state in O(1). Ticks outside the regular session (the 09:08 pre-open
print, post-close prints) are classified and kept out of prices, because trading on an
auction-indicative value is trading on a price nobody could deal at.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from .dataquality import DQParams, InstrumentFeeds, Note, maintain, screen
from .events import (
    Bar,
    ChainSnapshot,
    Contract,
    Event,
    IndexTick,
    PreviousClose,
    Quote,
    VixTick,
)

SESSION_OPEN_S = 9 * 3600 + 15 * 60
SESSION_CLOSE_S = 15 * 3600 + 30 * 60
MOVE_WINDOWS_MIN = (1, 5, 10, 15, 30)


def seconds_of_day(ts: datetime) -> int:
    return ts.hour * 3600 + ts.minute * 60 + ts.second


def in_session(ts: datetime) -> bool:
    """Regular NSE session, 09:15:00 to 15:30:00 inclusive (exchange facts, not a tunable)."""
    return in_session_s(seconds_of_day(ts))


def in_session_s(secs: int) -> bool:
    """:func:`in_session` at a second of the day the caller has already worked out."""
    return SESSION_OPEN_S <= secs <= SESSION_CLOSE_S


@dataclass(slots=True)
class UnderlyingState:
    symbol: str
    spot: float | None = None
    spot_ts: datetime | None = None
    prev_close: float | None = None
    open: float | None = None
    high: float | None = None
    low: float | None = None
    fut: Quote | None = None
    fut_ts: datetime | None = None
    chain_ts: datetime | None = None
    expiries: tuple[date, ...] = ()
    minute_marks: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=32))
    day: date | None = None
    chain_expiry: date | None = None
    chain_strikes: int = 0  # valid strikes on the thinner side of ATM, both CE and PE
    feeds: InstrumentFeeds = field(default_factory=InstrumentFeeds)
    chain_shape: ChainShape | None = field(default=None, repr=False, compare=False)
    # window -> (newest minute mark when worked out, the window's first price): the window's
    # start moves once a minute, not once a tick, and scanning the marks is the costly part
    move_refs: dict[int, tuple[tuple[int, float], float]] = field(
        default_factory=dict, repr=False, compare=False)

    def move_pct(self, minutes: int) -> float | None:
        """Move from the oldest price inside the last ``minutes`` (from the minute it started).
        Only prices inside the window count, so a session younger than the window, or the
        first minutes after a halt, measure from their own first price rather than from
        before the gap."""
        if self.spot is None or not self.minute_marks:
            return None
        newest = self.minute_marks[-1]  # a new object whenever the marks change
        ref = self.move_refs.get(minutes)
        if ref is None or ref[0] is not newest:
            target = newest[0] - minutes
            for minute, value in self.minute_marks:  # always found: newest is inside
                if minute >= target:
                    ref = self.move_refs[minutes] = (newest, value)
                    break
            else:
                return None
        value = ref[1]
        return (self.spot - value) / value * 100.0


@dataclass(slots=True)
class MarketState:
    underlyings: dict[str, UnderlyingState] = field(default_factory=dict)
    quotes: dict[Contract, Quote] = field(default_factory=dict)
    vix: float | None = None
    vix_ts: datetime | None = None
    vix_prev_close: float | None = None
    vix_low: float | None = None
    now: datetime | None = None
    params: DQParams = field(default_factory=DQParams)
    vix_feeds: InstrumentFeeds = field(default_factory=InstrumentFeeds)
    notes: list[Note] = field(default_factory=list)  # drained by the engine each tick

    def underlying(self, symbol: str) -> UnderlyingState:
        u = self.underlyings.get(symbol)
        if u is None:
            u = self.underlyings[symbol] = UnderlyingState(symbol=symbol)
        return u

    def apply(self, event: Event) -> str | None:
        """Fold one event in; returns a classification when the tick was kept out of prices."""
        if self.now is None or event.ts > self.now:
            self.now = event.ts
        # the event types are unrelated classes, so the order of the tests is free: most
        # frequent first
        if isinstance(event, IndexTick):
            return self._index(event)
        if isinstance(event, Quote):
            if not in_session(event.ts):
                return "out_of_session"
            contract = event.contract
            self.quotes[contract] = event
            if contract.kind == "FUT":
                u = self.underlying(contract.underlying)
                u.fut, u.fut_ts = event, event.ts
            return None
        if isinstance(event, VixTick):
            if not in_session(event.ts):
                return "out_of_session"
            ok = screen(self.vix_feeds, event.source, event.ts, event.value, event.received,
                        self.params, "VIX", self.notes)
            if ok and self.vix_feeds.active in (None, event.source):
                self.vix_feeds.active = event.source
                self._set_vix(event.value, event.ts)
            return None
        if isinstance(event, ChainSnapshot):
            if not in_session(event.ts):
                return "out_of_session"
            u = self.underlying(event.underlying)
            for q in event.quotes:
                self.quotes[q.contract] = q
            u.chain_ts = event.ts
            if event.expiry not in u.expiries:
                u.expiries = tuple(sorted((*u.expiries, event.expiry)))
            if u.chain_expiry is None or event.expiry <= u.chain_expiry or \
                    u.chain_expiry < event.ts.date():
                u.chain_expiry = event.expiry
                u.chain_strikes = chain_strikes(u, event)
            return None
        if isinstance(event, Bar):
            return None  # bars feed indicators; their closing value arrives as an IndexTick
        if isinstance(event, PreviousClose):
            u = self.underlying(event.underlying)
            u.prev_close = event.close
            if event.vix_close is not None:
                self.vix_prev_close = event.vix_close
            return None
        return None

    def _index(self, event: IndexTick) -> str | None:
        ts = event.ts
        secs = seconds_of_day(ts)
        if secs < SESSION_OPEN_S:
            return "pre_open"
        if secs > SESSION_CLOSE_S:
            return "post_close"
        u = self.underlying(event.underlying)
        ok = screen(u.feeds, event.source, ts, event.value, event.received, self.params,
                    event.underlying, self.notes)
        if ok and u.feeds.active in (None, event.source):
            u.feeds.active = event.source
            self._set_spot(u, event.value, ts, secs)
        return None

    def _set_spot(self, u: UnderlyingState, value: float, ts: datetime,
                  secs: int | None = None) -> None:
        """``secs`` is ``ts``'s second of the day, when the caller has it already."""
        if secs is None:
            secs = seconds_of_day(ts)
        day = ts.date()
        if u.day != day:
            if u.day is not None and u.spot is not None:
                u.prev_close = u.spot
            u.day, u.open, u.high, u.low = day, value, value, value
            u.minute_marks.clear()
            self.vix_low = self.vix
        u.spot, u.spot_ts = value, ts
        if value > (u.high or value):
            u.high = value
        if value < (u.low or value):
            u.low = value
        minute = secs // 60
        if not u.minute_marks or u.minute_marks[-1][0] != minute:
            u.minute_marks.append((minute, value))

    def _set_vix(self, value: float, ts: datetime) -> None:
        self.vix, self.vix_ts = value, ts
        self.vix_low = value if self.vix_low is None else min(self.vix_low, value)

    def maintain(self, now: datetime, secs: int | None = None) -> None:
        """Fail over or back between feeds; a switch makes the new feed's value the price.
        ``secs`` is ``now``'s second of the day, when the caller has it already."""
        p = self.params
        limits = p.thresholds_at(seconds_of_day(now) if secs is None else secs)
        for u in self.underlyings.values():
            before = u.feeds.active
            maintain(u.feeds, now, limits.underlying, p, u.symbol, self.notes)
            if u.feeds.active != before and u.feeds.active is not None:
                t = u.feeds.sources[u.feeds.active]
                if t.value is not None and t.ts is not None:
                    self._set_spot(u, t.value, t.ts)
        before = self.vix_feeds.active
        maintain(self.vix_feeds, now, limits.vix, p, "VIX", self.notes)
        if self.vix_feeds.active != before and self.vix_feeds.active is not None:
            t = self.vix_feeds.sources[self.vix_feeds.active]
            if t.value is not None and t.ts is not None:
                self._set_vix(t.value, t.ts)

    def mark_price(self, contract: Contract) -> float | None:
        """Mid when both sides are quoted, else the last price; None when never quoted."""
        q = self.quotes.get(contract)
        if q is None:
            return None
        if q.bid is not None and q.ask is not None and q.bid > 0:
            return (q.bid + q.ask) / 2.0
        return q.ltp


def valid_strikes_each_side(chain: ChainSnapshot) -> int:
    """Unbroken run of strikes, outward from ATM on the thinner side, whose call and put both
    have a usable quote (bid > 0, ask above bid). A hole next to ATM is what breaks a strategy,
    so strikes beyond a missing one do not count. The step is the chain's own smallest gap."""
    good: dict[float, int] = {}
    strikes: set[float] = set()
    for q in chain.quotes:
        k = q.contract.strike
        if k is None:
            continue
        strikes.add(k)
        if q.bid is not None and q.ask is not None and q.bid > 0 and q.ask > q.bid:
            good[k] = good.get(k, 0) + 1
    step = _strike_step(strikes)
    if step is None:
        return 0
    return _unbroken_run(good, round(chain.spot / step) * step, step)


def _strike_step(strikes: Iterable[float]) -> float | None:
    """The smallest gap between distinct strikes; None with fewer than two."""
    ordered = sorted(strikes)
    gaps = [b - a for a, b in itertools.pairwise(ordered) if b > a]
    return min(gaps) if gaps else None


def _unbroken_run(good: dict[float, int], atm: float, step: float) -> int:
    """Strikes on the thinner side of ``atm`` with two usable quotes, up to the first hole."""
    sides = []
    for direction in (-1, 1):
        n, k = 0, atm + direction * step
        while good.get(k, 0) >= 2:
            n += 1
            k += direction * step
        sides.append(n)
    return min(sides)


@dataclass(slots=True)
class ChainShape:
    """What :func:`valid_strikes_each_side` needs from a chain's contracts alone.

    A feed sends the same contracts (usually the very same objects) snapshot after snapshot
    until ATM moves. When every quote of a snapshot is usable, ``good`` is simply the number of
    contracts per strike, so the answer depends on nothing but ATM and is kept per ATM: a
    snapshot then costs one read-only pass over its quotes instead of counting strikes, sorting
    them and walking out from ATM (about a third of the time).
    """

    contracts: list[Contract]
    per_strike: dict[float, int]
    step: float | None
    plain: bool  # False: leave such a chain to valid_strikes_each_side itself
    by_atm: dict[float, int] = field(default_factory=dict)

    @classmethod
    def of(cls, contracts: list[Contract]) -> ChainShape:
        per_strike: dict[float, int] = {}
        for c in contracts:
            if c.strike is not None:
                per_strike[c.strike] = per_strike.get(c.strike, 0) + 1
        step = _strike_step(per_strike)
        # A NaN strike has no place in the sorted order, so the step would depend on set
        # iteration order; an infinite step makes ATM a NaN. Neither is worth remembering.
        plain = all(k == k for k in per_strike) and step != math.inf
        return cls(contracts, per_strike, step, plain)


def chain_strikes(u: UnderlyingState, chain: ChainSnapshot) -> int:
    """:func:`valid_strikes_each_side` of ``chain``, the same number, remembered in
    ``u.chain_shape`` for the usual case of a fully usable chain with unchanged contracts."""
    if not _all_usable(chain.quotes):
        return valid_strikes_each_side(chain)
    contracts = [q.contract for q in chain.quotes]
    shape = u.chain_shape
    if shape is None or shape.contracts != contracts:
        shape = u.chain_shape = ChainShape.of(contracts)
    if not shape.plain:
        return valid_strikes_each_side(chain)
    if shape.step is None:
        return 0
    atm = round(chain.spot / shape.step) * shape.step
    n = shape.by_atm.get(atm)
    if n is None:
        n = shape.by_atm[atm] = _unbroken_run(shape.per_strike, atm, shape.step)
    return n


def _all_usable(quotes: tuple[Quote, ...]) -> bool:
    """bid > 0 and ask above bid for every quote, the test of valid_strikes_each_side."""
    for q in quotes:
        bid, ask = q.bid, q.ask
        if bid is None or ask is None or not (bid > 0 and ask > bid):
            return False
    return True
