"""Stage 1 (continued) — how much each price can be trusted, and which feed to believe.

Every index or VIX tick is screened before it can become a price: stamped in the future (clock
skew at the source), out of order, a duplicate, a jump nobody confirms, or a call-auction print
after an exchange halt. A screened tick is recorded with its reason, never silently dropped.
Several feeds for one instrument are ranked by policy; the engine fails over when the active one
goes stale and fails back only after the better one has been fresh for a while (hysteresis),
so a flapping feed cannot make prices jump back and forth. All of it runs on event time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from .functions import parse_duration, parse_hhmm


class Thresholds(NamedTuple):
    """Seconds without a tick after which each class of price counts as stale."""

    underlying: float
    futures: float
    options: float
    vix: float


_NO_THRESHOLDS = Thresholds(0.0, 0.0, 0.0, 0.0)  # never returned: its interval is empty


@dataclass(frozen=True, slots=True, kw_only=True)
class DQParams:
    """Data-quality thresholds from the ``data_quality`` policy (defaults = schema defaults)."""

    stale_underlying_s: float = 3.0
    stale_futures_s: float = 5.0
    stale_options_s: float = 10.0
    stale_vix_s: float = 60.0
    future_tolerance_s: float = 2.0
    reject_out_of_order: bool = True
    reject_duplicates: bool = True
    max_jump_pct: float = 1.5
    confirm_within_s: float = 10.0
    silence_s: float = 120.0
    halt_minutes: tuple[float, ...] = (15.0, 45.0, 105.0)
    auction_s: float = 900.0
    tolerance_s: float = 300.0
    priority: tuple[str, ...] = ()
    failback_after_s: float = 60.0
    divergence_pct: float = 0.3
    min_strikes_each_side: int = 5
    phases: tuple[tuple[int, int, tuple[tuple[str, float], ...]], ...] = ()
    # Derived from the fields above in __post_init__ (the dataclass is frozen, so they never go
    # out of date); stale_s is asked several times a tick and should not rescan the phases.
    _windows: dict[str, tuple[tuple[int, int, float], ...]] = field(
        init=False, repr=False, compare=False)
    _defaults: dict[str, float] = field(init=False, repr=False, compare=False)
    _edges: tuple[int, ...] = field(init=False, repr=False, compare=False)  # phase starts/ends
    # (from, until, thresholds): the seconds of the day over which the last answer holds
    _last: tuple[int, int, Thresholds] = field(init=False, repr=False, compare=False,
                                               default=(0, -1, _NO_THRESHOLDS))

    def __post_init__(self) -> None:
        windows: dict[str, list[tuple[int, int, float]]] = {}
        for start, end, overrides in self.phases:  # in order, so the first match still wins
            for name, value in overrides:
                windows.setdefault(name, []).append((start, end, value))
        object.__setattr__(self, "_windows", {k: tuple(v) for k, v in windows.items()})
        object.__setattr__(self, "_edges", tuple(sorted(
            {edge for start, end, _ in self.phases for edge in (start, end)})))
        object.__setattr__(self, "_defaults", {
            kind: float(getattr(self, f"stale_{kind}_s"))
            for kind in ("underlying", "futures", "options", "vix")})

    def stale_s(self, kind: str, now: datetime) -> float:
        """The staleness threshold of one class (underlying, futures, options, vix) now: the
        first phase that covers ``now`` and overrides the class, else the class default."""
        return self.stale_at(kind, now.hour * 3600 + now.minute * 60 + now.second)

    def stale_at(self, kind: str, secs: int) -> float:
        """:meth:`stale_s` at a second of the day the caller has already worked out."""
        for start, end, value in self._windows.get(kind, ()):
            if start <= secs < end:
                return value
        return self._defaults[kind]

    def thresholds_at(self, secs: int) -> Thresholds:
        """All four thresholds at a second of the day. They change only where a phase starts
        or ends, so the answer is kept until the next such edge: every tick asks, several
        times."""
        start, end, out = self._last
        if start <= secs < end:
            return out
        out = Thresholds(self.stale_at("underlying", secs), self.stale_at("futures", secs),
                         self.stale_at("options", secs), self.stale_at("vix", secs))
        start, end = 0, 86400 * 2  # a second of the day is below both
        for edge in self._edges:
            if edge <= secs:
                start = edge
            else:
                end = edge
                break
        object.__setattr__(self, "_last", (start, end, out))  # one reference swap: a cache
        return out

    @classmethod
    def from_policy(cls, doc: dict[str, Any] | None) -> DQParams:
        if not doc:
            return cls()
        s, ts, sp, h, f = (doc["stale_after"], doc["timestamps"], doc["spike"], doc["halt"],
                           doc["feeds"])
        return cls(
            stale_underlying_s=parse_duration(s["underlying"]),
            stale_futures_s=parse_duration(s["futures"]),
            stale_options_s=parse_duration(s["options"]), stale_vix_s=parse_duration(s["vix"]),
            future_tolerance_s=parse_duration(ts["future_tolerance"]),
            reject_out_of_order=ts["reject_out_of_order"],
            reject_duplicates=ts["reject_duplicates"], max_jump_pct=float(sp["max_jump_pct"]),
            confirm_within_s=parse_duration(sp["confirm_within"]),
            silence_s=parse_duration(h["silence"]),
            halt_minutes=tuple(float(m) for m in h["halt_minutes"]),
            auction_s=parse_duration(h["auction"]), tolerance_s=parse_duration(h["tolerance"]),
            priority=tuple(f["priority"]), failback_after_s=parse_duration(f["failback_after"]),
            divergence_pct=float(f["divergence_pct"]),
            min_strikes_each_side=int(doc["chain"]["min_strikes_each_side"]),
            phases=tuple((parse_hhmm(ph["from"]), parse_hhmm(ph["to"]),
                          tuple((k, parse_duration(ph[k])) for k in
                                ("underlying", "futures", "options", "vix") if ph.get(k)))
                         for ph in doc["phases"]))


@dataclass(slots=True)
class SourceTrack:
    """One feed's view of one instrument."""

    rank: int
    value: float | None = None
    ts: datetime | None = None
    fresh_since: datetime | None = None
    suspect: tuple[datetime, float] | None = None


