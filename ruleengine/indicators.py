"""Incremental indicators the tick engine updates once per closed bar.

Each update is O(1) and state is bounded (a few floats, or a ring of ``period`` values for SMA),
so a long-running session costs the same per bar at 15:25 as at 09:15 and never rescans history.
Everything is a pure function of the bars fed in (no clock, no randomness), so a replay gives the
same values as the live run.

Every indicator has the same shape (:class:`Indicator`): ``update(bar)`` returns the new value
and ``.value`` holds it. ``None`` means "not known yet" (still warming up, or the opening range is
not complete); the expression engine treats a missing value as an evaluation error and resolves
it to the safe side, so a cold indicator can never trigger an entry.

The definitions are pinned to polars so they can be checked against an independent computation
(``tests/test_indicators.py``):

* EMA: ``ewm_mean(span=period, adjust=False)``.
* SMA: ``rolling_mean(window_size=period)``.
* RSI and ATR: Wilder smoothing as ``ewm_mean(alpha=1/period, adjust=False,
  min_samples=period)``.

Timestamps are bar *start* times in exchange-local IST. Naive datetimes are taken as IST (the
data files and broker feeds carry no zone); aware ones are converted, so a UTC feed still finds
09:15. EMA, SMA, RSI and ATR run continuously across days (the overnight gap is real price
movement); VWAP and the opening range are per session and restart on the first bar of a new IST
date, or on :meth:`Indicator.reset`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Literal

IST = timezone(timedelta(hours=5, minutes=30))
SESSION_OPEN_S = 9 * 3600 + 15 * 60  # 09:15 IST, start of NSE continuous trading


@dataclass(frozen=True, slots=True)
class Bar:
    """One closed OHLCV bar; ``ts`` is its start time. Index bars carry ``volume=0``."""

    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0


def _ist(ts: datetime) -> datetime:
    return ts if ts.tzinfo is None else ts.astimezone(IST)


def _check_period(period: int) -> int:
    if period < 1:
        raise ValueError(f"period must be at least 1, got {period}")
    return period


class Indicator(ABC):
    """The one shape the engine relies on, so it can hold any mix of indicators in one list."""

    __slots__ = ("_value",)

    def __init__(self) -> None:
        self._value: float | None = None

    @property
    def value(self) -> float | None:
        """Latest value, or ``None`` while it is not yet defined."""
        return self._value

    @abstractmethod
    def update(self, bar: Bar) -> float | None:
        """Fold in one closed bar and return the new :attr:`value`."""

    @abstractmethod
    def reset(self) -> None:
        """Forget everything, as if newly made (for a new session or a replay)."""


class EMA(Indicator):
    """Exponential moving average of closes, alpha = 2 / (period + 1).

    Seeded with the first close (no SMA warm-up), so it has a value from the first bar, as
    polars ``ewm_mean(span=period, adjust=False)`` does. Early values lean on that seed; the
    seed's weight decays as (1 - alpha)^n, so strategies should not act on the first few bars.
    """

    __slots__ = ("_alpha", "period")

    def __init__(self, period: int) -> None:
        super().__init__()
        self.period = _check_period(period)
        self._alpha = 2.0 / (period + 1)

    def add(self, x: float) -> float | None:
        """Fold in one value; :meth:`update` feeds the bar's close through here."""
        v = self._value
        self._value = x if v is None else v + self._alpha * (x - v)
        return self._value

    def update(self, bar: Bar) -> float | None:
        return self.add(bar.close)

    def reset(self) -> None:
        self._value = None


def _two_sum(a: float, b: float) -> tuple[float, float]:
    """``a + b`` and its exact rounding error (Neumaier), to keep a running sum from drifting."""
    s = a + b
    err = (a - s) + b if abs(a) >= abs(b) else (b - s) + a
    return s, err


class SMA(Indicator):
    """Mean of the last ``period`` closes; ``None`` until ``period`` closes have been seen.

    A ring buffer plus a running sum makes each update O(1). Adding and subtracting forever would
    let rounding error accumulate (and one bad print would leave a permanent dent), so the sum
    carries a compensation term that keeps it as exact as a fresh sum of the window.
    """

    __slots__ = ("_buf", "_comp", "_sum", "period")

    def __init__(self, period: int) -> None:
        super().__init__()
        self.period = _check_period(period)
        self._buf: deque[float] = deque(maxlen=period)
        self._sum = 0.0
        self._comp = 0.0

    def _accumulate(self, x: float) -> None:
        self._sum, err = _two_sum(self._sum, x)
        self._comp += err

    def add(self, x: float) -> float | None:
        """Fold in one value; :meth:`update` feeds the bar's close through here."""
        if len(self._buf) == self.period:
            self._accumulate(-self._buf[0])  # the append below evicts it
        self._buf.append(x)
        self._accumulate(x)
        if len(self._buf) == self.period:
            self._value = (self._sum + self._comp) / self.period
        return self._value

    def update(self, bar: Bar) -> float | None:
        return self.add(bar.close)

    def reset(self) -> None:
        self._value = None
        self._buf.clear()
        self._sum = 0.0
        self._comp = 0.0


