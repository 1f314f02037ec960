"""Contract facts per underlying, read from the ``instruments`` policy kind.

Lot sizes and freeze quantities change (NSE revises them), so they are dated schedules looked up
by trading date, never constants in code.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """Values that change on known dates: ``value_on(day)`` is the one in force that day."""

    dates: tuple[date, ...]
    values: tuple[int, ...]

    @classmethod
    def from_entries(cls, entries: list[Mapping[str, Any]]) -> Schedule:
        pairs = sorted((date.fromisoformat(e["effective_from"]), int(e["value"])) for e in entries)
        return cls(dates=tuple(p[0] for p in pairs), values=tuple(p[1] for p in pairs))

    def value_on(self, day: date) -> int:
        i = bisect.bisect_right(self.dates, day) - 1
        return self.values[max(i, 0)]

    @property
    def latest(self) -> int:
        return self.values[-1]


@dataclass(frozen=True, slots=True, kw_only=True)
class Instrument:
    symbol: str
    exchange: str
    segment: str
    strike_step: float
    tick_size: float
    lot_sizes: Schedule
    freeze_qty: Schedule
    expiries: tuple[tuple[date, str, str], ...]  # (effective_from, weekly, monthly)

    def lot_size(self, day: date) -> int:
        return self.lot_sizes.value_on(day)

    def freeze(self, day: date) -> int:
        return self.freeze_qty.value_on(day)

    def max_lots_per_order(self, day: date) -> int:
        """The exchange's ceiling in lots: floor(freeze / lot)."""
        return self.freeze(day) // self.lot_size(day)

    def expiry_pattern(self, day: date) -> tuple[str, str]:
        """(weekly weekday or "none", monthly weekday) in force on ``day``."""
        current = ("none", "thursday")
        for start, weekly, monthly in self.expiries:
            if start <= day:
                current = (weekly, monthly)
        return current


def build_instrument(entry: Mapping[str, Any]) -> Instrument:
    expiries = sorted((date.fromisoformat(e["effective_from"]), e["weekly"], e["monthly"])
                      for e in entry.get("expiries", []))
    return Instrument(
        symbol=entry["symbol"], exchange=entry["exchange"], segment=entry["segment"],
        strike_step=float(entry["strike_step"]), tick_size=float(entry["tick_size"]),
        lot_sizes=Schedule.from_entries(entry["lot_sizes"]),
        freeze_qty=Schedule.from_entries(entry["freeze_qty"]),
        expiries=tuple(expiries),
    )
