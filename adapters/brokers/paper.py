"""A paper broker that is pessimistic in the ways real fills are, so paper P&L is not a fantasy.

Backtests that fill at the last traded price overstate an options strategy's edge by about the
bid/ask spread on every leg. Here a marketable order always pays the touch (ask for a buy, bid
for a sell) plus slippage that grows with the share of the displayed depth it takes, prices
round against the trader, an order larger than the displayed quantity fills over several market
updates, and the exchange's limit price protection and an offline margin check reject what a
real exchange or broker would reject. Every tunable lives in the ``paper_broker`` policy kind
(``policies/paper_broker.yaml``).

Determinism: all randomness comes from one ``random.Random(seed)`` and all time from the events
and ``now`` arguments, so the same event stream and seed give byte-identical fills.

Order life cycle, as Kite reports it::

    place() ──> OPEN PENDING ──(latency_ticks market updates and a quote)──> OPEN ──> COMPLETE
                    │                                       │          └──> CANCELLED (cancel)
                    └──> CANCELLED (cancel)                 └──> REJECTED (LPP band, margin,
                                                                           reject_probability)

Results are queued and handed out by :meth:`PaperBroker.poll` stamped with its ``now``: the
engine sees them on its next tick, as it would with a real broker.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache, partial
from typing import TYPE_CHECKING, Any, Literal

import jsonschema
from referencing import Registry, Resource

from ruleengine.checks import Band
from ruleengine.checks import ExchangeBands as PriceBands
from ruleengine.contracts import BrokerOrder, BrokerPosition, OrderRequest
from ruleengine.errors import BrokerRejected
from ruleengine.events import (
    Bar,
    BrokerEvent,
    ChainSnapshot,
    Contract,
    Event,
    IndexTick,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    Quote,
    Side,
)
from ruleengine.schema import apply_defaults, load_schema

if TYPE_CHECKING:
    from ruleengine.policyset import PolicySet

MarketOrderMode = Literal["convert", "allow", "reject"]

#: Kite's order statuses used here. A partial fill stays OPEN, as on Kite.
OPEN_PENDING, OPEN, COMPLETE = "OPEN PENDING", "OPEN", "COMPLETE"
CANCELLED, REJECTED = "CANCELLED", "REJECTED"
_TERMINAL = frozenset({COMPLETE, CANCELLED, REJECTED})
_MAX_TAG = 20  # Kite's tag limit; client_id doubles as the tag
_EPS = 1e-9


# -- configuration ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class MarginModel:
    """Offline margin approximation (not SPAN); see the ``margin`` section of the policy."""

    short_option_pct: float
    hedge_credit_pct: float
    expiry_day_extra_pct: float
    futures_pct: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PaperConfig:
    """The ``paper_broker`` policy, typed. Build it with :meth:`from_policy` so the schema's
    defaults stay the single source of every number."""

    latency_ticks: int
    tick_size: float
    impact_ticks: float
    impact_exponent: float
    jitter_ticks: float
    partial_fills: bool
    assumed_depth_qty: int
    reject_probability: float
    market_order_mode: MarketOrderMode
    market_protection_pct: float
    price_bands: tuple[PriceBands, ...]
    margin: MarginModel

    def __post_init__(self) -> None:
        # Hand-built configs skip schema validation; catch the values that would break maths.
        if self.tick_size <= 0 or self.latency_ticks < 0 or self.impact_exponent <= 0:
            raise ValueError("paper broker: tick_size and impact_exponent must be > 0, "
                             "latency_ticks >= 0")
        if not 0.0 <= self.reject_probability <= 1.0:
            raise ValueError("paper broker: reject_probability must be within 0..1")
        if self.market_order_mode not in ("convert", "allow", "reject"):
            raise ValueError(f"paper broker: unknown market order mode "
                             f"{self.market_order_mode!r}")

    @classmethod
    def from_policy(cls, data: Mapping[str, Any]) -> PaperConfig:
        """From a ``paper_broker`` document; missing keys take the schema defaults, so a
        partial mapping (even ``{}``) is enough for tests and ad-hoc runs. The mapping is
        checked against the schema because a mistyped key would otherwise be silently ignored
        and the run would use a default nobody chose."""
        doc = {"kind": "paper_broker", "version": 1, **data}
        problems = sorted(e.message for e in _validator().iter_errors(doc))
        if problems:
            raise ValueError("paper broker policy: " + "; ".join(problems))
        d = apply_defaults(doc, "paper_broker")
        slip, depth, market, m = d["slippage"], d["depth"], d["market_orders"], d["margin"]
        bands = tuple(sorted(
            (PriceBands(effective_from=date.fromisoformat(str(b["effective_from"])),
                        underlyings=tuple(b.get("underlyings", ())),
                        option=Band(**b["option"]), future=Band(**b["future"]))
             for b in d["price_bands"]), key=lambda b: b.effective_from))
        return cls(
            latency_ticks=int(d["latency_ticks"]), tick_size=float(d["tick_size"]),
            impact_ticks=float(slip["impact_ticks"]),
            impact_exponent=float(slip["impact_exponent"]),
            jitter_ticks=float(slip["jitter_ticks"]), partial_fills=bool(depth["partial_fills"]),
            assumed_depth_qty=int(depth["assumed_qty"]),
            reject_probability=float(d["reject_probability"]),
            market_order_mode=market["mode"], market_protection_pct=float(market["protection_pct"]),
            price_bands=bands,
            margin=MarginModel(short_option_pct=float(m["short_option_pct"]),
                               hedge_credit_pct=float(m["hedge_credit_pct"]),
                               expiry_day_extra_pct=float(m["expiry_day_extra_pct"]),
                               futures_pct=float(m["futures_pct"])))

    @classmethod
    def from_policy_set(cls, pset: PolicySet) -> PaperConfig:
        """The first ``paper_broker`` document of a policy set, or the defaults if it has none."""
        docs = pset.of_kind("paper_broker")
        return cls.from_policy(docs[0] if docs else {})

    def bands_for(self, underlying: str, day: date) -> PriceBands | None:
        """The entry in force: the newest by date, one naming the underlying beating a general
        one; None before LPP existed."""
        live = [b for b in self.price_bands if b.effective_from <= day]
        specific = [b for b in live if underlying in b.underlyings]
        pool = specific or [b for b in live if not b.underlyings]
        return pool[-1] if pool else None


# -- records ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class PaperFill:
    """One simulated fill with the market around it, so a run can show what LTP fills hide."""

    ts: datetime
    fill_id: str
    client_id: str
    broker_order_id: str
    contract: Contract
    side: Side
    qty: int
    price: float
    ltp: float
    touch: float  # the ask (buy) or bid (sell) the fill was priced from
    slippage_ticks: int  # whole ticks paid beyond the touch (0 for resting orders)
    resting: bool  # filled as a resting limit order at its own price


@dataclass(frozen=True, slots=True, kw_only=True)
class SlippageSummary:
    """Cost of realistic fills against naive ones, in INR (positive = worse for the trader)."""

    fills: int
    qty: int
    vs_ltp: float  # against filling every unit at the last traded price
    vs_touch: float  # against filling every unit at the bid/ask (impact + jitter only)


@dataclass(slots=True, kw_only=True)
class _Order:
    seq: int
    broker_order_id: str
    request: OrderRequest
    placed_at: datetime
    ticks_left: int
    last_ts: datetime
    status: str = OPEN_PENDING
    limit: float | None = None  # effective limit (a converted MARKET order gets one)
    filled_qty: int = 0
    value: float = 0.0
    resting: bool = False  # has rested behind the market: fills at its own limit from now on

    @property
    def remaining(self) -> int:
        return self.request.qty - self.filled_qty


@dataclass(slots=True)
class _Position:
    qty: int = 0
    avg_price: float = 0.0


# -- the broker -------------------------------------------------------------------------------

@dataclass(slots=True)
class _Book:
    quotes: dict[Contract, Quote] = field(default_factory=dict)
    spot: dict[str, float] = field(default_factory=dict)
    depth_left: dict[tuple[Contract, Side], int] = field(default_factory=dict)


class PaperBroker:
    """Simulated broker and exchange implementing :class:`ruleengine.contracts.Broker`.

    ``capital`` is the starting cash (the risk policy's ``capital``), kept out of the paper
    policy so paper and risk limits measure against the same account size.
    """

    name = "paper"

    def __init__(self, config: PaperConfig, seed: int, capital: float) -> None:
        self.config = config
        self._rng = random.Random(seed)
        self._cash = float(capital)
        self._book = _Book()
        self._orders: dict[str, _Order] = {}  # by client_id, in placement order
        self._active: dict[str, _Order] = {}  # the not yet finished ones, same order
        self._positions: dict[Contract, _Position] = {}
        self._fills: list[PaperFill] = []
        self._queue: list[Callable[..., BrokerEvent]] = []
        self._next_order = 0
        self._next_fill = 0

    # -- Broker protocol ----------------------------------------------------------------------

    def place(self, order: OrderRequest, now: datetime) -> str:
        """Record the order and return its id; the outcome arrives later through :meth:`poll`.

        A ``client_id`` seen before raises :class:`BrokerRejected`. Kite itself would accept a
        repeated tag, but the engine relies on tags being unique to look orders up after a
        timeout, so a repeat here is a bug worth stopping on. Requests Kite refuses at the API
        (bad quantity, price off the tick grid, MARKET without protection) also raise.
        """
        self._validate(order)
        self._next_order += 1
        oid = f"P{self._next_order:06d}"
        o = _Order(seq=self._next_order, broker_order_id=oid, request=order, placed_at=now,
                   ticks_left=self.config.latency_ticks, last_ts=now, limit=order.limit_price)
        self._orders[order.client_id] = self._active[order.client_id] = o
        if o.ticks_left <= 0 and order.contract in self._book.quotes:
            self._arrive(o, now)
            if o.status == OPEN:
                self._match(o, now)
        return oid

    def cancel(self, client_id: str, now: datetime) -> None:
        """Cancel the unfilled remainder at once (cancel latency is not simulated, so a cancel
        never loses a race with a fill here). Cancelling an unknown or finished order raises,
        as Kite does."""
        o = self._orders.get(client_id)
        if o is None:
            raise BrokerRejected(f"paper: no order with tag {client_id!r}")
        if o.status in _TERMINAL:
            raise BrokerRejected(f"paper: order {o.broker_order_id} ({client_id}) is already "
                                 f"{o.status}")
        o.status = CANCELLED
        del self._active[client_id]
        self._emit(partial(OrderCancelled, client_id=client_id, filled_qty=o.filled_qty))

    def orders_by_tag(self, client_id: str) -> Sequence[BrokerOrder]:
        o = self._orders.get(client_id)
        if o is None:
            return []
        return [BrokerOrder(broker_order_id=o.broker_order_id, client_id=client_id,
                            status=o.status, qty=o.request.qty, filled_qty=o.filled_qty,
                            avg_price=self._avg(o))]

    def positions(self) -> Sequence[BrokerPosition]:
        """Open positions only (net quantity not zero), in the order they were first traded."""
        return [BrokerPosition(contract=c, qty=p.qty, avg_price=p.avg_price)
                for c, p in self._positions.items() if p.qty != 0]

    def on_market(self, event: Event) -> None:
        """Update the book, let waiting orders reach the exchange, then match live orders in
        time priority against the displayed depth of this update."""
        self._absorb(event)
        for o in self._active.values():
            if o.status != OPEN_PENDING:
                continue
            if event.ts > o.last_ts and o.ticks_left > 0:
                o.ticks_left -= 1
                o.last_ts = event.ts
            if o.ticks_left <= 0 and o.request.contract in self._book.quotes:
                self._arrive(o, event.ts)
        for o in self._active.values():
            if o.status == OPEN:
                self._match(o, event.ts)
        self._active = {k: o for k, o in self._active.items() if o.status not in _TERMINAL}

    def poll(self, now: datetime) -> Sequence[BrokerEvent]:
        events = [make(ts=now, source=self.name) for make in self._queue]
        self._queue.clear()
        return events

    # -- reporting ----------------------------------------------------------------------------

    @property
    def fills(self) -> tuple[PaperFill, ...]:
        return tuple(self._fills)

    @property
    def cash(self) -> float:
        """Capital plus option premium received minus premium paid plus realised futures P&L."""
        return self._cash

    def slippage_vs_ltp(self) -> SlippageSummary:
        vs_ltp = vs_touch = 0.0
        for f in self._fills:
            sign = 1.0 if f.side == "BUY" else -1.0
            vs_ltp += sign * (f.price - f.ltp) * f.qty
            vs_touch += sign * (f.price - f.touch) * f.qty
        return SlippageSummary(fills=len(self._fills), qty=sum(f.qty for f in self._fills),
                               vs_ltp=round(vs_ltp, 2), vs_touch=round(vs_touch, 2))

    def required_margin(self, day: date) -> float:
        """Margin the open positions block under the offline model (premium already paid for
        long options is not counted again)."""
        return self._margin({c: p.qty for c, p in self._positions.items()}, day)

    # -- placement checks ---------------------------------------------------------------------

    def _validate(self, order: OrderRequest) -> None:
        cid = order.client_id
        if cid in self._orders:
            raise BrokerRejected(f"paper: duplicate client_id {cid!r}; tags must be unique so "
                                 "an order can be found again after a timeout")
        if not cid or len(cid) > _MAX_TAG:
            raise BrokerRejected(f"paper: client_id {cid!r} must be 1-{_MAX_TAG} characters "
                                 "(it is the Kite tag)")
        if order.contract.kind not in ("OPT", "FUT"):
            raise BrokerRejected(f"paper: {order.contract.symbol} is not tradable")
        if order.qty <= 0:
            raise BrokerRejected(f"paper: quantity must be positive, got {order.qty}")
        if order.order_type == "MARKET":
            if self.config.market_order_mode == "reject":
                raise BrokerRejected("paper: MARKET orders need market_protection (Kite, from "
                                     "1 Apr 2026); send a limit order")
            return
        price = order.limit_price
        if price is None or price <= 0:
            raise BrokerRejected("paper: a LIMIT order needs a positive limit_price")
        if abs(price / self.config.tick_size - round(price / self.config.tick_size)) > 1e-6:
            raise BrokerRejected(f"paper: limit price {price} is not a multiple of the tick "
                                 f"size {self.config.tick_size}")

    def _arrive(self, o: _Order, ts: datetime) -> None:
        """The order reaches the exchange: convert MARKET, apply LPP, margin, random reject."""
        req = o.request
        quote = self._book.quotes[req.contract]
        band = self._band(req.contract, quote, ts.date())
        if req.order_type == "MARKET" and self.config.market_order_mode == "convert":
            o.limit = self._converted_limit(req.side, quote, band)
        reason = None
        if o.limit is not None and band is not None:
            low, high = band
            if req.side == "BUY" and o.limit > high + _EPS:
                reason = (f"price {o.limit:.2f} is above the limit price protection band "
                          f"(upper {high:.2f}); order price is beyond LPP limit")
            elif req.side == "SELL" and o.limit < low - _EPS:
                reason = (f"price {o.limit:.2f} is below the limit price protection band "
                          f"(lower {low:.2f}); order price is beyond LPP limit")
        if reason is None:
            reason = self._margin_shortfall(o, ts.date())
        if reason is None and self.config.reject_probability > 0 \
                and self._rng.random() < self.config.reject_probability:
            reason = "paper: random rejection (reject_probability)"
        if reason is not None:
            o.status = REJECTED
            self._emit(partial(OrderRejected, client_id=req.client_id, reason=reason))
            return
        o.status = OPEN
        self._emit(partial(OrderAccepted, client_id=req.client_id,
                           broker_order_id=o.broker_order_id))

    def _band(self, c: Contract, quote: Quote, day: date) -> tuple[float, float] | None:
        entry = self.config.bands_for(c.underlying, day)
        ref = _reference(quote)
        if entry is None or ref is None:
            return None
        return (entry.option if c.kind == "OPT" else entry.future).limits(ref)

    def _converted_limit(self, side: Side, quote: Quote,
                         band: tuple[float, float] | None) -> float | None:
        """A marketable limit protection_pct through the touch, kept inside the LPP band, as
        Kite's market_protection does; None leaves the order resting until a touch appears."""
        touch = quote.ask if side == "BUY" else quote.bid
        base = touch if touch is not None else _reference(quote)
        if base is None:
            return None
        pct = self.config.market_protection_pct / 100.0
        if side == "BUY":
            ticks = self._ticks_up(base * (1 + pct))
            if band is not None:
                ticks = min(ticks, self._ticks_down(band[1]))
        else:
            ticks = self._ticks_down(base * (1 - pct))
            if band is not None:
                ticks = max(ticks, self._ticks_up(band[0]))
            ticks = max(ticks, 1)
        return self._price(ticks)

    # -- margin -------------------------------------------------------------------------------

    def _margin_shortfall(self, new: _Order, day: date) -> str | None:
        """Would the account pay for every open order filling, this one included? Premium for
        option buys at their limit price, plus the margin of the resulting positions."""
        hypo = {c: p.qty for c, p in self._positions.items()}
        outlay = 0.0
        for o in [*(x for x in self._active.values() if x.status == OPEN), new]:
            req = o.request
            signed = o.remaining if req.side == "BUY" else -o.remaining
            hypo[req.contract] = hypo.get(req.contract, 0) + signed
            if req.side == "BUY" and req.contract.kind == "OPT":
                outlay += o.remaining * self._premium_estimate(o)
        required = outlay + self._margin(hypo, day)
        if required <= self._cash + _EPS:
            return None
        return (f"insufficient funds: required margin {required:,.2f} but available "
                f"{self._cash:,.2f} (paper broker offline margin approximation)")

    def _premium_estimate(self, o: _Order) -> float:
        if o.limit is not None:
            return o.limit
        q = self._book.quotes.get(o.request.contract)
        if q is None:
            return 0.0
        return q.ask if q.ask is not None else q.ltp

    def _margin(self, hypo: Mapping[Contract, int], day: date) -> float:
        m = self.config.margin
        total = 0.0
        groups: dict[tuple[str, date | None, str | None], list[float]] = {}
        for c, qty in hypo.items():
            if qty == 0:
                continue
            if c.kind == "FUT":
                total += m.futures_pct / 100.0 * abs(qty) * self._future_price(c)
                continue
            g = groups.setdefault((c.underlying, c.expiry, c.option_type), [0.0, 0.0, 0.0])
            if qty > 0:
                g[0] += qty  # long units
            else:
                g[1] += -qty  # short units
                g[2] += -qty * self._spot_for(c)  # short notional
        for (_, expiry, _), (long_units, short_units, notional) in groups.items():
            if short_units == 0:
                continue
            pct = m.short_option_pct + (m.expiry_day_extra_pct if expiry == day else 0.0)
            hedged = min(long_units, short_units) / short_units
            total += pct / 100.0 * notional * (1.0 - hedged * m.hedge_credit_pct / 100.0)
        return total

    def _spot_for(self, c: Contract) -> float:
        # Without an index value yet, the strike is the best offline stand-in for spot.
        return self._book.spot.get(c.underlying, c.strike or 0.0)

    def _future_price(self, c: Contract) -> float:
        q = self._book.quotes.get(c)
        if q is not None and q.ltp > 0:
            return q.ltp
        return self._book.spot.get(c.underlying, 0.0)

    # -- matching -----------------------------------------------------------------------------

    def _absorb(self, event: Event) -> None:
        book = self._book
        if isinstance(event, Quote):
            self._take_quote(event)
        elif isinstance(event, ChainSnapshot):
            book.spot[event.underlying] = event.spot
            for q in event.quotes:
                self._take_quote(q)
        elif isinstance(event, IndexTick):
            book.spot[event.underlying] = event.value
        elif isinstance(event, Bar):
            book.spot[event.underlying] = event.close

    def _take_quote(self, q: Quote) -> None:
        self._book.quotes[q.contract] = q
        self._book.depth_left[(q.contract, "BUY")] = self._displayed(q.ask, q.ask_qty)
        self._book.depth_left[(q.contract, "SELL")] = self._displayed(q.bid, q.bid_qty)

    def _displayed(self, price: float | None, qty: int) -> int:
        if price is None:
            return 0
        return qty if qty > 0 else self.config.assumed_depth_qty

    def _match(self, o: _Order, ts: datetime) -> None:
        """Fill what this update allows. A taker pays the touch plus slippage; an order that
        has rested behind the market is a maker and, when the market comes through its price,
        fills at its own limit (where it sat in the book), never better."""
        req = o.request
        quote = self._book.quotes.get(req.contract)
        if quote is None or o.remaining <= 0:
            return
        if o.limit is None and req.order_type == "MARKET" \
                and self.config.market_order_mode == "convert":
            # arrived before the book had any price to convert from; never fill unprotected
            o.limit = self._converted_limit(req.side, quote,
                                            self._band(req.contract, quote, ts.date()))
            if o.limit is None:
                return
        buy = req.side == "BUY"
        touch = quote.ask if buy else quote.bid
        if touch is None:
            return
        crosses = o.limit is None or (touch <= o.limit + _EPS if buy else
                                      touch >= o.limit - _EPS)
        if not crosses:
            o.resting = True
            return
        key = (req.contract, req.side)
        left = self._book.depth_left.get(key, 0)
        if left <= 0:
            return
        displayed = self._displayed(touch, quote.ask_qty if buy else quote.bid_qty)
        qty = min(o.remaining, left) if self.config.partial_fills else o.remaining
        self._book.depth_left[key] = max(left - qty, 0)
        if o.resting and o.limit is not None:
            price, slip = o.limit, 0
        else:
            price, slip = self._taker_price(buy, touch, qty, displayed, o.limit)
        self._fill(o, ts, qty, price, quote, touch, slip)

    def _taker_price(self, buy: bool, touch: float, qty: int, displayed: int,
                     limit: float | None) -> tuple[float, int]:
        cfg = self.config
        raw = cfg.impact_ticks * (qty / displayed) ** cfg.impact_exponent
        if cfg.jitter_ticks > 0:
            raw += cfg.jitter_ticks * self._rng.random()
        slip = max(math.ceil(raw - _EPS), 0)  # whole ticks, rounded against the trader
        base = round(touch / cfg.tick_size)
        ticks = base + slip if buy else base - slip
        if limit is not None:
            lim = round(limit / cfg.tick_size)
            ticks = min(ticks, lim) if buy else max(ticks, lim)
        ticks = max(ticks, 1)
        return self._price(ticks), abs(ticks - base)

    def _fill(self, o: _Order, ts: datetime, qty: int, price: float, quote: Quote,
              touch: float, slip: int) -> None:
        req = o.request
        self._next_fill += 1
        fill_id = f"F{self._next_fill:06d}"
        o.filled_qty += qty
        o.value += qty * price
        if o.remaining == 0:
            o.status = COMPLETE
        self._fills.append(PaperFill(
            ts=ts, fill_id=fill_id, client_id=req.client_id, broker_order_id=o.broker_order_id,
            contract=req.contract, side=req.side, qty=qty, price=price, ltp=quote.ltp,
            touch=touch, slippage_ticks=slip, resting=o.resting))
        self._book_fill(req.contract, qty if req.side == "BUY" else -qty, price)
        self._emit(partial(OrderFilled, client_id=req.client_id,
                           broker_order_id=o.broker_order_id, fill_id=fill_id, qty=qty,
                           price=price, cum_qty=o.filled_qty, order_qty=req.qty))

    def _book_fill(self, c: Contract, signed: int, price: float) -> None:
        """Net the fill into the position; options move cash by the premium, futures only by
        realised P&L (their notional is margined, not paid)."""
        p = self._positions.setdefault(c, _Position())
        if c.kind == "OPT":
            self._cash -= signed * price
        if p.qty == 0 or (p.qty > 0) == (signed > 0):
            total = p.qty + signed
            p.avg_price = (p.avg_price * abs(p.qty) + price * abs(signed)) / abs(total)
            p.qty = total
            return
        closed = min(abs(signed), abs(p.qty))
        if c.kind == "FUT":
            self._cash += closed * (price - p.avg_price) * (1 if p.qty > 0 else -1)
        p.qty += signed
        if p.qty == 0:
            p.avg_price = 0.0
        elif (p.qty > 0) == (signed > 0):  # flipped through zero: the rest opened at price
            p.avg_price = price

    # -- helpers ------------------------------------------------------------------------------

    def _emit(self, make: Callable[..., BrokerEvent]) -> None:
        self._queue.append(make)

    def _avg(self, o: _Order) -> float:
        return round(o.value / o.filled_qty, 4) if o.filled_qty else 0.0

    def _ticks_up(self, price: float) -> int:
        return math.ceil(price / self.config.tick_size - 1e-6)

    def _ticks_down(self, price: float) -> int:
        return math.floor(price / self.config.tick_size + 1e-6)

    def _price(self, ticks: int) -> float:
        return round(ticks * self.config.tick_size, 6)


@cache
def _validator() -> jsonschema.protocols.Validator:
    registry: Registry[Any] = Registry().with_resource(
        "common.schema.json", Resource.from_contents(load_schema("common")))
    schema = load_schema("paper_broker")
    return jsonschema.validators.validator_for(schema)(schema, registry=registry)


def _reference(q: Quote) -> float | None:
    """The exchange's LPP reference is close to the last traded price; without a trade yet,
    the mid (or the only side) stands in."""
    if q.ltp > 0:
        return q.ltp
    sides = [p for p in (q.bid, q.ask) if p is not None]
    return sum(sides) / len(sides) if sides else None
