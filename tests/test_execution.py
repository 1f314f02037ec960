"""The execution layer: rate limits, lanes, retries that never double an order, follow-up, and a
property test over random fault sequences against the real paper broker."""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from adapters.brokers.faulty import FaultSpec, FaultyBroker
from adapters.brokers.paper import PaperBroker, PaperConfig
from ruleengine.checks import DENIAL_CODES, CheckConfig, CheckContext, Sent, check_order
from ruleengine.contracts import BrokerOrder, BrokerPosition, OrderRequest, Purpose
from ruleengine.errors import BrokerRateLimited, BrokerRejected, BrokerTimeout
from ruleengine.events import (
    BrokerEvent,
    Contract,
    Event,
    IndexTick,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    Quote,
)
from ruleengine.execution import (
    EXECUTION_CODES,
    ExecutionConfig,
    ExecutionGateway,
    SlidingWindow,
    Window,
)
from ruleengine.instruments import Instrument, build_instrument
from ruleengine.policyset import load_policy_set

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 3, 10, 10, 0, 0)
EXPIRY = date(2026, 3, 17)
CE = Contract(underlying="NIFTY", kind="OPT", expiry=EXPIRY, strike=24000.0, option_type="CE")
PE = Contract(underlying="NIFTY", kind="OPT", expiry=EXPIRY, strike=24000.0, option_type="PE")
NIFTY = build_instrument({
    "symbol": "NIFTY", "exchange": "NSE", "segment": "NFO", "strike_step": 50,
    "tick_size": 0.05, "lot_sizes": [{"effective_from": "2026-01-01", "value": 65}],
    "freeze_qty": [{"effective_from": "2026-01-01", "value": 1800}]})
INSTRUMENTS: dict[str, Instrument] = {"NIFTY": NIFTY}
LOT = 65


