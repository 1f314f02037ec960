"""Stage 8 — execution: the one door between approved orders and the broker.

The engine decides *what* to trade; this layer decides *when a request may leave* and *what to
do when the answer is not a clean yes*. It sits outside the pure engine (it talks to the broker)
but is just as deterministic: time is the ``now`` its caller passes (event time) and its only
randomness is a seeded :class:`random.Random`.

What it guarantees, and why:

- **Rate limits.** Every request (place, modify, cancel) must fit every sliding window of the
  broker (Kite: 10/s, 400/min, 5,000/day) and of its exchange segment (SEBI: below 10/s per
  segment for a retail algo; 8/s and a burst guard by default). A request that does not fit
  waits in its lane rather than earning a 429 — or, worse, an exchange penalty.
- **Priority lanes.** Cancels go first, then exits and square-offs, then entries: when the
  budget is short, reducing risk wins. An entry that waited longer than ``queue_timeout`` is
  refused instead (its price is stale); exits and cancels always wait their turn.
- **429s.** ``BrokerRateLimited`` pauses everything for the broker's cool-down (doubled on
  repeats, plus seeded jitter).
- **Nothing doubled.** A placement that timed out (or failed without a clear answer) may have
  reached the exchange, so its tag (= client id) is looked up with ``orders_by_tag`` before
  anything else happens; only an order the broker has never seen is placed again, under the
  same tag. Any event for a tag proves the broker has it.
- **Cancels stick.** A cancel is repeated until the broker confirms it (an ``OrderCancelled``, or
  a definite "already finished").
- **Follow-up.** An order with no fill for a while is cancelled or re-priced, a partly filled one
  waits, then its rest is cancelled, chased or accepted — per purpose, from the ``execution``
  policy. Re-pricing modifies the order where the broker supports it (at most
  ``max_modifications`` times, 25 on Kite), else cancels and replaces it under a derived tag.
- **A clean event stream.** Broker updates can arrive twice, late or out of order. The engine
  sees each fill once, with a cumulative quantity that only grows, every event under the client
  id it sent (replacements included), and an order closed only after the fills it counts.
- **Review.** Entries above the ``confirm`` thresholds of the ``order_checks`` policy wait in the
  :class:`~ruleengine.review.ReviewQueue` until a person approves them, or expire.

The runner calls :meth:`ExecutionGateway.submit` with a tick's approved orders and cancels
(after the audit write) and :meth:`ExecutionGateway.poll` at the start of each tick for the
events to feed the engine: broker results plus the rejections and cancellations synthesized
here, whose reasons start with a code from :data:`EXECUTION_CODES`.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from .checks import CheckConfig, derived_client_id, review_groups, validated_policy
from .coerce import declared_types
from .contracts import Broker, BrokerOrder, OrderRequest
from .errors import BrokerError, BrokerRateLimited, BrokerRejected
from .events import (
    BrokerEvent,
    Contract,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    Quote,
)
from .functions import parse_duration
from .instruments import Instrument
from .review import APPROVED, ReviewQueue
from .sizing import ExecutionParams, marketable_limit

if TYPE_CHECKING:
    from .policyset import PolicySet

__all__ = [
    "EXECUTION_CODES",
    "LANE_CANCEL",
    "LANE_ENTRY",
    "LANE_EXIT",
    "SOURCE",
    "ExecutionConfig",
    "ExecutionGateway",
    "FollowUp",
    "Lane",
    "ModifyingBroker",
    "RateLimiter",
    "SentRequest",
    "SlidingWindow",
    "Window",
]

#: Reason codes of the rejections this layer synthesizes (``"<code>: <detail>"``).
EXECUTION_CODES: dict[str, str] = {
    "broker-rejected": "the broker refused the placement",
    "queue-timeout": "an entry could not be sent within queue_timeout (rate limits)",
    "review-expired": "nobody approved a held order within confirm.expire_after",
    "review-rejected": "a person rejected a held order",
}

SOURCE = "execution"
_TERMINAL = frozenset({"COMPLETE", "CANCELLED", "REJECTED"})

Lane = Literal[0, 1, 2]
LANE_CANCEL: Lane = 0
LANE_EXIT: Lane = 1
LANE_ENTRY: Lane = 2


@runtime_checkable
class ModifyingBroker(Protocol):
    """A broker that can change a working order's limit price in place (Kite's modify)."""

    def modify(self, client_id: str, limit_price: float, now: datetime) -> None: ...


# -- configuration ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    """At most ``max`` requests in any interval of ``per_s`` seconds."""

    max: int
    per_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class FollowUp:
    """After ``after_s`` seconds without a fill, do ``action``."""

    after_s: float
    action: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionConfig:
    """The ``execution`` policy, typed; build it with :meth:`from_policy` or
    :meth:`from_policy_set` so the schema's defaults stay the single source of numbers."""

    rate_limits: Mapping[str, tuple[Window, ...]]
    segment_limits: tuple[Window, ...]
    cooldown_s: float = 10.0
    cooldown_max_s: float = 60.0
    jitter_pct: float = 20.0
    lookup_after_s: float = 1.0
    backoff_s: float = 0.5
    backoff_max_s: float = 10.0
    cancel_confirm_s: float = 5.0
    max_modifications: int = 25
    max_reprices: int = 5
    queue_timeout_s: float = 5.0
    pending_entry: FollowUp = FollowUp(after_s=30.0, action="cancel")
    pending_exit: FollowUp = FollowUp(after_s=5.0, action="reprice")
    partial_entry: FollowUp = FollowUp(after_s=10.0, action="cancel_rest")
    partial_exit: FollowUp = FollowUp(after_s=3.0, action="chase")
    reorder_hold_s: float = 5.0
    pricing: ExecutionParams = field(default_factory=ExecutionParams)

    @classmethod
    def from_policy(cls, data: Mapping[str, Any]) -> ExecutionConfig:
        d = validated_policy("execution", data)
        rl, rt, pend, part = d["rate_limited"], d["retry"], d["pending"], d["partial_fills"]

        def windows(items: Iterable[Mapping[str, Any]]) -> tuple[Window, ...]:
            return tuple(Window(max=int(w["max"]), per_s=parse_duration(w["per"]))
                         for w in items)

        def follow(x: Mapping[str, Any], key: str) -> FollowUp:
            return FollowUp(after_s=parse_duration(x[key]), action=str(x["action"]))

        return cls(
            rate_limits={name: windows(ws) for name, ws in d["rate_limits"].items()},
            segment_limits=windows(d["segment_limits"]),
            cooldown_s=parse_duration(rl["cooldown"]),
            cooldown_max_s=parse_duration(rl["backoff_max"]),
            jitter_pct=float(rl["jitter_pct"]), lookup_after_s=parse_duration(rt["lookup_after"]),
            backoff_s=parse_duration(rt["backoff"]),
            backoff_max_s=parse_duration(rt["backoff_max"]),
            cancel_confirm_s=parse_duration(rt["cancel_confirm"]),
            max_modifications=int(d["max_modifications"]), max_reprices=int(d["max_reprices"]),
            queue_timeout_s=parse_duration(d["queue_timeout"]),
            pending_entry=follow(pend["entry"], "after"),
            pending_exit=follow(pend["exit"], "after"),
            partial_entry=follow(part["entry"], "wait"),
            partial_exit=follow(part["exit"], "wait"),
            reorder_hold_s=parse_duration(d["reorder_hold"]),
            pricing=ExecutionParams(protection_pct=float(d["protection_pct"]),
                                    future_protection_pct=float(d["future_protection_pct"]),
                                    protection_min_ticks=int(d["protection_min_ticks"])))

    @classmethod
    def from_policy_set(cls, pset: PolicySet) -> ExecutionConfig:
        docs = pset.of_kind("execution")
        data = {k: v for k, v in (docs[0] if docs else {}).items()
                if k not in ("kind", "version")}
        return cls.from_policy(data)

    def windows_for(self, broker_name: str) -> tuple[Window, ...]:
        """The broker's windows: by its name, else ``default``, else Kite's published limits
        (never "no limit": an unknown broker is treated like the strictest common one)."""
        for key in (broker_name, "default"):
            if key in self.rate_limits:
                return self.rate_limits[key]
        return (Window(max=10, per_s=1.0), Window(max=400, per_s=60.0),
                Window(max=5000, per_s=86400.0))


