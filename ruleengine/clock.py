"""Where the market-hours runner learns the time: the one module allowed to read the wall clock.

The engine takes time from events; the scheduler that decides *when* to start a day needs "now"
and a way to wait. Putting both behind :class:`Clock` keeps the wall clock at this edge, and lets
tests swap in :class:`SimulatedClock`, which jumps instead of sleeping, so a whole simulated week
of jobs runs in well under a second with exactly the times a real week would have.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from .calendar import IST

__all__ = ["Clock", "SimulatedClock", "WallClock"]


@runtime_checkable
class Clock(Protocol):
    """Current time in IST, and waiting until a moment.

    ``sleep_until`` may return early when woken (so a stop request is not stuck behind an
    overnight sleep); callers re-check ``now()`` and sleep again if they must.
    """

    def now(self) -> datetime: ...

    def sleep_until(self, when: datetime) -> None: ...


def _aware(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError(f"{when} has no time zone; the clock works in aware IST datetimes")
    return when.astimezone(IST)


class WallClock:
    """Real time. ``wake()`` (from a signal handler or another thread) ends a sleep early."""

    def __init__(self) -> None:
        self._wake = threading.Event()

    def now(self) -> datetime:
        return datetime.now(IST)

    def sleep_until(self, when: datetime) -> None:
        when = _aware(when)
        while True:
            left = (when - self.now()).total_seconds()
            if left <= 0:
                return
            # bounded steps, so a suspended laptop or an NTP step is noticed promptly
            if self._wake.wait(min(left, 60.0)):
                self._wake.clear()
                return

    def wake(self) -> None:
        """End the current sleep, or the next one if none is in progress (never lost)."""
        self._wake.set()


class SimulatedClock:
    """A clock that only moves when told to: ``sleep_until`` jumps, ``advance`` simulates a
    stall or downtime (time passing while the process was not looking)."""

    def __init__(self, start: datetime) -> None:
        self._now = _aware(start)

    def now(self) -> datetime:
        return self._now

    def sleep_until(self, when: datetime) -> None:
        self._now = max(self._now, _aware(when))

    def advance(self, by: timedelta) -> datetime:
        if by < timedelta(0):
            raise ValueError("a clock does not run backwards")
        self._now += by
        return self._now

    def set(self, when: datetime) -> None:
        when = _aware(when)
        if when < self._now:
            raise ValueError(f"a clock does not run backwards ({when} < {self._now})")
        self._now = when