class RSI(Indicator):
    """Wilder's RSI of closes, defined exactly as follows.

    For each close after the first, ``change = close - previous close``, ``gain = max(change, 0)``
    and ``loss = max(-change, 0)``. Average gain and average loss are Wilder-smoothed (an EMA with
    alpha = 1/period) and seeded with the first change's gain and loss, i.e. polars
    ``diff().clip(...).ewm_mean(alpha=1/period, adjust=False)``. RSI = 100 * avg_gain /
    (avg_gain + avg_loss), the same as 100 - 100 / (1 + RS) but defined when avg_loss is 0 (RSI
    100). A flat market (both averages 0) reads 50: there is no direction, and 0 or 100 would
    look like an extreme.

    The value is ``None`` until ``period`` changes (``period + 1`` closes) have been seen, the
    warm-up of Wilder's original. His seed is an SMA of the first ``period`` changes rather than
    the first change; the two differ by a factor decaying as (1 - 1/period)^n.
    """

    __slots__ = ("_alpha", "_gain", "_loss", "_n", "_prev", "period")

    def __init__(self, period: int) -> None:
        super().__init__()
        self.period = _check_period(period)
        self._alpha = 1.0 / period
        self._prev: float | None = None
        self._gain = 0.0
        self._loss = 0.0
        self._n = 0  # changes seen, capped at period

    def add(self, x: float) -> float | None:
        """Fold in one value; :meth:`update` feeds the bar's close through here."""
        prev, self._prev = self._prev, x
        if prev is None:
            return None
        change = x - prev
        gain = change if change > 0 else 0.0
        loss = -change if change < 0 else 0.0
        if self._n == 0:
            self._gain, self._loss = gain, loss
        else:
            self._gain += self._alpha * (gain - self._gain)
            self._loss += self._alpha * (loss - self._loss)
        if self._n < self.period:
            self._n += 1
        if self._n == self.period:
            total = self._gain + self._loss
            self._value = 50.0 if total == 0.0 else 100.0 * self._gain / total
        return self._value

    def update(self, bar: Bar) -> float | None:
        return self.add(bar.close)

    def reset(self) -> None:
        self._value = None
        self._prev = None
        self._gain = 0.0
        self._loss = 0.0
        self._n = 0


class ATR(Indicator):
    """Wilder's average true range.

    True range is max(high - low, |high - previous close|, |low - previous close|); the very first
    bar has no previous close, so its true range is high - low. ATR is the Wilder smoothing
    (alpha = 1/period) of true range, seeded with the first bar's true range, i.e. polars
    ``ewm_mean(alpha=1/period, adjust=False, min_samples=period)``. The value is ``None`` until
    ``period`` bars have been seen, so a stop sized off ATR is never sized off one bar.
    The previous close carries across days, so the opening gap counts as range.
    """

    __slots__ = ("_alpha", "_avg", "_n", "_prev_close", "period")

    def __init__(self, period: int) -> None:
        super().__init__()
        self.period = _check_period(period)
        self._alpha = 1.0 / period
        self._prev_close: float | None = None
        self._avg = 0.0
        self._n = 0  # bars seen, capped at period

    def update(self, bar: Bar) -> float | None:
        tr = bar.high - bar.low
        pc = self._prev_close
        if pc is not None:
            tr = max(tr, abs(bar.high - pc), abs(bar.low - pc))
        self._prev_close = bar.close
        if self._n == 0:
            self._avg = tr
        else:
            self._avg += self._alpha * (tr - self._avg)
        if self._n < self.period:
            self._n += 1
        if self._n == self.period:
            self._value = self._avg
        return self._value

    def reset(self) -> None:
        self._value = None
        self._prev_close = None
        self._avg = 0.0
        self._n = 0