# -- rate limiting ----------------------------------------------------------------------------

class SlidingWindow:
    """Send times inside the last ``per`` seconds; a request fits while fewer than ``max``.

    A send at ``t`` counts for every ``now`` with ``now - per < t <= now``, so any interval of
    length ``per`` holds at most ``max`` sends — the property the broker and SEBI measure.
    """

    __slots__ = ("max", "per", "times")

    def __init__(self, window: Window) -> None:
        self.max = window.max
        self.per = timedelta(seconds=window.per_s)
        self.times: deque[datetime] = deque()

    def _prune(self, now: datetime) -> None:
        cutoff = now - self.per
        times = self.times
        while times and times[0] <= cutoff:
            times.popleft()

    def fits(self, now: datetime) -> bool:
        self._prune(now)
        return len(self.times) < self.max

    def record(self, now: datetime) -> None:
        self.times.append(now)

    def free_at(self, now: datetime) -> datetime:
        """The earliest time a request would fit."""
        self._prune(now)
        if len(self.times) < self.max:
            return now
        return self.times[len(self.times) - self.max] + self.per


class RateLimiter:
    """The broker's windows plus one set of windows per exchange segment."""

    def __init__(self, broker: Sequence[Window], segment: Sequence[Window]) -> None:
        self.broker = [SlidingWindow(w) for w in broker]
        self._segment_windows = tuple(segment)
        self.segments: dict[str, list[SlidingWindow]] = {}

    def _seg(self, segment: str) -> list[SlidingWindow]:
        ws = self.segments.get(segment)
        if ws is None:
            ws = self.segments[segment] = [SlidingWindow(w) for w in self._segment_windows]
        return ws

    def blocked(self, segment: str, now: datetime) -> Literal["broker", "segment"] | None:
        if not all(w.fits(now) for w in self.broker):
            return "broker"
        if not all(w.fits(now) for w in self._seg(segment)):
            return "segment"
        return None

    def record(self, segment: str, now: datetime) -> None:
        for w in self.broker:
            w.record(now)
        for w in self._seg(segment):
            w.record(now)

    def free_at(self, segment: str, now: datetime) -> datetime:
        return max((w.free_at(now) for w in (*self.broker, *self._seg(segment))), default=now)