def t(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def req(cid: str, *, side: str = "BUY", lots: int = 1, limit: float = 101.0,
        purpose: Purpose = "entry", contract: Contract = CE) -> OrderRequest:
    return OrderRequest(client_id=cid, contract=contract, side=side,  # type: ignore[arg-type]
                        qty=lots * LOT, order_type="LIMIT", limit_price=limit, purpose=purpose,
                        strategy_id="s", leg_id=cid)


def exec_config(**over: Any) -> ExecutionConfig:
    data: dict[str, Any] = {"rate_limits": {"default": [{"max": 100, "per": "1s"}]},
                            "segment_limits": [{"max": 100, "per": "1s"}]}
    data.update(over)
    return ExecutionConfig.from_policy(data)


# -- a scripted broker ------------------------------------------------------------------------

@dataclass
class _Row:
    request: OrderRequest
    status: str = "OPEN"
    filled: int = 0


@dataclass
class FakeBroker:
    """Does what the script says per call: ``ok``, ``429``, ``lost`` (never arrives),
    ``timeout`` (arrives, then no answer), ``reject``, ``appear-reject`` (an earlier copy
    arrives, this one is refused), ``silent`` (cancel taken but never confirmed)."""

    name: str = "fake"
    script: dict[str, list[str]] = field(default_factory=dict)
    rows: dict[str, _Row] = field(default_factory=dict)
    calls: list[tuple[datetime, str, str]] = field(default_factory=list)
    lookups: list[str] = field(default_factory=list)
    queue: list[BrokerEvent] = field(default_factory=list)
    fills: int = 0

    def _next(self, method: str) -> str:
        steps = self.script.get(method, [])
        return steps.pop(0) if steps else "ok"

    def place(self, order: OrderRequest, now: datetime) -> str:
        self.calls.append((now, "place", order.client_id))
        step = self._next("place")
        if step == "429":
            raise BrokerRateLimited("Too many requests")
        if step == "lost":
            raise BrokerTimeout("lost")
        if step == "reject":
            raise BrokerRejected("RMS: insufficient funds")
        if order.client_id in self.rows:
            raise BrokerRejected(f"duplicate tag {order.client_id}")
        self.rows[order.client_id] = _Row(request=order)
        self.queue.append(OrderAccepted(ts=now, client_id=order.client_id,
                                        broker_order_id=f"B{len(self.rows)}"))
        if step == "appear-reject":
            raise BrokerRejected("duplicate request")
        if step == "timeout":
            raise BrokerTimeout("no answer")
        return f"B{len(self.rows)}"

    def cancel(self, client_id: str, now: datetime) -> None:
        self.calls.append((now, "cancel", client_id))
        step = self._next("cancel")
        if step == "429":
            raise BrokerRateLimited("Too many requests")
        if step == "lost":
            raise BrokerTimeout("lost")
        row = self.rows.get(client_id)
        if row is None or row.status != "OPEN":
            raise BrokerRejected(f"cannot cancel {client_id}")
        if step == "silent":
            return
        row.status = "CANCELLED"
        self.queue.append(OrderCancelled(ts=now, client_id=client_id, filled_qty=row.filled))
        if step == "timeout":
            raise BrokerTimeout("no answer")

    def fill(self, client_id: str, qty: int, price: float, now: datetime) -> OrderFilled:
        row = self.rows[client_id]
        row.filled += qty
        if row.filled >= row.request.qty:
            row.status = "COMPLETE"
        self.fills += 1
        ev = OrderFilled(ts=now, client_id=client_id, broker_order_id="B", fill_id=f"F{self.fills}",
                         qty=qty, price=price, cum_qty=row.filled, order_qty=row.request.qty)
        self.queue.append(ev)
        return ev

    def orders_by_tag(self, client_id: str) -> Sequence[BrokerOrder]:
        self.lookups.append(client_id)
        row = self.rows.get(client_id)
        if row is None:
            return []
        return [BrokerOrder(broker_order_id="B", client_id=client_id, status=row.status,
                            qty=row.request.qty, filled_qty=row.filled, avg_price=0.0)]

    def positions(self) -> Sequence[BrokerPosition]:
        return []

    def on_market(self, event: Event) -> None:
        return None

    def poll(self, now: datetime) -> Sequence[BrokerEvent]:
        out, self.queue = self.queue, []
        return out

    def placed(self) -> list[str]:
        return [tag for _, kind, tag in self.calls if kind == "place"]


@dataclass
class ModifyingFake(FakeBroker):
    modified: list[tuple[str, float]] = field(default_factory=list)

    def modify(self, client_id: str, limit_price: float, now: datetime) -> None:
        self.calls.append((now, "modify", client_id))
        self.modified.append((client_id, limit_price))
        row = self.rows[client_id]
        row.request = replace(row.request, limit_price=limit_price)


def quotes_at(mid: float) -> dict[Contract, Quote]:
    return {c: Quote(ts=T0, contract=c, ltp=mid, bid=mid - 0.5, ask=mid + 0.5, bid_qty=500,
                     ask_qty=500) for c in (CE, PE)}


def gateway(broker: Any, cfg: ExecutionConfig | None = None, *, seed: int = 1,
            quotes: dict[Contract, Quote] | None = None) -> ExecutionGateway:
    q = quotes if quotes is not None else quotes_at(100.0)
    checks = CheckConfig.from_policy({}, instruments=INSTRUMENTS)
    return ExecutionGateway(broker, cfg or exec_config(), seed=seed, instruments=INSTRUMENTS,
                            quotes=q.get, checks=checks)


def max_in_window(times: Sequence[datetime], per_s: float) -> int:
    """The most sends in any interval (t - per, t] — what the windows promise to bound."""
    ordered = sorted(times)
    per = timedelta(seconds=per_s)
    best = 0
    for i, end in enumerate(ordered):
        start = bisect.bisect_right(ordered, end - per)
        best = max(best, i + 1 - start)
    return best


def kinds(events: Sequence[BrokerEvent]) -> list[tuple[str, str]]:
    return [(type(e).__name__, e.client_id) for e in events]


# -- rate limits and lanes --------------------------------------------------------------------

def test_sliding_window_counts_the_last_period() -> None:
    w = SlidingWindow(Window(max=2, per_s=1.0))
    assert w.fits(t(0))
    w.record(t(0))
    w.record(t(0.5))
    assert not w.fits(t(0.9))
    assert w.free_at(t(0.9)) == t(1.0)
    assert w.fits(t(1.0))  # the send at 0.0 has left the window (t - 1 s, t]


def test_default_windows_hold_kite_and_sebi_limits() -> None:
    fake = FakeBroker(name="kite")
    gw = gateway(fake, ExecutionConfig.from_policy({"queue_timeout": "60s"}))
    gw.submit([req(f"e{i:02d}") for i in range(40)], [], t(0))
    for k in range(1, 200):
        gw.poll(t(k * 0.05))
    sends = [ts for ts, _, _ in fake.calls]
    assert len(fake.placed()) == 40
    assert max_in_window(sends, 1.0) <= 8  # SEBI: below 10/s per segment, 8 by policy
    assert max_in_window(sends, 0.25) <= 4  # burst guard
    assert max_in_window(sends, 60.0) <= 400


def test_cancels_then_exits_go_before_entries() -> None:
    fake = FakeBroker()
    gw = gateway(fake, exec_config(segment_limits=[{"max": 2, "per": "1s"}],
                                   queue_timeout="60s"))
    gw.submit([req("live1")], [], t(0))
    gw.poll(t(1))
    gw.submit([req("e1"), req("e2"), req("e3"), req("x1", side="SELL", purpose="exit")],
              ["live1"], t(1))
    gw.poll(t(2))
    gw.poll(t(3))
    assert [(kind, tag) for _, kind, tag in fake.calls] == [
        ("place", "live1"), ("cancel", "live1"), ("place", "x1"), ("place", "e1"),
        ("place", "e2"), ("place", "e3")]


def test_stale_entries_are_refused_but_exits_wait_their_turn() -> None:
    fake = FakeBroker()
    gw = gateway(fake, exec_config(segment_limits=[{"max": 1, "per": "1s"}]))
    gw.submit([req(f"e{i}") for i in range(6)] +
              [req(f"x{i}", side="SELL", purpose="exit") for i in range(8)], [], t(0))
    events: list[BrokerEvent] = []
    for k in range(1, 20):
        events += gw.poll(t(k))
    exits = [tag for tag in fake.placed() if tag.startswith("x")]
    assert exits[:8] == [f"x{i}" for i in range(8)]  # re-pricing waits for the backlog
    refused = [e for e in events if isinstance(e, OrderRejected)]
    assert refused and all(e.reason.startswith("queue-timeout:") for e in refused)
    assert {e.client_id for e in refused} == {f"e{i}" for i in range(6)} - set(fake.placed())


def test_rate_limited_pauses_with_seeded_jitter_then_looks_up_before_placing() -> None:
    pauses = []
    for seed in (1, 1, 2):
        fake = FakeBroker(script={"place": ["429"]})
        gw = gateway(fake, exec_config(queue_timeout="60s"), seed=seed)
        exit_ = req("b", side="SELL", limit=97.5, purpose="exit")  # already marketable
        gw.submit([req("a"), exit_], [], t(0))
        assert fake.placed() == ["b"]  # the exit went first, met the 429, and all stopped
        for k in range(1, 25):
            gw.poll(t(k))
        assert fake.placed() == ["b", "b", "a"]
        assert fake.lookups == ["b"]  # looked up before it was placed again
        first_retry = fake.calls[1][0]
        pauses.append((first_retry - t(0)).total_seconds())
        assert 10 <= pauses[-1] <= 13  # the 10 s cool-down plus up to 20% jitter
        assert list(fake.rows) == ["b", "a"]
    assert pauses[0] == pauses[1]  # same seed, same jitter


# -- nothing doubled --------------------------------------------------------------------------

def test_timeout_after_accept_is_looked_up_and_never_placed_twice() -> None:
    fake = FakeBroker(script={"place": ["timeout"]})
    gw = gateway(fake)
    gw.submit([req("a")], [], t(0))
    events = gw.poll(t(0.5))  # events may arrive before the lookup: the broker has it
    events += gw.poll(t(2))
    assert fake.placed() == ["a"]
    assert kinds(events) == [("OrderAccepted", "a")]
    fake.fill("a", 65, 101.0, t(3))
    assert kinds(gw.poll(t(3))) == [("OrderFilled", "a")]
    assert gw.idle


def test_timeout_with_no_events_is_resolved_by_the_lookup() -> None:
    fake = FakeBroker(script={"place": ["timeout"]})
    gw = gateway(fake)
    gw.submit([req("a")], [], t(0))
    fake.queue.clear()  # the broker's update is lost too: only the lookup can tell
    gw.poll(t(2))
    assert fake.lookups == ["a"] and fake.placed() == ["a"]


def test_lost_placement_is_placed_again_under_the_same_tag() -> None:
    fake = FakeBroker(script={"place": ["lost"]})
    gw = gateway(fake)
    gw.submit([req("a")], [], t(0))
    assert gw.poll(t(0.5)) == []  # lookup_after is 1 s
    events = gw.poll(t(1))
    assert fake.placed() == ["a", "a"] and list(fake.rows) == ["a"]
    events += gw.poll(t(2))
    assert kinds(events) == [("OrderAccepted", "a")]


def test_refusal_of_a_retry_is_checked_against_the_book() -> None:
    # first try lost on the way ... or so it seemed: it lands while we retry
    fake = FakeBroker(script={"place": ["lost", "appear-reject"]})
    gw = gateway(fake)
    gw.submit([req("a")], [], t(0))
    events = gw.poll(t(1)) + gw.poll(t(2))
    assert ("OrderRejected", "a") not in kinds(events)
    assert kinds(events) == [("OrderAccepted", "a")]


def test_plain_refusal_is_reported_with_a_code() -> None:
    fake = FakeBroker(script={"place": ["reject"]})
    gw = gateway(fake)
    gw.submit([req("a")], [], t(0))
    (event,) = gw.poll(t(1))
    assert isinstance(event, OrderRejected) and event.reason.startswith("broker-rejected:")
    assert fake.placed() == ["a"]


def test_same_client_id_twice_is_sent_once() -> None:
    fake = FakeBroker()
    gw = gateway(fake)
    gw.submit([req("a")], [], t(0))
    gw.submit([req("a")], [], t(1))
    gw.poll(t(2))
    assert fake.placed() == ["a"]


# -- cancels ----------------------------------------------------------------------------------

def test_cancel_is_repeated_until_the_broker_confirms() -> None:
    fake = FakeBroker(script={"cancel": ["lost", "429", "lost"]})
    gw = gateway(fake, exec_config(rate_limited={"cooldown": "2s", "jitter_pct": 0}))
    gw.submit([req("a")], [], t(0))
    gw.poll(t(0.1))
    gw.submit([], ["a"], t(1))
    events: list[BrokerEvent] = []
    for k in range(2, 30):
        events += gw.poll(t(k))
    cancels = [ts for ts, kind, _ in fake.calls if kind == "cancel"]
    assert len(cancels) == 4
    assert kinds(events) == [("OrderCancelled", "a")]


def test_unconfirmed_cancel_is_sent_again() -> None:
    fake = FakeBroker(script={"cancel": ["silent"]})
    gw = gateway(fake)
    gw.submit([req("a")], [], t(0))
    gw.submit([], ["a"], t(1))
    events = gw.poll(t(3))
    assert events == [OrderAccepted(ts=t(3), client_id="a", broker_order_id="B1")]
    events = gw.poll(t(6)) + gw.poll(t(7))  # cancel_confirm 5 s
    assert [kind for _, kind, _ in fake.calls] == ["place", "cancel", "cancel"]
    assert kinds(events) == [("OrderCancelled", "a")]


def test_cancel_of_a_queued_order_never_reaches_the_broker() -> None:
    fake = FakeBroker()
    gw = gateway(fake, exec_config(segment_limits=[{"max": 1, "per": "1s"}]))
    gw.submit([req("a"), req("b")], [], t(0))
    gw.submit([], ["b"], t(0.5))
    events = gw.poll(t(1)) + gw.poll(t(2))
    assert fake.placed() == ["a"]
    assert ("OrderCancelled", "b") in kinds(events)


# -- follow-up: pending timeouts and partial fills --------------------------------------------

def test_unfilled_entry_is_cancelled_after_the_pending_timeout() -> None:
    fake = FakeBroker()
    gw = gateway(fake)
    gw.submit([req("a")], [], t(0))
    gw.poll(t(29))
    assert [k for _, k, _ in fake.calls] == ["place"]
    events = gw.poll(t(30)) + gw.poll(t(31))
    assert [k for _, k, _ in fake.calls] == ["place", "cancel"]
    assert ("OrderCancelled", "a") in kinds(events)


def test_partly_filled_entry_has_its_rest_cancelled() -> None:
    fake = FakeBroker()
    gw = gateway(fake)
    gw.submit([req("a", lots=2)], [], t(0))
    fake.fill("a", 65, 101.0, t(1))
    gw.poll(t(1))
    gw.poll(t(10.5))
    assert [k for _, k, _ in fake.calls] == ["place"]
    events = gw.poll(t(11)) + gw.poll(t(12))
    assert events[-1] == OrderCancelled(ts=t(12), client_id="a", filled_qty=65)


def test_partly_filled_exit_is_chased_under_its_client_id() -> None:
    fake = FakeBroker()
    quotes = quotes_at(100.0)
    gw = gateway(fake, quotes=quotes)
    gw.submit([req("x", side="SELL", lots=2, limit=99.5, purpose="exit")], [], t(0))
    fake.fill("x", 65, 99.5, t(1))
    events = gw.poll(t(1))
    quotes.update(quotes_at(95.0))
    events += gw.poll(t(4))  # 3 s without a fill: cancel the rest ...
    events += gw.poll(t(5))  # ... and replace it at a fresh marketable price
    assert fake.placed() == ["x", "xr1"]
    replacement = fake.rows["xr1"].request
    assert replacement.qty == 65 and replacement.limit_price == 92.6  # bid 94.5 - 2%
    fake.fill("xr1", 65, 94.0, t(6))
    events += gw.poll(t(6))
    assert kinds(events) == [("OrderAccepted", "x"), ("OrderFilled", "x"), ("OrderFilled", "x")]
    last = events[-1]
    assert isinstance(last, OrderFilled) and (last.cum_qty, last.order_qty) == (130, 130)
    assert gw.idle


def test_reprice_modifies_until_the_limit_then_replaces() -> None:
    fake = ModifyingFake()
    quotes = quotes_at(100.0)
    gw = gateway(fake, exec_config(max_modifications=2), quotes=quotes)
    gw.submit([req("x", side="SELL", limit=99.5, purpose="exit")], [], t(0))
    for k, mid in ((5, 98.0), (10, 96.0), (15, 94.0), (16, 94.0)):
        quotes.update(quotes_at(mid))
        gw.poll(t(k))
    assert [p for _, p in fake.modified] == [95.55, 93.55]  # bid - 2%, on the grid
    assert fake.placed() == ["x", "xr1"]  # third re-price: past max_modifications
    assert [k for _, k, _ in fake.calls] == ["place", "modify", "modify", "cancel", "place"]


def test_max_reprices_leaves_the_order_working() -> None:
    fake = FakeBroker()
    quotes = quotes_at(100.0)
    gw = gateway(fake, exec_config(max_reprices=1), quotes=quotes)
    gw.submit([req("x", side="SELL", limit=99.5, purpose="exit")], [], t(0))
    for k in range(1, 40):
        quotes.update(quotes_at(100.0 - k))
        gw.poll(t(k))
    assert fake.placed() == ["x", "xr1"]


# -- a clean event stream ---------------------------------------------------------------------

def test_duplicates_late_cancels_and_strangers() -> None:
    fake = FakeBroker()
    gw = gateway(fake)
    gw.submit([req("a", lots=2)], [], t(0))
    gw.poll(t(0.5))
    fill = fake.fill("a", 65, 101.0, t(1))
    fake.queue.clear()
    cancelled = OrderCancelled(ts=t(1), client_id="a", filled_qty=65)
    stranger = OrderFilled(ts=t(1), client_id="zz", broker_order_id="B9", fill_id="F9", qty=1,
                           price=1.0, cum_qty=1, order_qty=1)
    fake.queue += [cancelled, stranger]  # the cancel overtook its fill
    first = gw.poll(t(1))
    assert first == [stranger]  # the cancel waits for the fill it counts
    fake.queue += [fill, fill, cancelled]
    second = gw.poll(t(2))
    assert kinds(second) == [("OrderFilled", "a"), ("OrderCancelled", "a")]


def test_out_of_order_fills_have_growing_cumulative_quantities() -> None:
    fake = FakeBroker()
    gw = gateway(fake)
    gw.submit([req("a", lots=3)], [], t(0))
    f1 = fake.fill("a", 65, 101.0, t(1))
    f2 = fake.fill("a", 65, 101.0, t(1))
    fake.queue[:] = [e for e in fake.queue if not isinstance(e, OrderFilled)] + [f2, f1]
    events = [e for e in gw.poll(t(1)) if isinstance(e, OrderFilled)]
    assert [e.cum_qty for e in events] == [65, 130]


def test_shipped_execution_policy_has_kite_windows() -> None:
    cfg = ExecutionConfig.from_policy_set(load_policy_set([ROOT / "policies"]))
    kite = (Window(max=10, per_s=1.0), Window(max=400, per_s=60.0),
            Window(max=5000, per_s=86400.0))
    assert cfg.windows_for("kite") == kite == cfg.windows_for("paper")
    assert cfg.windows_for("someone-else") == kite
    assert cfg.segment_limits[0] == Window(max=8, per_s=1.0)
    assert cfg.max_modifications == 25


# -- the property: random fault sequences against the real paper broker -----------------------

CONTRACTS = (CE, PE)
TIGHT_BROKER = (Window(max=5, per_s=1.0), Window(max=40, per_s=60.0))
TIGHT_SEGMENT = (Window(max=3, per_s=1.0), Window(max=2, per_s=0.25))

order_step = st.tuples(st.integers(0, 1), st.sampled_from(["BUY", "SELL"]), st.integers(1, 3),
                       st.sampled_from(["entry", "entry", "exit"]), st.integers(-10, 30),
                       st.sampled_from([0, 0, 0, 7]))
step = st.tuples(st.lists(order_step, max_size=4), st.lists(st.integers(0, 50), max_size=2),
                 st.sampled_from([0.25, 1.0, 1.0, 2.0]), st.integers(-6, 6))
probability = st.sampled_from([0.0, 0.1, 0.25, 0.5])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=1, max_size=40), seed=st.integers(0, 10_000),
       ratelimit=probability, timeout=probability, lost=probability, reject=probability,
       lookupfail=probability, partial=probability, dup=probability, reorder=probability,
       latency=st.integers(0, 1))