@dataclass(slots=True)
class InstrumentFeeds:
    """Every feed's view of one instrument (an index or VIX), and which one is in use."""

    sources: dict[str, SourceTrack] = field(default_factory=dict)
    active: str | None = None
    last_seen: datetime | None = None  # last in-session tick of the active feed (halt detection)
    auction_until: datetime | None = None
    _ranked: list[tuple[str, SourceTrack]] = field(default_factory=list, init=False,
                                                   repr=False, compare=False)

    def track(self, source: str, params: DQParams) -> SourceTrack:
        t = self.sources.get(source)
        if t is None:
            rank = params.priority.index(source) if source in params.priority else \
                len(params.priority) + len(self.sources)
            t = self.sources[source] = SourceTrack(rank=rank)
        return t

    def ranked(self) -> list[tuple[str, SourceTrack]]:
        """Sources best first (ties in arrival order). Kept between ticks: a rank is fixed when
        the source is first seen and sources are only ever added, so a change in their number
        is the only thing that can change the order."""
        if len(self._ranked) != len(self.sources):
            self._ranked = sorted(self.sources.items(), key=lambda kv: kv[1].rank)
        return self._ranked


Note = tuple[str, dict[str, Any]]  # (classification, details) for a data_quality decision


def screen(feeds: InstrumentFeeds, source: str, ts: datetime, value: float,
           received: datetime | None, params: DQParams, key: str, notes: list[Note]) -> bool:
    """Decide whether one tick may become a price; what it notes is appended to ``notes`` (the
    market's per-tick list, so a clean tick, nearly all of them, allocates nothing)."""
    t = feeds.track(source, params)
    if received is not None and (ts - received).total_seconds() > params.future_tolerance_s:
        notes.append(("future_timestamp", {**_detail(key, source, value, ts),
                                           "received": received.isoformat()}))
        return False
    if t.ts is not None and t.ts.date() != ts.date():
        t.value = None  # a new session: the overnight gap is not a spike
        t.suspect = None
    if t.ts is not None:
        if params.reject_out_of_order and ts < t.ts:
            notes.append(("out_of_order", {**_detail(key, source, value, ts),
                                           "last": t.ts.isoformat()}))
            return False
        if params.reject_duplicates and ts == t.ts and value == t.value:
            notes.append(("duplicate", _detail(key, source, value, ts)))
            return False
    if feeds.auction_until is not None:
        if ts < feeds.auction_until:
            notes.append(("auction_indicative", {**_detail(key, source, value, ts),
                                                 "until": feeds.auction_until.isoformat()}))
            return False
        feeds.auction_until = None
        feeds.last_seen = None  # trading resumed: the halt's silence is accounted for
        t.value = None  # the first regular print after a halt is not a spike by itself
    if feeds.last_seen is not None and source == feeds.active:
        gap = (ts - feeds.last_seen).total_seconds()
        if gap >= params.silence_s and ts.date() == feeds.last_seen.date():
            halt = _matching_halt(gap, params)
            notes.append(("halt_detected", {**_detail(key, source, value, ts), "silence_s": gap,
                                            "halt_min": halt[0] if halt else None}))
            if halt is not None and halt[1]:
                feeds.auction_until = feeds.last_seen + timedelta(
                    minutes=halt[0]) + timedelta(seconds=params.auction_s)
                if ts < feeds.auction_until:
                    notes.append(("auction_indicative",
                                  {**_detail(key, source, value, ts),
                                   "until": feeds.auction_until.isoformat()}))
                    return False
    if source == feeds.active or feeds.active is None:
        feeds.last_seen = ts
    confirmed = False
    if t.suspect is not None:
        if abs(value / t.suspect[1] - 1.0) * 100.0 <= params.max_jump_pct:
            notes.append(("spike_confirmed", {**_detail(key, source, value, ts),
                                              "suspect": t.suspect[1]}))
            confirmed = True
        else:
            notes.append(("spike_rejected", {**_detail(key, source, value, ts),
                                             "suspect": t.suspect[1],
                                             "reason": "the next tick did not confirm it"}))
        t.suspect = None
    if not confirmed and t.value is not None and t.value > 0 and \
            abs(value / t.value - 1.0) * 100.0 > params.max_jump_pct:
        if _confirmed_elsewhere(feeds, source, value, ts, params):
            notes.append(("spike_confirmed", {**_detail(key, source, value, ts),
                                              "by": "another feed"}))
        else:
            t.suspect = (ts, value)
            notes.append(("spike_suspect", {**_detail(key, source, value, ts),
                                            "last": t.value}))
            return False
    t.value, t.ts = value, ts
    return True


