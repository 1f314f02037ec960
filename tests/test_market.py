"""Market state: the window moves the flash-crash and similar rules read.

``UnderlyingState.move_pct`` remembers each window's first price until the minute marks change;
these tests hold it to a plain scan of the marks over random days, halts and new sessions.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from ruleengine.market import MarketState, UnderlyingState

WINDOWS = (1, 5, 10, 15, 30)


def scanned_move(u: UnderlyingState, minutes: int) -> float | None:
    """The definition, without any caching: from the oldest mark inside the window."""
    if u.spot is None or not u.minute_marks:
        return None
    target = u.minute_marks[-1][0] - minutes
    for minute, value in u.minute_marks:
        if minute >= target:
            return (u.spot - value) / value * 100.0
    return None


# (seconds since the previous tick, price change in points); long gaps are halts or, past a
# day, a new session that must reset the marks
steps = st.lists(st.tuples(st.sampled_from([1, 7, 59, 61, 600, 2700, 86_400]),
                           st.floats(min_value=-40.0, max_value=40.0)),
                 min_size=1, max_size=120)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_move_windows_equal_a_scan_of_the_minute_marks(path: list[tuple[int, float]]) -> None:
    market = MarketState()
    u = market.underlying("NIFTY")
    ts, price = datetime(2026, 11, 24, 9, 15), 24_000.0
    for gap, change in path:
        ts += timedelta(seconds=gap)
        price = max(price + change, 1.0)
        market._set_spot(u, price, ts)
        for minutes in WINDOWS:
            assert u.move_pct(minutes) == scanned_move(u, minutes)


def test_a_new_session_measures_from_its_own_first_price() -> None:
    market = MarketState()
    u = market.underlying("NIFTY")
    day1 = datetime(2026, 11, 24, 15, 20)
    market._set_spot(u, 24_000.0, day1)
    market._set_spot(u, 24_100.0, day1 + timedelta(minutes=5))
    assert u.move_pct(10) == (24_100.0 - 24_000.0) / 24_000.0 * 100.0
    day2 = datetime(2026, 11, 25, 9, 15)
    market._set_spot(u, 23_500.0, day2)  # a gap down overnight is not a 10-minute move
    assert u.move_pct(10) == 0.0
    market._set_spot(u, 23_030.0, day2 + timedelta(minutes=3))
    assert u.move_pct(10) == (23_030.0 - 23_500.0) / 23_500.0 * 100.0
