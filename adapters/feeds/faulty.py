"""A feed wrapper that breaks a good feed in the ways real feeds break, deterministically.

Used by tests and rehearsals: a feed that dies and recovers, a source clock running ahead,
duplicated ticks, ticks delivered late and out of order, and an option chain missing strikes
near the money. Every fault is a pure function of the wrapped stream and the settings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import time, timedelta

from ruleengine.contracts import Feed
from ruleengine.events import ChainSnapshot, Event, IndexTick, Timer, VixTick


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedFaults:
    dies_at: time | None = None  # nothing from this time ...
    recovers_at: time | None = None  # ... until this one
    clock_skew_s: float = 0.0  # stamp ticks this far ahead of when they were received
    duplicate_every: int = 0  # repeat every Nth index tick
    late_every: int = 0  # deliver every Nth index tick this late, after newer ones
    late_by_s: float = 2.0
    missing_strikes: int = 0  # drop the strikes nearest the money from every chain


class FaultyFeed:
    def __init__(self, feed: Feed, faults: FeedFaults) -> None:
        self.feed = feed
        self.faults = faults
        self.name = f"faulty:{feed.name}"

    def _dead(self, event: Event) -> bool:
        """A dead feed sends no data; Timer events are the simulation's clock and still pass."""
        f = self.faults
        if f.dies_at is None or isinstance(event, Timer):
            return False
        t = event.ts.time()
        return t >= f.dies_at and (f.recovers_at is None or t < f.recovers_at)

    def events(self) -> Iterator[Event]:
        f = self.faults
        held: list[tuple[Event, Event]] = []  # (late event, release after this time)
        count = 0
        for event in self.feed.events():
            if self._dead(event):
                continue
            while held and held[0][1].ts <= event.ts:
                yield held.pop(0)[0]
            if f.clock_skew_s and isinstance(event, (IndexTick, VixTick)):
                event = dataclasses.replace(event, received=event.ts,
                                            ts=event.ts + timedelta(seconds=f.clock_skew_s))
            if isinstance(event, ChainSnapshot) and f.missing_strikes:
                event = _without_strikes(event, f.missing_strikes)
            if isinstance(event, IndexTick):
                count += 1
                if f.late_every and count % f.late_every == 0:
                    release = dataclasses.replace(event, ts=event.ts +
                                                  timedelta(seconds=f.late_by_s))
                    held.append((event, release))
                    continue
                if f.duplicate_every and count % f.duplicate_every == 0:
                    yield event
            yield event
        for late, _release in held:
            yield late


def _without_strikes(chain: ChainSnapshot, n: int) -> ChainSnapshot:
    strikes = sorted({q.contract.strike for q in chain.quotes if q.contract.strike is not None},
                     key=lambda k: abs(k - chain.spot))
    dropped = set(strikes[:n])
    return dataclasses.replace(chain, quotes=tuple(q for q in chain.quotes
                                                   if q.contract.strike not in dropped))