def _detail(key: str, source: str, value: float, ts: datetime) -> dict[str, Any]:
    """What every screening note says about its tick; built only when a note is made."""
    return {"instrument": key, "source": source, "value": value, "ts": ts.isoformat()}


def _matching_halt(gap_s: float, params: DQParams) -> tuple[float, bool] | None:
    """(halt minutes, auction still to come) when a silence matches the exchange's halt table;
    a silence as long as halt + auction means the auction printed nothing (already over)."""
    for minutes in params.halt_minutes:
        if abs(gap_s - minutes * 60) <= params.tolerance_s:
            return minutes, True
        if abs(gap_s - minutes * 60 - params.auction_s) <= params.tolerance_s:
            return minutes, False
    return None


def _confirmed_elsewhere(feeds: InstrumentFeeds, source: str, value: float, ts: datetime,
                         params: DQParams) -> bool:
    for name, other in feeds.sources.items():
        if name == source or other.value is None or other.ts is None:
            continue
        if (ts - other.ts).total_seconds() <= params.confirm_within_s and \
                abs(value / other.value - 1.0) * 100.0 <= params.max_jump_pct:
            return True
    return False


def maintain(feeds: InstrumentFeeds, now: datetime, stale_s: float, params: DQParams,
             key: str, notes: list[Note]) -> None:
    """Per tick: expire unconfirmed spikes, track freshness, fail over and fail back. Notes are
    appended to ``notes``."""
    for name, t in feeds.sources.items():
        if t.suspect is not None and (now - t.suspect[0]).total_seconds() > \
                params.confirm_within_s:
            notes.append(("spike_rejected", {"instrument": key, "source": name,
                                             "value": t.suspect[1],
                                             "reason": "not confirmed in time"}))
            t.suspect = None
        is_fresh = t.ts is not None and (now - t.ts).total_seconds() <= stale_s
        if not is_fresh:
            t.fresh_since = None
        elif t.fresh_since is None:
            t.fresh_since = t.ts
    active = feeds.sources.get(feeds.active) if feeds.active else None
    if active is None or active.fresh_since is None:
        for name, t in feeds.ranked():  # the best fresh feed, if any
            if t.fresh_since is not None:
                if name != feeds.active:
                    notes.append(("failover", {"instrument": key, "from": feeds.active,
                                               "to": name}))
                    feeds.active = name
                break
        return
    if len(feeds.sources) == 1:
        return  # the only feed is in use and fresh: nothing better to fail back to
    for name, t in feeds.ranked():  # a better feed, fresh for long enough, takes over again
        if t.fresh_since is None:
            continue
        if t.rank >= active.rank:
            break
        if (now - t.fresh_since).total_seconds() >= params.failback_after_s:
            notes.append(("failback", {"instrument": key, "from": feeds.active, "to": name}))
            feeds.active = name
            break


def divergence_pct(feeds: InstrumentFeeds) -> float:
    values = [t.value for t in feeds.sources.values()
              if t.fresh_since is not None and t.value is not None]
    if len(values) < 2:
        return 0.0
    return (max(values) / min(values) - 1.0) * 100.0