def test_random_faults_never_double_and_positions_match(
        steps: list[Any], seed: int, ratelimit: float, timeout: float, lost: float,
        reject: float, lookupfail: float, partial: float, dup: float, reorder: float,
        latency: int) -> None:
    paper = PaperBroker(PaperConfig.from_policy({
        "latency_ticks": latency, "reject_probability": 0.05,
        "depth": {"assumed_qty": 500, "partial_fills": True},
        "slippage": {"impact_ticks": 1, "jitter_ticks": 1}}), seed=seed, capital=1e10)
    faulty = FaultyBroker(paper, FaultSpec(ratelimit=ratelimit, timeout=timeout, lost=lost,
                                           reject=reject, lookupfail=lookupfail,
                                           partial=partial, dup=dup, reorder=reorder),
                          seed=seed)
    cfg = ExecutionConfig.from_policy({
        "rate_limits": {"paper": [{"max": 5, "per": "1s"}, {"max": 40, "per": "1m"}]},
        "segment_limits": [{"max": 3, "per": "1s"}, {"max": 2, "per": "250ms"}],
        "rate_limited": {"cooldown": "3s", "backoff_max": "10s"},
        "pending": {"entry": {"after": "8s"}, "exit": {"after": "3s"}},
        "partial_fills": {"entry": {"wait": "4s"}, "exit": {"wait": "2s"}}})
    checks = CheckConfig.from_policy({"duplicate_window": "2s", "max_open_orders": 12},
                                     instruments=INSTRUMENTS)
    quotes: dict[Contract, Quote] = {}
    gw = ExecutionGateway(faulty, cfg, seed=seed, instruments=INSTRUMENTS, quotes=quotes.get,
                          checks=checks)
    mids = {CE: 100.0, PE: 80.0}
    now = T0
    sent: dict[str, OrderRequest] = {}
    history: list[Sent] = []
    ours: dict[Contract, int] = {}
    cum: dict[str, int] = {}
    finished: set[str] = set()
    denials: list[str] = []
    synthesized: list[str] = []

    def market(now: datetime, drift: int) -> None:
        faulty.on_market(IndexTick(ts=now, underlying="NIFTY", value=24000.0))
        for c in CONTRACTS:
            mids[c] = max(mids[c] + drift * 0.05 * (1 if c is CE else -1), 5.0)
            q = Quote(ts=now, contract=c, ltp=round(mids[c], 2), bid=round(mids[c] - 0.5, 2),
                      ask=round(mids[c] + 0.5, 2), bid_qty=200, ask_qty=200)
            quotes[c] = q
            faulty.on_market(q)

    def absorb(events: Sequence[BrokerEvent]) -> None:
        for e in events:
            r = sent[e.client_id]
            assert e.client_id not in finished or isinstance(e, OrderFilled), e
            if isinstance(e, OrderFilled):
                assert e.cum_qty == cum.get(e.client_id, 0) + e.qty <= r.qty
                cum[e.client_id] = e.cum_qty
                ours[r.contract] = ours.get(r.contract, 0) + (e.qty if r.side == "BUY"
                                                               else -e.qty)
            elif isinstance(e, (OrderCancelled, OrderRejected)):
                finished.add(e.client_id)
                if isinstance(e, OrderRejected) and e.source == "execution":
                    synthesized.append(e.reason)

    market(now, 0)
    n = 0
    for orders, cancels, dt, drift in steps:
        now += timedelta(seconds=dt)
        market(now, drift)
        absorb(gw.poll(now))
        approved: list[OrderRequest] = []
        for ci, side, lots, purpose, offset, bad_qty in orders:
            n += 1
            c = CONTRACTS[ci]
            price = round(max(mids[c] + offset * 0.05 + (0.5 if side == "BUY" else -0.5), 0.05)
                          / 0.05) * 0.05
            o = OrderRequest(client_id=f"p{n:04d}", contract=c, side=side,
                             qty=lots * LOT + bad_qty, order_type="LIMIT",
                             limit_price=round(price, 2), purpose=purpose,
                             strategy_id="prop", leg_id=f"l{ci}")
            ctx = CheckContext(config=checks, now=now, quotes=quotes,
                               open_orders=[Sent(request=sent[c_], sent_ts=now)
                                            for c_ in gw.open_client_ids()],
                               recent=history, client_ids=sent)
            result = check_order(o, ctx)
            if result.denial is not None:
                denials.append(result.denial.code)
                continue
            for child in result.orders:
                sent[child.client_id] = child
                history.append(Sent(request=child, sent_ts=now))
                approved.append(child)
        live = gw.open_client_ids()
        gw.submit(approved, [live[i % len(live)] for i in cancels] if live else [], now)
    # let orders work (re-prices, chases, timeouts) for a while, then cancel what is still
    # working and let every answer arrive
    for k in range(400):
        now += timedelta(seconds=1)
        market(now, 0)
        if k >= 10:
            gw.submit([], gw.open_client_ids(), now)
        absorb(gw.poll(now))
        if gw.idle and faulty.pending_events == 0:
            break
    now += timedelta(seconds=1)
    absorb(gw.poll(now))
    assert gw.idle, gw.open_client_ids()

    event(f"fills: {'none' if not paper.fills else 'some' if len(paper.fills) < 10 else '10+'}")
    event(f"faults injected: {'none' if not faulty.injected else 'some'}")
    event(f"open position at the end: {bool(broker_pos := paper.positions())}")
    # the broker never held two orders with the same client id
    assert len(faulty.forwarded) == len(set(faulty.forwarded))
    assert not [r for r in synthesized if "duplicate client_id" in r]
    # our positions, from the fills we were told about, equal the broker's
    assert {c: q for c, q in ours.items() if q} == {p.contract: p.qty for p in broker_pos}
    # no sliding window ever held more requests than configured
    times = [c.ts for c in faulty.calls]
    for w in (*TIGHT_BROKER, *TIGHT_SEGMENT):
        assert max_in_window(times, w.per_s) <= w.max, w
    # every denial and every synthesized refusal carries a known reason code
    assert all(code in DENIAL_CODES for code in denials)
    assert all(r.split(":", 1)[0] in EXECUTION_CODES for r in synthesized), synthesized