class VWAP(Indicator):
    """Session VWAP of typical price (high + low + close) / 3, restarting each IST date.

    VWAP = sum(typical * volume) / sum(volume) over the session's bars so far. NIFTY and other
    index bars carry no volume (an index is not traded), so while the session's volume is still
    0 the value falls back to the plain mean of typical prices, which is what a volume weighting
    degenerates to when every bar weighs the same. Once any volume has been seen, zero-volume
    bars get zero weight, as the formula says. Negative volume is a feed error and is refused.
    """

    __slots__ = ("_day", "_n", "_pv", "_tp", "_vol")

    def __init__(self) -> None:
        super().__init__()
        self._day: date | None = None
        self._pv = 0.0
        self._vol = 0.0
        self._tp = 0.0
        self._n = 0

    def update(self, bar: Bar) -> float | None:
        if bar.volume < 0:
            raise ValueError(f"bar at {bar.ts} has negative volume {bar.volume}")
        day = _ist(bar.ts).date()
        if day != self._day:
            self.reset()
            self._day = day
        typical = (bar.high + bar.low + bar.close) / 3.0
        self._pv += typical * bar.volume
        self._vol += bar.volume
        self._tp += typical
        self._n += 1
        self._value = self._pv / self._vol if self._vol > 0 else self._tp / self._n
        return self._value

    def reset(self) -> None:
        self._value = None
        self._day = None
        self._pv = 0.0
        self._vol = 0.0
        self._tp = 0.0
        self._n = 0


class OpeningRange(Indicator):
    """High (or low) of the session's first ``minutes`` minutes from 09:15 IST.

    The range is made of the bars whose *start* time lies in [09:15, 09:15 + minutes); bars
    before 09:15 (pre-open prints) are ignored. The value stays ``None`` until the range is
    complete, so a breakout rule cannot fire on a half-built range, and then holds for the rest
    of the session. The range is complete when a bar starting at or after the window end arrives,
    or earlier, when ``bar_seconds`` (the bar length) says an in-window bar already ends at the
    window end: with 5-minute bars and ``bar_seconds=300`` a 15-minute range is known when the
    09:25 bar closes rather than one bar later. ``bar_seconds=0`` (bar length unknown) always
    waits for that next bar. If no bar fell inside the window the value stays ``None`` that day.
    """

    __slots__ = ("_day", "_done", "_end_s", "_high", "_low", "bar_seconds", "minutes", "side")

    def __init__(self, minutes: int, side: Literal["high", "low"], bar_seconds: int = 0) -> None:
        super().__init__()
        if side not in ("high", "low"):
            raise ValueError(f"side must be 'high' or 'low', got {side!r}")
        if bar_seconds < 0:
            raise ValueError(f"bar_seconds must not be negative, got {bar_seconds}")
        self.minutes = _check_period(minutes)
        self.side = side
        self.bar_seconds = bar_seconds
        self._end_s = SESSION_OPEN_S + minutes * 60
        self._day: date | None = None
        self._high: float | None = None
        self._low: float | None = None
        self._done = False

    def update(self, bar: Bar) -> float | None:
        ts = _ist(bar.ts)
        if ts.date() != self._day:
            self.reset()
            self._day = ts.date()
        if self._done:
            return self._value
        start_s = ts.hour * 3600 + ts.minute * 60 + ts.second
        if start_s >= self._end_s:
            self._finish()
        elif start_s >= SESSION_OPEN_S:
            self._high = bar.high if self._high is None else max(self._high, bar.high)
            self._low = bar.low if self._low is None else min(self._low, bar.low)
            if start_s + self.bar_seconds >= self._end_s:
                self._finish()
        return self._value

    def _finish(self) -> None:
        self._done = True
        self._value = self._high if self.side == "high" else self._low

    def reset(self) -> None:
        self._value = None
        self._day = None
        self._high = None
        self._low = None
        self._done = False


_MAKERS: dict[str, Callable[[int, int], Indicator]] = {
    "ema": lambda period, _bar_s: EMA(period),
    "sma": lambda period, _bar_s: SMA(period),
    "rsi": lambda period, _bar_s: RSI(period),
    "atr": lambda period, _bar_s: ATR(period),
    "vwap": lambda _period, _bar_s: VWAP(),
    "orb_high": lambda period, bar_s: OpeningRange(period, "high", bar_s),
    "orb_low": lambda period, bar_s: OpeningRange(period, "low", bar_s),
}

INDICATOR_TYPES: tuple[str, ...] = tuple(_MAKERS)


def make_indicator(type: str, period: int, *, bar_seconds: int = 0) -> Indicator:
    """Build the indicator a strategy's YAML names (``type`` and ``period`` as in the schema).

    ``period`` is bars for ema/sma/rsi/atr, minutes of the opening range for orb_high/orb_low,
    and unused for vwap. Pass the strategy's bar length as ``bar_seconds`` so an opening range
    completes as its last bar closes (see :class:`OpeningRange`); the others ignore it.
    """
    maker = _MAKERS.get(type)
    if maker is None:
        raise ValueError(f"unknown indicator type {type!r}; known: {', '.join(INDICATOR_TYPES)}")
    return maker(_check_period(period), bar_seconds)
