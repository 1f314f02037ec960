"""Stage 7 — pre-trade checks: each returns a reason code, or None when the order may go.

Checks never raise and never block an order that reduces risk: exits and square-offs only have
to be valid for the broker. The trading-state gateway is the first check, so a halt is enforced
in exactly one place.

:func:`check_order` runs the whole chain on one order and returns a :class:`CheckResult`: the
orders that may be sent (the order itself, its price rounded to the tick grid, or its slices
below the freeze quantity) or a :class:`Denial` with a reason code from :data:`DENIAL_CODES`.
Denials are data, not exceptions, because a refused order is a normal outcome the audit trail
records and ``ruleengine explain`` shows, not a failure.

The chain, in order (a denial stops it)::

    validity (every order)   instrument known, whole lots, a usable price, the tick grid,
                             a client id never used before (idempotency)
    fat finger (entries)     max lots, max qty, max order value, premium at risk,
                             price band vs LTP, exchange price band, max slices,
                             duplicate order, self-trade, max open orders
    exits                    pulled inside the exchange band; our crossed resting orders
                             reported, never refused
    every order              sliced above the freeze quantity (deterministic child ids)

Everything here is pure and reads no clock: time is ``ctx.now``, the event time.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Collection, Container, Iterable, Mapping, Reversible, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, Protocol

import jsonschema
from referencing import Registry, Resource

from .contracts import OrderRequest
from .errors import ConfigError
from .events import Contract, Quote
from .functions import parse_duration
from .instruments import Instrument
from .schema import apply_defaults, load_schema
from .tradingstate import ScopeState, allows, effective, scope_chain

if TYPE_CHECKING:
    from .policyset import PolicySet
    from .state import EngineState


__all__ = [
    "DENIAL_CODES",
    "Band",
    "Check",
    "CheckConfig",
    "CheckContext",
    "CheckResult",
    "Confirm",
    "Denial",
    "ExchangeBands",
    "Limits",
    "Sent",
    "SentOrder",
    "check_all",
    "check_order",
    "context_for",
    "derived_client_id",
    "gateway",
    "order_limits",
    "review_groups",
    "review_reason",
    "slice_order",
    "validated_policy",
]


def gateway(order: OrderRequest, scopes: dict[str, ScopeState]) -> tuple[str | None, ScopeState]:
    chain = scope_chain(order.contract.underlying, order.strategy_id)
    state = effective(scopes, chain)
    if allows(state.state, reduces_risk=order.purpose != "entry"):
        return None, state
    return ("halted" if state.state.name == "HALTED" else "reduce-only"), state


def order_limits(order: OrderRequest, inst: Instrument | None,
                 limits: Mapping[str, Mapping[str, int]], day: date) -> str | None:
    if order.purpose != "entry":
        return None
    if inst is None:
        return "unknown-instrument"
    lot = inst.lot_size(day)
    if order.qty <= 0 or order.qty % lot:
        return "not-lot-multiple"
    lim = limits.get(order.contract.underlying, {})
    if "max_lots" in lim and order.qty // lot > lim["max_lots"]:
        return "max-lots"
    if "max_qty" in lim and order.qty > lim["max_qty"]:
        return "max-qty"
    return None


# -- reason codes -----------------------------------------------------------------------------

#: Every reason code a check can give, with a one-line summary (a test keeps them in step).
DENIAL_CODES: dict[str, str] = {
    "halted": "the order's scope is halted; nothing new may be sent",
    "reduce-only": "the order's scope is reduce-only; only exits may be sent",
    "unknown-instrument": "no instruments policy entry for the order's underlying",
    "not-tradable": "the contract is an index, which cannot be traded",
    "bad-quantity": "the quantity is zero or negative",
    "not-lot-multiple": "the quantity is not a whole number of lots",
    "no-limit-price": "a LIMIT order without a positive limit price",
    "off-tick": "the limit price is not on the tick grid (policy says reject)",
    "duplicate-client-id": "the client id was used before; a repeat is never a second order",
    "max-lots": "more lots than the per-order ceiling",
    "max-qty": "more units than the per-order ceiling",
    "max-value": "premium or notional above the per-order ceiling",
    "max-premium-at-risk": "open option-buying entries would pay more premium than allowed",
    "no-price": "no last traded price to check the order against",
    "price-band": "the limit is too far from the last traded price",
    "exchange-band": "the limit is outside the exchange's limit price protection band",
    "too-many-slices": "the quantity needs more freeze-sized child orders than allowed",
    "duplicate-order": "same strategy, contract, side and quantity as a recent order",
    "self-trade": "the order would trade against our own resting opposite order",
    "max-open-orders": "too many orders already working at the broker",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Denial:
    """Why an order may not go: a code from :data:`DENIAL_CODES`, a sentence for a person, and
    the values the check compared (for the decision record)."""

    code: str
    message: str
    values: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.values}


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """The outcome of :func:`check_order`.

    ``orders`` is what may be sent, in order: the request itself, a copy with its price
    adjusted (tick rounding, an exit pulled inside the exchange band), or its freeze-sized
    slices; empty when ``denial`` is set. ``review`` says why a person must confirm the entry
    first (None when not needed); ``crosses`` names our resting orders an approved exit would
    trade against (cancel them first); ``notes`` lists every adjustment made.
    """

    request: OrderRequest
    orders: tuple[OrderRequest, ...] = ()
    denial: Denial | None = None
    review: str | None = None
    crosses: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def approved(self) -> bool:
        return self.denial is None

    @property
    def code(self) -> str | None:
        return self.denial.code if self.denial is not None else None


# -- configuration ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class Band:
    """Half-width of an exchange limit-price-protection band: absolute INR up to the
    threshold, percent of the reference above it. Shared by the pre-trade checks and the
    paper broker, so both apply the exchange rule the same way."""

    reference_threshold: float
    absolute: float
    percent: float

    def limits(self, reference: float) -> tuple[float, float]:
        half = (self.absolute if reference <= self.reference_threshold
                else reference * self.percent / 100.0)
        return reference - half, reference + half


@dataclass(frozen=True, slots=True, kw_only=True)
class ExchangeBands:
    effective_from: date
    underlyings: tuple[str, ...]
    option: Band
    future: Band


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Per-order ceilings for one underlying; None means no ceiling of that kind."""

    max_lots: int | None = None
    max_qty: int | None = None
    max_option_value: float | None = None
    max_future_value: float | None = None
    max_premium_at_risk: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Confirm:
    """Review thresholds (0 = off) and how long a held order waits for a person."""

    lots: int = 0
    option_value: float = 0.0
    future_value: float = 0.0
    expire_after_s: float = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckConfig:
    """The ``order_checks`` policy, typed, with the instruments and risk ceilings it needs.

    Build it with :meth:`from_policy_set` (or :meth:`from_policy` in tests) so the schema's
    defaults stay the single source of every number.
    """

    instruments: Mapping[str, Instrument]
    limits: Mapping[str, Limits]
    default_limits: Limits
    max_slices: int = 10
    band_pct: float = 5.0
    band_min_ticks: int = 20
    exchange_bands: tuple[ExchangeBands, ...] = ()
    tick_mode: Literal["round", "reject"] = "round"
    duplicate_window_s: float = 5.0
    self_trade: bool = True
    max_open_orders: int = 20
    confirm: Confirm = field(default_factory=Confirm)
    _bands_cache: dict[tuple[str, date], ExchangeBands | None] = field(
        default_factory=dict, compare=False, repr=False)
    _sizes_cache: dict[tuple[str, date], tuple[int, int]] = field(
        default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_policy(cls, data: Mapping[str, Any], *, instruments: Mapping[str, Instrument],
                    order_limits: Mapping[str, Mapping[str, int]] | None = None) -> CheckConfig:
        """From an ``order_checks`` document (missing keys take the schema defaults) and the
        risk policy's ``order_limits``; lots and quantity take the stricter of the two."""
        d = validated_policy("order_checks", data)
        risk = order_limits or {}
        default = Limits(max_option_value=float(d["max_option_value"]),
                         max_future_value=float(d["max_future_value"]),
                         max_premium_at_risk=float(d["max_premium_at_risk"]))
        limits: dict[str, Limits] = {}
        for sym in sorted({*d["limits"], *risk}):
            own = d["limits"].get(sym, {})
            r = risk.get(sym, {})
            limits[sym] = Limits(
                max_lots=_stricter(own.get("max_lots"), r.get("max_lots")),
                max_qty=_stricter(own.get("max_qty"), r.get("max_qty")),
                max_option_value=_first(own.get("max_option_value"), default.max_option_value),
                max_future_value=_first(own.get("max_future_value"), default.max_future_value),
                max_premium_at_risk=_first(own.get("max_premium_at_risk"),
                                           default.max_premium_at_risk))
        bands = tuple(sorted(
            (ExchangeBands(effective_from=date.fromisoformat(str(b["effective_from"])),
                           underlyings=tuple(b["underlyings"]),
                           option=Band(**{k: float(b["option"][k]) for k in _BAND_KEYS}),
                           future=Band(**{k: float(b["future"][k]) for k in _BAND_KEYS}))
             for b in d["exchange_bands"]), key=lambda b: b.effective_from))
        c = d["confirm"]
        return cls(instruments=instruments, limits=limits, default_limits=default,
                   max_slices=int(d["max_slices"]), band_pct=float(d["price_band"]["pct"]),
                   band_min_ticks=int(d["price_band"]["min_ticks"]), exchange_bands=bands,
                   tick_mode=d["tick"], duplicate_window_s=parse_duration(d["duplicate_window"]),
                   self_trade=bool(d["self_trade"]), max_open_orders=int(d["max_open_orders"]),
                   confirm=Confirm(lots=int(c["lots"]), option_value=float(c["option_value"]),
                                   future_value=float(c["future_value"]),
                                   expire_after_s=parse_duration(c["expire_after"])))

    @classmethod
    def from_policy_set(cls, pset: PolicySet) -> CheckConfig:
        """The first ``order_checks`` document of a set (or the defaults), its instruments and
        its risk ``order_limits``."""
        docs = pset.of_kind("order_checks")
        data = {k: v for k, v in (docs[0] if docs else {}).items()
                if k not in ("kind", "version")}
        return cls.from_policy(data, instruments=pset.instruments,
                               order_limits=pset.order_limits)

    def sizes(self, inst: Instrument, day: date) -> tuple[int, int]:
        """(lot size, most units one order may carry: whole lots within the freeze) on
        ``day``; looked up once per instrument and day, as checks run on every order."""
        key = (inst.symbol, day)
        hit = self._sizes_cache.get(key)
        if hit is None:
            lot = inst.lot_size(day)
            hit = self._sizes_cache[key] = (lot, max(inst.max_lots_per_order(day), 1) * lot)
        return hit

    def limits_for(self, underlying: str) -> Limits:
        return self.limits.get(underlying, self.default_limits)

    def bands_for(self, underlying: str, day: date) -> ExchangeBands | None:
        """The exchange bands in force: newest by date, a specific entry beating a general one."""
        key = (underlying, day)
        try:
            return self._bands_cache[key]
        except KeyError:
            pass
        live = [b for b in self.exchange_bands if b.effective_from <= day]
        specific = [b for b in live if underlying in b.underlyings]
        pool = specific or [b for b in live if not b.underlyings]
        found = self._bands_cache[key] = pool[-1] if pool else None
        return found


_BAND_KEYS = ("reference_threshold", "absolute", "percent")


def _stricter(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


def _first(a: Any, fallback: float | None) -> float | None:
    return fallback if a is None else float(a)


@cache
def _validator(kind: str) -> jsonschema.protocols.Validator:
    registry: Registry[Any] = Registry().with_resource(
        "common.schema.json", Resource.from_contents(load_schema("common")))
    schema = load_schema(kind)
    return jsonschema.validators.validator_for(schema)(schema, registry=registry)


def validated_policy(kind: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """A policy mapping checked against its kind's schema, with every default filled in.

    Code that builds a config from a hand-written mapping (tests, ad-hoc runs) would otherwise
    silently ignore a mistyped key and run with a default nobody chose.
    """
    doc = {"kind": kind, "version": 1, **data}
    problems = sorted(e.message for e in _validator(kind).iter_errors(doc))
    if problems:
        raise ConfigError(f"{kind} policy: " + "; ".join(problems))
    return apply_defaults(doc, kind)


# -- context ----------------------------------------------------------------------------------

class SentOrder(Protocol):
    """An order we sent and when (the engine's ``OrderTrack`` has this shape)."""

    @property
    def request(self) -> OrderRequest: ...

    @property
    def sent_ts(self) -> datetime: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Sent:
    """A plain :class:`SentOrder`, for callers without an order track of their own."""

    request: OrderRequest
    sent_ts: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckContext:
    """What the checks read, all as of ``now`` (event time; its date is the trading date).

    ``open_orders``: our orders working at the broker. ``recent``: orders sent, oldest first
    (only the tail inside the duplicate window is read, newest first). ``client_ids``: every
    client id used so far. Collections are read, never copied, so the engine can pass its own
    dictionaries' views and a check stays O(orders in the window).
    """

    config: CheckConfig
    now: datetime
    quotes: Mapping[Contract, Quote]
    open_orders: Collection[SentOrder] = ()
    recent: Reversible[SentOrder] = ()
    client_ids: Container[str] = frozenset()


def context_for(state: EngineState, config: CheckConfig, now: datetime) -> CheckContext:
    """The context for an order the engine is about to submit, from its own state: quotes,
    live orders, every order sent (in send order) and their client ids. Nothing is copied."""
    return CheckContext(config=config, now=now, quotes=state.market.quotes,
                        open_orders=state.live.values(), recent=state.orders.values(),
                        client_ids=state.orders)


# -- the chain --------------------------------------------------------------------------------

@dataclass(slots=True)
class _Facts:
    """What several checks need, worked out once per order."""

    order: OrderRequest
    inst: Instrument
    day: date
    lot: int
    per_child: int  # the most one child order may carry: whole lots within the freeze
    quote: Quote | None
    price: float | None  # the limit after rounding; None for MARKET
    notes: list[str]

    @property
    def ref(self) -> float | None:
        return _reference(self.quote)

    @property
    def exec_price(self) -> float | None:
        """The price the order would trade at, for value checks: its limit, or the touch."""
        if self.price is not None:
            return self.price
        q = self.quote
        if q is None:
            return None
        touch = q.ask if self.order.side == "BUY" else q.bid
        return touch if touch is not None and touch > 0 else self.ref


#: One link of the chain: a denial, or None to pass the order on (it may adjust ``_Facts``).
Check = Callable[[_Facts, CheckContext], Denial | None]


def check_order(order: OrderRequest, ctx: CheckContext) -> CheckResult:
    """Run every check on one order; see the module docstring for the chain.

    Never raises for a bad order: whatever is wrong comes back as a denial with a code.
    """
    cfg = ctx.config
    inst = cfg.instruments.get(order.contract.underlying)
    if inst is None:
        return _deny(order, "unknown-instrument",
                     f"no instrument {order.contract.underlying!r} in the instruments policy")
    day = ctx.now.date()
    lot, per_child = cfg.sizes(inst, day)
    facts = _Facts(order=order, inst=inst, day=day, lot=lot, per_child=per_child,
                   quote=ctx.quotes.get(order.contract), price=order.limit_price, notes=[])
    for check in _VALIDITY:
        denial = check(facts, ctx)
        if denial is not None:
            return CheckResult(request=order, denial=denial)
    entry = order.purpose == "entry"
    crosses: tuple[str, ...] = ()
    if entry:
        for check in _FAT_FINGER:
            denial = check(facts, ctx)
            if denial is not None:
                return CheckResult(request=order, denial=denial)
    else:
        _clamp_exit(facts, cfg)
        crosses = _crossed(facts, ctx)
    same = facts.price == order.limit_price or order.order_type == "MARKET"
    approved = order if same else replace(order, limit_price=facts.price)
    children = slice_order(approved, per_child, lot)
    if len(children) > 1:
        facts.notes.append(f"sliced into {len(children)} orders of at most "
                           f"{children[0].qty} (freeze {inst.freeze(day)})")
    review = review_reason(order, facts.exec_price, facts.lot, cfg) if entry else None
    return CheckResult(request=order, orders=children, review=review, crosses=crosses,
                       notes=tuple(facts.notes))


def _deny(order: OrderRequest, code: str, message: str, **values: Any) -> CheckResult:
    return CheckResult(request=order, denial=Denial(code=code, message=message, values=values))


# -- validity: every order, exits included ----------------------------------------------------

def _check_tradable(f: _Facts, ctx: CheckContext) -> Denial | None:
    if f.order.contract.kind == "IDX":
        return Denial(code="not-tradable", message=f"{f.order.contract.symbol} is an index")
    return None


def _check_lots(f: _Facts, ctx: CheckContext) -> Denial | None:
    qty = f.order.qty
    if qty <= 0:
        return Denial(code="bad-quantity", message=f"quantity {qty} must be positive",
                      values={"qty": qty})
    if qty % f.lot:
        return Denial(code="not-lot-multiple",
                      message=f"quantity {qty} is not a whole number of lots of {f.lot}",
                      values={"qty": qty, "lot": f.lot})
    return None


def _check_price(f: _Facts, ctx: CheckContext) -> Denial | None:
    if f.order.order_type == "MARKET":
        f.price = None
        return None
    price = f.price
    if price is None or not price > 0 or math.isinf(price):
        return Denial(code="no-limit-price", message=f"a LIMIT order needs a positive limit "
                      f"price, got {price}", values={"limit": price})
    return None


def _check_tick(f: _Facts, ctx: CheckContext) -> Denial | None:
    price = f.price
    if price is None:
        return None
    tick = f.inst.tick_size
    steps = price / tick
    nearest = round(steps)
    if abs(steps - nearest) < 1e-6:
        return None
    if ctx.config.tick_mode == "reject":
        return Denial(code="off-tick", message=f"limit {price} is not a multiple of the tick "
                      f"{tick}", values={"limit": price, "tick": tick})
    buy = f.order.side == "BUY"
    n = math.floor(steps) if buy else math.ceil(steps)
    n = max(n, 1)
    f.price = round(n * tick, 6)
    f.notes.append(f"limit {price} rounded to {f.price} (tick {tick}, "
                   f"{'down for a buy' if buy else 'up for a sell'})")
    return None


def _check_client_id(f: _Facts, ctx: CheckContext) -> Denial | None:
    cid = f.order.client_id
    if cid in ctx.client_ids:
        return Denial(code="duplicate-client-id", message=f"client id {cid} was already used; "
                      "it was sent once and is not sent again", values={"client_id": cid})
    return None


# -- fat-finger checks: entries only ----------------------------------------------------------

def _check_size(f: _Facts, ctx: CheckContext) -> Denial | None:
    lim = ctx.config.limits_for(f.order.contract.underlying)
    qty, lots = f.order.qty, f.order.qty // f.lot
    if lim.max_lots is not None and lots > lim.max_lots:
        return Denial(code="max-lots", message=f"{lots} lots is above the per-order ceiling of "
                      f"{lim.max_lots}", values={"lots": lots, "max_lots": lim.max_lots})
    if lim.max_qty is not None and qty > lim.max_qty:
        return Denial(code="max-qty", message=f"{qty} units is above the per-order ceiling of "
                      f"{lim.max_qty}", values={"qty": qty, "max_qty": lim.max_qty})
    return None


def _check_value(f: _Facts, ctx: CheckContext) -> Denial | None:
    price = f.exec_price
    if price is None:
        return Denial(code="no-price", message=f"no price for {f.order.contract.symbol} to "
                      "value the order against")
    lim = ctx.config.limits_for(f.order.contract.underlying)
    fut = f.order.contract.kind == "FUT"
    cap = lim.max_future_value if fut else lim.max_option_value
    value = f.order.qty * price
    if cap is not None and value > cap:
        what = "notional" if fut else "premium"
        return Denial(code="max-value", message=f"{what} {value:,.0f} INR is above the "
                      f"per-order ceiling of {cap:,.0f}", values={"value": round(value, 2),
                                                                  "max_value": cap})
    if fut or f.order.side != "BUY" or lim.max_premium_at_risk is None:
        return None
    underlying = f.order.contract.underlying
    working = 0.0
    for o in ctx.open_orders:
        r = o.request
        if r.purpose == "entry" and r.side == "BUY" and r.contract.kind == "OPT" \
                and r.contract.underlying == underlying:
            working += r.qty * (r.limit_price or price)
    if working + value > lim.max_premium_at_risk:
        return Denial(code="max-premium-at-risk", message=f"open option buys on {underlying} "
                      f"would pay {working + value:,.0f} INR of premium, above "
                      f"{lim.max_premium_at_risk:,.0f}",
                      values={"premium": round(working + value, 2),
                              "max_premium_at_risk": lim.max_premium_at_risk})
    return None


def _check_band(f: _Facts, ctx: CheckContext) -> Denial | None:
    ref = f.ref
    if ref is None:
        return Denial(code="no-price", message=f"no last traded price for "
                      f"{f.order.contract.symbol}; an entry is not sent blind")
    price = f.price
    if price is None:
        return None
    cfg = ctx.config
    half = max(ref * cfg.band_pct / 100.0, cfg.band_min_ticks * f.inst.tick_size)
    if abs(price - ref) > half + 1e-9:
        return Denial(code="price-band", message=f"limit {price} is {abs(price - ref) / ref:.0%}"
                      f" from the last traded price {ref}; the band is +/-{half:.2f}",
                      values={"limit": price, "ltp": ref, "band": round(half, 4)})
    band = _exchange_band(f, cfg)
    if band is not None:
        low, high = band
        if (f.order.side == "BUY" and price > high + 1e-9) or \
                (f.order.side == "SELL" and price < low - 1e-9):
            return Denial(code="exchange-band", message=f"limit {price} is outside the "
                          f"exchange's price protection band {low:.2f}-{high:.2f}",
                          values={"limit": price, "low": round(low, 4), "high": round(high, 4)})
    return None


def _check_slices(f: _Facts, ctx: CheckContext) -> Denial | None:
    per_child = f.per_child
    n = -(-f.order.qty // per_child)
    if n > ctx.config.max_slices:
        return Denial(code="too-many-slices", message=f"{f.order.qty} units needs {n} orders "
                      f"of at most {per_child}; the ceiling is {ctx.config.max_slices}",
                      values={"slices": n, "max_slices": ctx.config.max_slices})
    return None


def _check_duplicate(f: _Facts, ctx: CheckContext) -> Denial | None:
    window = ctx.config.duplicate_window_s
    if window <= 0:
        return None
    o = f.order
    since = ctx.now - timedelta(seconds=window)
    for sent in reversed(ctx.recent):
        if sent.sent_ts < since:
            break
        r = sent.request
        if r.strategy_id == o.strategy_id and r.contract == o.contract and r.side == o.side \
                and r.qty == o.qty:
            return Denial(code="duplicate-order", message=f"same as {r.client_id} sent at "
                          f"{sent.sent_ts:%H:%M:%S} ({o.strategy_id} {o.side} {o.qty} "
                          f"{o.contract.symbol}); window {window:g}s",
                          values={"previous": r.client_id, "window_s": window})
    return None


def _check_self_trade(f: _Facts, ctx: CheckContext) -> Denial | None:
    if not ctx.config.self_trade:
        return None
    crossed = _crossed(f, ctx)
    if crossed:
        return Denial(code="self-trade", message=f"{f.order.side} {f.order.contract.symbol} at "
                      f"{f.price} would trade against our resting {', '.join(crossed)}",
                      values={"crosses": list(crossed)})
    return None


def _check_open_orders(f: _Facts, ctx: CheckContext) -> Denial | None:
    cap = ctx.config.max_open_orders
    n = len(ctx.open_orders)
    if n >= cap:
        return Denial(code="max-open-orders", message=f"{n} orders already working; the "
                      f"ceiling is {cap}", values={"open_orders": n, "max_open_orders": cap})
    return None


_VALIDITY: tuple[Check, ...] = (_check_tradable, _check_lots, _check_price, _check_tick,
                                _check_client_id)
_FAT_FINGER: tuple[Check, ...] = (_check_size, _check_value, _check_band, _check_slices,
                                  _check_duplicate, _check_self_trade, _check_open_orders)


# -- exits, slicing, review -------------------------------------------------------------------

def _exchange_band(f: _Facts, cfg: CheckConfig) -> tuple[float, float] | None:
    ref = f.ref
    entry = cfg.bands_for(f.order.contract.underlying, f.day)
    if ref is None or entry is None:
        return None
    return (entry.future if f.order.contract.kind == "FUT" else entry.option).limits(ref)


def _clamp_exit(f: _Facts, cfg: CheckConfig) -> None:
    """Pull an exit's limit inside the exchange band: the exchange would reject it outside,
    and an exit that is rejected leaves the position open."""
    price = f.price
    band = _exchange_band(f, cfg) if price is not None else None
    if band is None or price is None:
        return
    tick = f.inst.tick_size
    low, high = band
    if f.order.side == "BUY" and price > high + 1e-9:
        f.price = round(max(math.floor(high / tick + 1e-9), 1) * tick, 6)
    elif f.order.side == "SELL" and price < low - 1e-9:
        f.price = round(max(math.ceil(low / tick - 1e-9), 1) * tick, 6)
    else:
        return
    f.notes.append(f"exit limit {price} pulled inside the exchange band to {f.price}")


def _crossed(f: _Facts, ctx: CheckContext) -> tuple[str, ...]:
    """Client ids of our resting opposite orders in the same contract this order would hit."""
    o = f.order
    out: list[str] = []
    for sent in ctx.open_orders:
        r = sent.request
        if r.side == o.side or r.contract != o.contract:
            continue
        mine, theirs = f.price, r.limit_price
        if mine is None or theirs is None or \
                (mine >= theirs - 1e-9 if o.side == "BUY" else mine <= theirs + 1e-9):
            out.append(r.client_id)
    return tuple(out)


def derived_client_id(parent: str, marker: str, n: int) -> str:
    """A deterministic child tag of ``parent``: ``<parent><marker><n>`` when that fits Kite's
    20-character tag, else a hash of the three (so children of long ids stay unique)."""
    suffix = f"{marker}{n}"
    if len(parent) + len(suffix) <= 20:
        return parent + suffix
    digest = hashlib.sha1(f"{parent}|{marker}|{n}".encode()).hexdigest()
    return "re" + digest[:18 - len(suffix)] + suffix


def slice_order(order: OrderRequest, max_qty: int, lot: int) -> tuple[OrderRequest, ...]:
    """Freeze-sized children (``s1``, ``s2``, ... client ids) of an order above ``max_qty``:
    full children first, the remainder last; the order itself when it fits."""
    step = max(max_qty - max_qty % lot, lot) if lot > 0 else max_qty
    if order.qty <= step:
        return (order,)
    out: list[OrderRequest] = []
    left, n = order.qty, 0
    while left > 0:
        n += 1
        qty = min(step, left)
        out.append(replace(order, client_id=derived_client_id(order.client_id, "s", n), qty=qty))
        left -= qty
    return tuple(out)


def review_reason(order: OrderRequest, price: float | None, lot: int,
                  cfg: CheckConfig) -> str | None:
    """Why an entry must wait for a person (lots or value at/above ``confirm``), or None."""
    if order.purpose != "entry":
        return None
    c = cfg.confirm
    lots = order.qty // lot if lot > 0 else 0
    if c.lots and lots >= c.lots:
        return f"{lots} lots >= {c.lots} (confirm.lots)"
    if price is None:
        return None
    value = order.qty * price
    fut = order.contract.kind == "FUT"
    cap = c.future_value if fut else c.option_value
    if cap and value >= cap:
        what = "future_value" if fut else "option_value"
        return f"value {value:,.0f} INR >= {cap:,.0f} (confirm.{what})"
    return None


def review_groups(orders: Iterable[OrderRequest], cfg: CheckConfig,
                  quotes: Mapping[Contract, Quote] | None = None,
                  day: date | None = None) -> list[tuple[str, tuple[OrderRequest, ...]]]:
    """Entries submitted together that need a person, grouped as the order they were sliced
    from (same strategy, leg, contract and side): (reason, orders) per group.

    Slices of one order are smaller than the order, so the threshold is applied to the group;
    the engine sends one order per leg per tick, so a group is exactly one original order.
    """
    groups: dict[tuple[str, str, Contract, str], list[OrderRequest]] = {}
    for o in orders:
        if o.purpose == "entry":
            groups.setdefault((o.strategy_id, o.leg_id, o.contract, o.side), []).append(o)
    out: list[tuple[str, tuple[OrderRequest, ...]]] = []
    for (_s, _l, contract, _side), members in groups.items():
        inst = cfg.instruments.get(contract.underlying)
        lot = inst.lot_size(day) if inst is not None and day is not None else \
            (inst.lot_sizes.latest if inst is not None else 1)
        total = replace(members[0], qty=sum(m.qty for m in members))
        price = members[0].limit_price
        if price is None and quotes is not None:
            price = _reference(quotes.get(contract))
        reason = review_reason(total, price, lot, cfg)
        if reason is not None:
            out.append((reason, tuple(members)))
    return out


def _reference(q: Quote | None) -> float | None:
    """The last traded price; without a trade yet, the mid (or the only side)."""
    if q is None:
        return None
    if q.ltp > 0:
        return q.ltp
    sides = [p for p in (q.bid, q.ask) if p is not None and p > 0]
    return sum(sides) / len(sides) if sides else None


def check_all(orders: Sequence[OrderRequest], ctx: CheckContext) -> list[CheckResult]:
    """:func:`check_order` for each order in turn (a convenience for tests and benchmarks; the
    engine checks one order at a time so each sees the ones approved before it)."""
    return [check_order(o, ctx) for o in orders]
