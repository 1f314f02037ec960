"""Stage 1 — market state: what the engine currently believes about prices, and how fresh it is.

Each event updates the state in O(1). Ticks outside the regular session (the 09:08 pre-open
print, post-close prints) are classified and kept out of prices, because trading on an
auction-indicative value is trading on a price nobody could deal at.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime

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
    return SESSION_OPEN_S <= seconds_of_day(ts) <= SESSION_CLOSE_S


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

    def move_pct(self, minutes: int) -> float | None:
        """Move from the value at the start of the minute ``minutes`` ago, or from the first
        value of the session while it is younger than that (so a fast-move breaker works from
        the first minute instead of failing safe for its whole window)."""
        if self.spot is None or not self.minute_marks:
            return None
        target = self.minute_marks[-1][0] - minutes
        base = self.minute_marks[0][1]
        for minute, value in self.minute_marks:
            if minute > target:
                break
            base = value
        return (self.spot - base) / base * 100.0


@dataclass(slots=True)
class MarketState:
    underlyings: dict[str, UnderlyingState] = field(default_factory=dict)
    quotes: dict[Contract, Quote] = field(default_factory=dict)
    vix: float | None = None
    vix_ts: datetime | None = None
    vix_prev_close: float | None = None
    vix_low: float | None = None
    now: datetime | None = None

    def underlying(self, symbol: str) -> UnderlyingState:
        u = self.underlyings.get(symbol)
        if u is None:
            u = self.underlyings[symbol] = UnderlyingState(symbol=symbol)
        return u

    def apply(self, event: Event) -> str | None:
        """Fold one event in; returns a classification when the tick was kept out of prices."""
        if self.now is None or event.ts > self.now:
            self.now = event.ts
        if isinstance(event, IndexTick):
            return self._index(event.underlying, event.value, event.ts)
        if isinstance(event, Bar):
            return None  # bars feed indicators; their closing value arrives as an IndexTick
        if isinstance(event, Quote):
            if not in_session(event.ts):
                return "out_of_session"
            self.quotes[event.contract] = event
            if event.contract.kind == "FUT":
                u = self.underlying(event.contract.underlying)
                u.fut, u.fut_ts = event, event.ts
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
            return None
        if isinstance(event, VixTick):
            if not in_session(event.ts):
                return "out_of_session"
            self.vix, self.vix_ts = event.value, event.ts
            self.vix_low = event.value if self.vix_low is None else min(self.vix_low, event.value)
            return None
        if isinstance(event, PreviousClose):
            u = self.underlying(event.underlying)
            u.prev_close = event.close
            if event.vix_close is not None:
                self.vix_prev_close = event.vix_close
            return None
        return None

    def _index(self, symbol: str, value: float, ts: datetime) -> str | None:
        secs = seconds_of_day(ts)
        if secs < SESSION_OPEN_S:
            return "pre_open"
        if secs > SESSION_CLOSE_S:
            return "post_close"
        u = self.underlying(symbol)
        if u.day != ts.date():
            if u.day is not None and u.spot is not None:
                u.prev_close = u.spot
            u.day, u.open, u.high, u.low = ts.date(), value, value, value
            u.minute_marks.clear()
            self.vix_low = self.vix
        u.spot, u.spot_ts = value, ts
        u.high = value if u.high is None else max(u.high, value)
        u.low = value if u.low is None else min(u.low, value)
        minute = secs // 60
        if not u.minute_marks or u.minute_marks[-1][0] != minute:
            u.minute_marks.append((minute, value))
        return None

    def mark_price(self, contract: Contract) -> float | None:
        """Mid when both sides are quoted, else the last price; None when never quoted."""
        q = self.quotes.get(contract)
        if q is None:
            return None
        if q.bid is not None and q.ask is not None and q.bid > 0:
            return (q.bid + q.ask) / 2.0
        return q.ltp
