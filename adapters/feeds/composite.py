"""Several feeds as one stream, each event tagged with the name of the feed it came from.

The engine decides which feed to believe (priority, failover, failback, divergence) from these
names; this adapter only merges by exchange time, so the decision stays in the deterministic
core and is audited there.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Iterator, Sequence
from datetime import datetime

from ruleengine.contracts import Feed
from ruleengine.events import Event


class CompositeFeed:
    name = "composite"

    def __init__(self, feeds: Sequence[tuple[str, Feed]]) -> None:
        if not feeds:
            raise ValueError("a composite feed needs at least one feed")
        self.feeds = tuple(feeds)

    def events(self) -> Iterator[Event]:
        streams = [_tagged(rank, name, feed) for rank, (name, feed) in enumerate(self.feeds)]
        for _ts, _rank, _i, event in heapq.merge(*streams, key=lambda item: item[:3]):
            yield event


def _tagged(rank: int, name: str, feed: Feed) -> Iterator[tuple[datetime, int, int, Event]]:
    for i, event in enumerate(feed.events()):
        yield event.ts, rank, i, dataclasses.replace(event, source=name)