# -- bookkeeping ------------------------------------------------------------------------------

AttemptState = Literal["queued", "unknown", "live", "done"]


@dataclass(slots=True, eq=False)
class _Attempt:
    """One broker order (one tag) behind an engine order: the first, or a replacement."""

    tag: str
    qty: int
    price: float | None
    state: AttemptState = "queued"
    placed_at: datetime | None = None
    filled: int = 0
    terminal: str = ""
    accepted: bool = False
    retried: bool = False  # placed again after a lookup found nothing
    reject_reason: str = ""  # refused on a retry: confirm by lookup before believing it
    lookup_at: datetime | None = None
    lookups: int = 0
    cancel_state: Literal["", "queued", "sent", "refused"] = ""
    cancel_sent_at: datetime | None = None
    cancel_tries: int = 0
    modifying: bool = False
    mods: int = 0
    held: OrderCancelled | None = None  # a cancel confirmation waiting for its fills
    held_since: datetime | None = None


@dataclass(slots=True, eq=False)
class _Order:
    """An order as the engine knows it (its client id), with the broker orders behind it."""

    request: OrderRequest
    lane: Lane
    segment: str
    submitted_at: datetime
    attempts: list[_Attempt] = field(default_factory=list)
    held_review: int | None = None
    filled: int = 0
    fill_ids: set[str] = field(default_factory=set)
    last_fill_at: datetime | None = None
    accepted_sent: bool = False
    cancel_wanted: bool = False
    replacing: bool = False
    reprice_to: float | None = None
    reprices: int = 0
    done: bool = False

    @property
    def cid(self) -> str:
        return self.request.client_id

    @property
    def current(self) -> _Attempt:
        return self.attempts[-1]


@dataclass(slots=True, eq=False)
class _Req:
    kind: Literal["place", "cancel", "modify"]
    order: _Order
    attempt: _Attempt
    price: float | None = None
    not_before: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SentRequest:
    """One request that left for the broker (whatever the answer), for audit and tests."""

    ts: datetime
    kind: str
    tag: str
    segment: str


# -- the gateway ------------------------------------------------------------------------------