@pytest.mark.parametrize("spec", ["ratelimit=0.3,timeout=0.3,lost=0.2,dup=0.3,reorder=0.3",
                                  "partial=0.5,reject=0.2,lookupfail=0.5"])
def test_a_long_faulty_session_reconciles(spec: str) -> None:
    """The same invariants over one long deterministic session per fault mix."""
    paper = PaperBroker(PaperConfig.from_policy({"latency_ticks": 1}), seed=5, capital=1e10)
    faulty = FaultyBroker(paper, FaultSpec.parse(spec), seed=5)
    quotes = quotes_at(100.0)
    gw = gateway(faulty, ExecutionConfig.from_policy({}), quotes=quotes)
    signed: dict[str, tuple[Contract, int]] = {}
    ours: dict[Contract, int] = {}
    now = T0
    for k in range(300):
        now = t(k)
        mid = 100.0 + (k % 20) * 0.25
        quotes.update({c: Quote(ts=now, contract=c, ltp=mid, bid=mid - 0.5, ask=mid + 0.5,
                                bid_qty=100, ask_qty=100) for c in (CE, PE)})
        for q in quotes.values():
            faulty.on_market(q)
        for e in gw.poll(now):
            if isinstance(e, OrderFilled):
                c, sign = signed[e.client_id]
                ours[c] = ours.get(c, 0) + sign * e.qty
        if k < 250 and k % 3 == 0:
            side = "BUY" if k % 2 else "SELL"
            o = req(f"o{k:03d}", side=side, lots=1 + k % 3, limit=mid + (1 if side == "BUY"
                                                                        else -1),
                    purpose="exit" if k % 5 == 0 else "entry", contract=CE if k % 4 else PE)
            signed[o.client_id] = (o.contract, 1 if side == "BUY" else -1)
            gw.submit([o], [], now)
        if k >= 250:
            gw.submit([], gw.open_client_ids(), now)
    assert gw.idle and faulty.pending_events == 0
    assert len(faulty.forwarded) == len(set(faulty.forwarded))
    assert {c: q for c, q in ours.items() if q} == {p.contract: p.qty
                                                   for p in paper.positions()}
    assert sum(faulty.injected.values()) > 10