class ExecutionGateway:
    """Throttles, routes and follows up orders for one broker; see the module docstring.

    ``quotes`` returns the latest quote of a contract (the engine's market state) for
    re-pricing; without it re-pricing falls back to leaving the order working. ``checks``
    supplies the review thresholds and the price bands a re-price must respect; ``review`` is
    the queue held orders wait in (no review when either is None).
    """

    def __init__(self, broker: Broker, config: ExecutionConfig, *, seed: int = 0,
                 instruments: Mapping[str, Instrument] | None = None,
                 quotes: Callable[[Contract], Quote | None] | None = None,
                 checks: CheckConfig | None = None, review: ReviewQueue | None = None) -> None:
        self.broker = broker
        self.config = config
        self._rng = random.Random(seed)
        self._instruments: Mapping[str, Instrument] = instruments if instruments is not None \
            else (checks.instruments if checks is not None else {})
        self._quotes = quotes
        self._checks = checks
        self._review = review
        self.limiter = RateLimiter(config.windows_for(broker.name), config.segment_limits)
        self._orders: dict[str, _Order] = {}
        self._live: dict[str, _Order] = {}
        self._by_tag: dict[str, tuple[_Order, _Attempt]] = {}
        self._lanes: tuple[list[_Req], list[_Req], list[_Req]] = ([], [], [])
        self._out: list[BrokerEvent] = []
        self._held: dict[int, list[_Order]] = {}
        self._paused_until: datetime | None = None
        self._strikes = 0
        self.sent: list[SentRequest] = []
        self.notes: list[tuple[datetime, str]] = []

    @classmethod
    def from_policy_set(cls, broker: Broker, policy: PolicySet, *, seed: int,
                        quotes: Callable[[Contract], Quote | None] | None = None,
                        review_db: str | Path | None = None) -> ExecutionGateway:
        """Everything from one policy set: execution and order_checks policies, instruments,
        and (with ``review_db``, normally the audit database) the review queue."""
        checks = CheckConfig.from_policy_set(policy)
        review = ReviewQueue(review_db) if review_db is not None else None
        return cls(broker, ExecutionConfig.from_policy_set(policy), seed=seed,
                   instruments=policy.instruments, quotes=quotes, checks=checks, review=review)

    def swap_policy(self, policy: PolicySet) -> None:
        """Take a reloaded policy set between ticks. The windows keep every request already
        sent, so a reload can never reset the broker's or SEBI's count."""
        self.config = ExecutionConfig.from_policy_set(policy)
        self._checks = CheckConfig.from_policy_set(policy)
        self._instruments = policy.instruments
        limiter = RateLimiter(self.config.windows_for(self.broker.name),
                              self.config.segment_limits)
        for s in self.sent:
            limiter.record(s.segment, s.ts)
        self.limiter = limiter

    def close(self) -> None:
        """Release the review queue's database handle."""
        if self._review is not None:
            self._review.close()

    # -- the runner's interface ----------------------------------------------------------------
    def submit(self, orders: Sequence[OrderRequest], cancels: Sequence[str],
               now: datetime) -> None:
        """Take a tick's cancels and approved orders, then send what the limits allow now.

        A client id seen before is ignored (it was sent once; sending it again could double
        the position). Results arrive through :meth:`poll`.
        """
        for cid in cancels:
            self._cancel_requested(cid, now)
        new: list[_Order] = []
        for req in orders:
            if req.client_id in self._orders:
                self._note(now, f"{req.client_id} submitted again; ignored (already sent)")
                continue
            order = _Order(request=req, lane=LANE_ENTRY if req.purpose == "entry" else LANE_EXIT,
                           segment=self._segment(req.contract), submitted_at=now)
            self._orders[req.client_id] = self._live[req.client_id] = order
            new.append(order)
        held: set[str] = set()
        if self._review is not None and self._checks is not None:
            groups = review_groups([o.request for o in new], self._checks, day=now.date())
            for reason, members in groups:
                item = self._review.hold(members, reason, now,
                                         self._checks.confirm.expire_after_s)
                parked = [self._orders[m.client_id] for m in members]
                for order in parked:
                    order.held_review = item.id
                    held.add(order.cid)
                self._held[item.id] = parked
                self._note(now, f"review item {item.id} holds {item.describe()}: {reason}")
        for order in new:
            if order.cid not in held:
                self._start(order, now)
        self._pump(now)

    def poll(self, now: datetime) -> list[BrokerEvent]:
        """Everything the engine should hear about since the last poll, stamped ``now``."""
        self._review_step(now)
        self._resolve_unknown(now)
        try:
            raw = list(self.broker.poll(now))
        except BrokerError as exc:
            self._note(now, f"broker poll failed: {exc}")
            raw = []
        for event in raw:
            self._on_event(declared_types(event), now)
        self._follow_up(now)
        self._pump(now)
        out, self._out = self._out, []
        return out

    @property
    def idle(self) -> bool:
        """Nothing queued, unresolved, held or working (every order has its final answer)."""
        return not self._live and not any(self._lanes)

    def open_client_ids(self) -> list[str]:
        return sorted(self._live)

    # -- orders in -----------------------------------------------------------------------------
    def _segment(self, contract: Contract) -> str:
        inst = self._instruments.get(contract.underlying)
        return inst.segment if inst is not None else contract.underlying

    def _start(self, order: _Order, now: datetime) -> None:
        req = order.request
        att = _Attempt(tag=req.client_id, qty=req.qty, price=req.limit_price)
        order.attempts.append(att)
        order.submitted_at = now
        self._by_tag[att.tag] = (order, att)
        self._queue(_Req(kind="place", order=order, attempt=att))

    def _cancel_requested(self, cid: str, now: datetime) -> None:
        order = self._orders.get(cid)
        if order is None:
            self._note(now, f"cancel for unknown order {cid}; nothing sent")
            return
        if order.done:
            return
        order.cancel_wanted = True
        if order.held_review is not None:
            item_id = order.held_review
            if self._review is not None:
                self._review.cancel(cid, now)
            for member in self._held.pop(item_id, [order]):
                self._finish(member, OrderCancelled(ts=now, source=SOURCE,
                                                    client_id=member.cid, filled_qty=0))
            return
        att = order.current
        if att.state == "queued":
            self._drop_requests(att)
            att.state = "done"
            self._finish(order, OrderCancelled(ts=now, source=SOURCE, client_id=cid,
                                               filled_qty=order.filled))
        elif att.state == "live":
            self._queue_cancel(order, att)
        # "unknown": resolved by the lookup, which sees cancel_wanted

    # -- sending -------------------------------------------------------------------------------
    def _queue(self, req: _Req, *, front: bool = False) -> None:
        lane = self._lanes[LANE_CANCEL if req.kind == "cancel" else req.order.lane]
        if front:
            lane.insert(0, req)
        else:
            lane.append(req)

    def _queue_cancel(self, order: _Order, att: _Attempt,
                      not_before: datetime | None = None) -> None:
        if att.cancel_state in ("queued", "sent") or att.state == "done":
            return
        if att.modifying:  # a cancel overrides a re-price still waiting to be sent
            self._drop_requests(att, "modify")
            att.modifying = False
        att.cancel_state = "queued"
        self._queue(_Req(kind="cancel", order=order, attempt=att, not_before=not_before))

    def _drop_requests(self, att: _Attempt, kind: str | None = None) -> None:
        for lane in self._lanes:
            lane[:] = [r for r in lane if r.attempt is not att or (kind and r.kind != kind)]

    def _pump(self, now: datetime) -> None:
        """Send queued requests in lane order while every window has room."""
        if self._paused_until is not None:
            if now < self._paused_until:
                return
            self._paused_until = None
        blocked: set[str] = set()
        for lane in self._lanes:
            i = 0
            while i < len(lane):
                req = lane[i]
                seg = req.order.segment
                if (req.not_before is not None and req.not_before > now) or seg in blocked:
                    i += 1
                    continue
                why = self.limiter.blocked(seg, now)
                if why == "broker":
                    return
                if why == "segment":
                    blocked.add(seg)  # keeps priority: nothing later in this segment jumps it
                    i += 1
                    continue
                lane.pop(i)
                self.limiter.record(seg, now)
                self.sent.append(SentRequest(ts=now, kind=req.kind, tag=req.attempt.tag,
                                             segment=seg))
                if not self._send(req, now):
                    return

    def _send(self, req: _Req, now: datetime) -> bool:
        """One request to the broker; False when the broker said to stop for a while."""
        order, att = req.order, req.attempt
        try:
            if req.kind == "place":
                self.broker.place(self._request_for(order, att), now)
                att.state = "live"
                att.placed_at = now
            elif req.kind == "cancel":
                att.cancel_tries += 1
                self.broker.cancel(att.tag, now)
                att.cancel_state = "sent"
                att.cancel_sent_at = now
            else:
                assert req.price is not None and isinstance(self.broker, ModifyingBroker)
                att.mods += 1
                self.broker.modify(att.tag, req.price, now)
                att.price, att.placed_at, att.modifying = req.price, now, False
        except BrokerRateLimited as exc:
            self._rate_limited(now, exc)
            if req.kind == "place":
                self._unknown(att, self._paused_until or now)  # look before placing again
            else:
                if req.kind == "modify":
                    att.mods -= 1
                self._queue(req, front=True)
            return False
        except BrokerRejected as exc:
            self._strikes = 0
            self._refused(req, str(exc), now)
        except BrokerError as exc:
            self._strikes = 0
            self._no_answer(req, exc, now)
        else:
            self._strikes = 0
        return True

    def _request_for(self, order: _Order, att: _Attempt) -> OrderRequest:
        req = order.request
        if att.tag == req.client_id and att.qty == req.qty and att.price == req.limit_price:
            return req
        return replace(req, client_id=att.tag, qty=att.qty, limit_price=att.price)

    def _rate_limited(self, now: datetime, exc: Exception) -> None:
        self._strikes += 1
        cfg = self.config
        base = min(cfg.cooldown_s * 2 ** (self._strikes - 1), cfg.cooldown_max_s)
        pause = base + base * cfg.jitter_pct / 100.0 * self._rng.random()
        self._paused_until = now + timedelta(seconds=pause)
        self._note(now, f"rate limited ({exc}); nothing sent for {pause:.1f}s")

    def _unknown(self, att: _Attempt, lookup_at: datetime) -> None:
        att.state = "unknown"
        att.lookup_at = lookup_at

    def _backoff(self, tries: int) -> timedelta:
        cfg = self.config
        return timedelta(seconds=min(cfg.backoff_s * 2 ** max(tries - 1, 0), cfg.backoff_max_s))

    def _refused(self, req: _Req, reason: str, now: datetime) -> None:
        order, att = req.order, req.attempt
        if req.kind == "place":
            if att.retried:
                # an earlier try may have landed after all: believe the refusal only once the
                # broker's book confirms it has no such order
                att.reject_reason = reason
                self._unknown(att, now)
                self._resolve(order, att, now)
            else:
                self._attempt_rejected(order, att, f"broker-rejected: {reason}", now)
        elif req.kind == "cancel":
            att.cancel_state = "refused"
            self._cancel_refused(order, att, reason, now)
        else:
            att.modifying = False
            att.mods = max(att.mods, self.config.max_modifications)  # stop modifying this one
            att.placed_at = now
            self._note(now, f"modify of {att.tag} refused ({reason}); will replace instead")

    def _no_answer(self, req: _Req, exc: BrokerError, now: datetime) -> None:
        order, att = req.order, req.attempt
        if req.kind == "place":
            self._note(now, f"placing {att.tag}: {type(exc).__name__}: {exc}; looking the tag "
                            "up before any retry")
            self._unknown(att, now + timedelta(seconds=self.config.lookup_after_s))
        elif req.kind == "cancel":
            att.cancel_state = ""
            self._queue_cancel(order, att, now + self._backoff(att.cancel_tries))
        else:
            att.modifying = False
            att.placed_at = now  # unknown whether it applied; the timers look again later
            self._note(now, f"modify of {att.tag}: {type(exc).__name__}; price unknown")

    def _cancel_refused(self, order: _Order, att: _Attempt, reason: str,
                        now: datetime) -> None:
        """The broker will not cancel: usually the order just finished. Ask its book."""
        rows = self._lookup(att.tag, now)
        if rows is None:
            att.cancel_state = ""
            self._queue_cancel(order, att, now + self._backoff(att.cancel_tries))
            return
        if not rows:
            self._note(now, f"cancel of {att.tag} refused and the broker has no such order")
            att.state = "live"
            self._attempt_cancelled(order, att, now, SOURCE)
            return
        self._adopt_terminal(order, att, rows[0], now)
        if rows[0].status not in _TERMINAL:
            att.cancel_state = ""
            self._queue_cancel(order, att, now + self._backoff(att.cancel_tries))

    def _adopt_terminal(self, order: _Order, att: _Attempt, row: BrokerOrder,
                        now: datetime) -> None:
        """Close an attempt the broker's book shows finished, when we have all its fills
        (otherwise its events are still coming and will close it)."""
        if att.state == "done" or row.status not in _TERMINAL or row.filled_qty != att.filled:
            return
        if row.status == "CANCELLED":
            self._attempt_cancelled(order, att, now, SOURCE)
        elif row.status == "REJECTED":
            self._attempt_rejected(order, att, "broker-rejected: the broker's order book shows "
                                   "it rejected", now)

    def _lookup(self, tag: str, now: datetime) -> Sequence[BrokerOrder] | None:
        try:
            return self.broker.orders_by_tag(tag)
        except BrokerError as exc:
            self._note(now, f"looking up {tag} failed: {exc}")
            return None

    # -- timed-out placements ------------------------------------------------------------------
    def _resolve_unknown(self, now: datetime) -> None:
        for order in list(self._live.values()):
            for att in order.attempts:
                if att.state == "unknown" and att.lookup_at is not None and att.lookup_at <= now:
                    self._resolve(order, att, now)

    def _resolve(self, order: _Order, att: _Attempt, now: datetime) -> None:
        rows = self._lookup(att.tag, now)
        if rows is None:
            att.lookups += 1
            att.lookup_at = now + self._backoff(att.lookups)
            return
        if rows:
            self._note(now, f"{att.tag} is at the broker ({rows[0].status}); not placed again")
            self._went_live(order, att, now)
            self._adopt_terminal(order, att, rows[0], now)
        elif att.reject_reason:
            self._attempt_rejected(order, att, f"broker-rejected: {att.reject_reason}", now)
        elif order.cancel_wanted:
            att.state = "done"
            self._attempt_cancelled(order, att, now, SOURCE)
        else:
            self._note(now, f"{att.tag} never reached the broker; placing it again")
            att.state, att.retried = "queued", True
            self._queue(_Req(kind="place", order=order, attempt=att), front=True)

    def _went_live(self, order: _Order, att: _Attempt, now: datetime) -> None:
        if att.state == "queued":
            self._drop_requests(att, "place")  # it landed after all: never send it twice
        if att.state in ("queued", "unknown"):
            att.state = "live"
            att.placed_at = att.placed_at or now
            if order.cancel_wanted or order.replacing:
                self._queue_cancel(order, att)

    # -- events from the broker ----------------------------------------------------------------
    def _on_event(self, ev: BrokerEvent, now: datetime) -> None:
        found = self._by_tag.get(ev.client_id)
        if found is None:
            self._out.append(ev)  # not ours: the engine raises the alarm
            return
        order, att = found
        self._went_live(order, att, now)
        if isinstance(ev, OrderAccepted):
            if not att.accepted:
                att.accepted = True
                self._accept(order, ev.broker_order_id, ev.source, now)
        elif isinstance(ev, OrderFilled):
            self._on_fill(order, att, ev, now)
        elif isinstance(ev, OrderCancelled):
            if att.terminal or att.held is not None:
                return
            if att.filled < ev.filled_qty:
                att.held, att.held_since = ev, now  # its fills are still on the way
                return
            self._attempt_cancelled(order, att, now, ev.source)
        elif not att.terminal:
            self._attempt_rejected(order, att, ev.reason, now, ev.source)

    def _accept(self, order: _Order, broker_order_id: str, source: str, now: datetime) -> None:
        if not order.accepted_sent and not order.done:
            order.accepted_sent = True
            self._out.append(OrderAccepted(ts=now, source=source, client_id=order.cid,
                                           broker_order_id=broker_order_id))

    def _on_fill(self, order: _Order, att: _Attempt, ev: OrderFilled, now: datetime) -> None:
        if ev.fill_id in order.fill_ids or ev.qty <= 0:
            return
        order.fill_ids.add(ev.fill_id)
        att.filled += ev.qty
        order.filled += ev.qty
        order.last_fill_at = now
        self._accept(order, ev.broker_order_id, ev.source, now)
        self._out.append(OrderFilled(ts=now, source=ev.source, client_id=order.cid,
                                     broker_order_id=ev.broker_order_id, fill_id=ev.fill_id,
                                     qty=ev.qty, price=ev.price, cum_qty=order.filled,
                                     order_qty=order.request.qty))
        if att.filled >= att.qty:
            att.terminal, att.state, att.held = "COMPLETE", "done", None
            self._drop_requests(att)
            if order.filled >= order.request.qty:
                self._finish(order, None)
        elif att.held is not None and att.filled >= att.held.filled_qty:
            held, att.held = att.held, None
            self._attempt_cancelled(order, att, now, held.source)

    def _attempt_cancelled(self, order: _Order, att: _Attempt, now: datetime,
                           source: str) -> None:
        att.terminal, att.state, att.held = "CANCELLED", "done", None
        self._drop_requests(att)
        if order.done:
            return
        if order.filled >= order.request.qty:
            self._finish(order, None)
        elif order.replacing and not order.cancel_wanted:
            order.replacing = False
            self._replace(order, now)
        else:
            self._finish(order, OrderCancelled(ts=now, source=source, client_id=order.cid,
                                               filled_qty=order.filled))

    def _attempt_rejected(self, order: _Order, att: _Attempt, reason: str, now: datetime,
                          source: str = SOURCE) -> None:
        att.terminal, att.state, att.held = "REJECTED", "done", None
        self._drop_requests(att)
        if not order.done:
            self._finish(order, OrderRejected(ts=now, source=source, client_id=order.cid,
                                              reason=reason))

    def _finish(self, order: _Order, event: BrokerEvent | None) -> None:
        order.done = True
        self._live.pop(order.cid, None)
        for att in order.attempts:
            if att.state != "done" and att.state != "live":
                self._drop_requests(att)
        if event is not None:
            self._out.append(event)

    def _replace(self, order: _Order, now: datetime) -> None:
        """A fresh broker order for the unfilled rest, under a derived tag."""
        n = len(order.attempts)
        att = _Attempt(tag=derived_client_id(order.cid, "r", n),
                       qty=order.request.qty - order.filled, price=order.reprice_to)
        order.attempts.append(att)
        order.reprices += 1
        self._by_tag[att.tag] = (order, att)
        self._note(now, f"{order.cid}: replacing with {att.tag} for {att.qty} at {att.price}")
        self._queue(_Req(kind="place", order=order, attempt=att), front=True)

    # -- follow-up -----------------------------------------------------------------------------
    def _follow_up(self, now: datetime) -> None:
        cfg = self.config
        for order in list(self._live.values()):
            if order.held_review is not None:
                continue
            for att in order.attempts:
                if att.held is not None and att.held_since is not None and \
                        (now - att.held_since).total_seconds() >= cfg.reorder_hold_s:
                    held, att.held = att.held, None
                    self._note(now, f"{att.tag}: cancel confirmation released without "
                                    f"{held.filled_qty - att.filled} units of fills")
                    # fills still on the way would overfill a replacement: close instead
                    order.replacing = False
                    self._attempt_cancelled(order, att, now, held.source)
            if order.done:
                continue
            att = order.current
            if att.state == "queued" and order.request.purpose == "entry" and \
                    len(order.attempts) == 1 and not att.retried and \
                    (now - order.submitted_at).total_seconds() >= cfg.queue_timeout_s:
                self._drop_requests(att)
                att.state = "done"
                self._finish(order, OrderRejected(
                    ts=now, source=SOURCE, client_id=order.cid,
                    reason=f"queue-timeout: not sent within {cfg.queue_timeout_s:g}s "
                           "(rate limits); its price is stale"))
                continue
            if att.state != "live":
                continue
            if att.cancel_state == "sent" and att.cancel_sent_at is not None and \
                    (now - att.cancel_sent_at).total_seconds() >= cfg.cancel_confirm_s:
                att.cancel_state = ""
                self._queue_cancel(order, att)
                continue
            if att.cancel_state or att.modifying or order.replacing or order.cancel_wanted:
                continue
            self._timers(order, att, now)

    def _timers(self, order: _Order, att: _Attempt, now: datetime) -> None:
        cfg = self.config
        entry = order.request.purpose == "entry"
        since = att.placed_at or now
        if order.filled == 0:
            rule = cfg.pending_entry if entry else cfg.pending_exit
        else:
            rule = cfg.partial_entry if entry else cfg.partial_exit
            if order.last_fill_at is not None and order.last_fill_at > since:
                since = order.last_fill_at
        if rule.action in ("none", "accept") or (now - since).total_seconds() < rule.after_s:
            return
        if rule.action in ("cancel", "cancel_rest"):
            self._note(now, f"{order.cid}: {rule.action} after {rule.after_s:g}s "
                            f"({order.filled}/{order.request.qty} filled)")
            order.cancel_wanted = True
            self._queue_cancel(order, att)
            return
        if order.reprices >= cfg.max_reprices:
            return
        if self._backlog(order.segment):
            att.placed_at = now  # a re-price costs requests queued orders are waiting for
            return
        price = self._fresh_price(order)
        if price is None or price == att.price:
            att.placed_at = now  # nothing better to offer; look again after another period
            return
        if isinstance(self.broker, ModifyingBroker) and att.mods < cfg.max_modifications:
            order.reprices += 1
            att.modifying = True
            self._queue(_Req(kind="modify", order=order, attempt=att, price=price))
            self._note(now, f"{order.cid}: re-price {att.price} -> {price} (modify)")
            return
        order.replacing, order.reprice_to = True, price
        self._note(now, f"{order.cid}: re-price {att.price} -> {price} (cancel and replace)")
        self._queue_cancel(order, att)

    def _backlog(self, segment: str) -> bool:
        return any(r.order.segment == segment for lane in self._lanes for r in lane)

    def _fresh_price(self, order: _Order) -> float | None:
        """A marketable limit from the latest quote, inside the exchange band (and, for an
        entry, the band around LTP), on the tick grid."""
        req = order.request
        inst = self._instruments.get(req.contract.underlying)
        quote = self._quotes(req.contract) if self._quotes is not None else None
        if inst is None or quote is None:
            return None
        tick = inst.tick_size
        price = marketable_limit(req.side, quote, tick, self.config.pricing)
        ref = quote.ltp if quote.ltp > 0 else None
        checks = self._checks
        if checks is None or ref is None:
            return price
        caps: list[tuple[float, float]] = []
        bands = checks.bands_for(req.contract.underlying, quote.ts.date())
        if bands is not None:
            caps.append((bands.future if req.contract.kind == "FUT" else bands.option)
                        .limits(ref))
        if req.purpose == "entry":
            half = max(ref * checks.band_pct / 100.0, checks.band_min_ticks * tick)
            caps.append((ref - half, ref + half))
        for low, high in caps:
            if req.side == "BUY" and price > high:
                price = round(int(high / tick + 1e-9) * tick, 6)
            elif req.side == "SELL" and price < low:
                price = round(-int(-low / tick + 1e-9) * tick, 6)
        return price if price > 0 else None

    # -- review --------------------------------------------------------------------------------
    def _review_step(self, now: datetime) -> None:
        review = self._review
        if review is None or not self._held:
            return
        for item in review.expire(now):
            for order in self._held.pop(item.id, []):
                self._finish(order, OrderRejected(
                    ts=now, source=SOURCE, client_id=order.cid,
                    reason=f"review-expired: not approved within "
                           f"{(item.expires_ts - item.created_ts).total_seconds():g}s "
                           f"(review item {item.id})"))
        for item in review.take_decided(list(self._held), now):
            members = self._held.pop(item.id, [])
            if item.status == APPROVED:
                self._note(now, f"review item {item.id} approved by {item.decided_by}")
                for order in members:
                    order.held_review = None
                    if not order.done:
                        self._start(order, now)
            else:
                for order in members:
                    self._finish(order, OrderRejected(
                        ts=now, source=SOURCE, client_id=order.cid,
                        reason=f"review-rejected: by {item.decided_by or 'a person'}"
                               + (f" — {item.note}" if item.note else "")
                               + f" (review item {item.id})"))

    def _note(self, now: datetime, text: str) -> None:
        self.notes.append((now, text))