def test_policy_swap_keeps_the_window_history() -> None:
    fake = FakeBroker(name="paper")
    gw = gateway(fake, exec_config(rate_limits={"paper": [{"max": 2, "per": "1s"}]},
                                   queue_timeout="60s"))
    gw.submit([req("a"), req("b"), req("c")], [], t(0))
    assert fake.placed() == ["a", "b"]
    gw.swap_policy(load_policy_set([ROOT / "policies"]))  # Kite windows: 10/s
    gw.poll(t(0.5))
    assert fake.placed() == ["a", "b", "c"]
    assert gw.limiter.broker[0].times == deque([t(0), t(0), t(0.5)])
    gw.close()


def test_a_cancel_confirmation_whose_fills_never_come_is_released_without_replacing() -> None:
    fake = FakeBroker()
    quotes = quotes_at(100.0)
    gw = gateway(fake, quotes=quotes)
    gw.submit([req("x", side="SELL", lots=2, limit=99.5, purpose="exit")], [], t(0))
    gw.poll(t(1))
    quotes.update(quotes_at(95.0))
    gw.poll(t(5))  # pending exit: re-price by cancel and replace
    assert [k for _, k, _ in fake.calls] == ["place", "cancel"]
    fake.queue.clear()  # the broker's cancel said 65 were filled, but that fill is delayed
    fake.queue.append(OrderCancelled(ts=t(5), client_id="x", filled_qty=65))
    assert gw.poll(t(6)) == []  # held for the fill
    events = gw.poll(t(11))  # reorder_hold 5 s: released, and nothing replaced
    assert kinds(events) == [("OrderCancelled", "x")] and fake.placed() == ["x"]
    late = OrderFilled(ts=t(12), client_id="x", broker_order_id="B1", fill_id="F1", qty=65,
                       price=99.5, cum_qty=65, order_qty=130)
    fake.queue.append(late)
    assert kinds(gw.poll(t(12))) == [("OrderFilled", "x")]  # still booked: positions stay true


def test_cancel_drops_a_modify_still_waiting() -> None:
    fake = ModifyingFake()
    quotes = quotes_at(100.0)
    gw = gateway(fake, exec_config(segment_limits=[{"max": 1, "per": "1s"}]), quotes=quotes)
    gw.submit([req("x", side="SELL", limit=99.5, purpose="exit")], [], t(0))
    quotes.update(quotes_at(96.0))
    gw.poll(t(5))  # the modify is queued and sent
    quotes.update(quotes_at(90.0))
    gw.submit([req("y")], [], t(9.5))  # uses this second's budget
    gw.poll(t(10))  # a second modify is queued behind y ...
    gw.submit([], ["x"], t(10))  # ... and the engine cancels x before it leaves
    for k in range(11, 14):
        gw.poll(t(k))
    assert [k for _, k, tag in fake.calls if tag == "x"] == ["place", "modify", "cancel"]


# -- broker values in the engine's types --------------------------------------------------------

def test_broker_json_shapes_reach_the_engine_in_declared_types() -> None:
    """A broker's JSON gives whole prices as ints, ids as numbers and null reasons. What the
    gateway passes on has the declared types, so both builds of the engine see (and audit)
    the same values: 154.0, never 154."""
    fake = FakeBroker()
    gw = gateway(fake)
    gw.submit([req("a1"), req("r1")], [], t(0))
    gw.poll(t(0.1))
    fake.queue.append(OrderFilled(ts=t(1), client_id="a1", broker_order_id=7,  # type: ignore[arg-type]
                                  fill_id=90017, qty=65.0, price=154,  # type: ignore[arg-type]
                                  cum_qty=65, order_qty=65))
    fake.queue.append(OrderRejected(ts=t(1), source=None,  # type: ignore[arg-type]
                                    client_id="r1", reason=None))  # type: ignore[arg-type]
    out = gw.poll(t(1.1))
    [filled] = [e for e in out if isinstance(e, OrderFilled)]
    [rejected] = [e for e in out if isinstance(e, OrderRejected)]
    assert (filled.price, filled.fill_id, filled.broker_order_id, filled.qty) == \
        (154.0, "90017", "7", 65)
    assert (type(filled.price), type(filled.qty)) == (float, int)
    assert (rejected.reason, rejected.source) == ("", "")
