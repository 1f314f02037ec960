"""Trading charges on index options and futures, priced from the ``costs`` policy kind.

Every P&L the engine reports is after charges, and on a small option trade the charges are a
large share of the move (₹63.35 on ₹1,500 gross in the worked check of MARKET_FACTS.md), so they
are computed exactly and reproducibly:

* **Rates live in YAML as dated schedules.** Budgets and exchange circulars change STT and the
  exchange charge on known dates, so a trade is priced with the entry in force on its trade
  date (``effective_from <= trade_date < next effective_from``), never with constants in code.
  A trade dated before the first entry, or on an exchange with no configured rates (BSE today),
  raises :class:`CostError` rather than being priced with a guess.
* **Decimal inside, floats out.** Turnover and every component are computed in
  :class:`~decimal.Decimal` from the decimal text of the price (``Decimal(str(price))``), then
  rounded with the policy's rounding. Binary floats cannot do half-up rounding to the paisa
  reliably (``round(2.675, 2) == 2.67`` because 2.675 is stored as 2.67499...), and a total that
  is off by a paisa from the contract note makes reconciliation noisy. The results are returned
  as floats because the rest of the engine works in floats; a paisa-rounded Decimal converts to
  the float whose shortest text is the same amount, so nothing is lost.
* **Rounding per component, on the contract note.** Brokers compute each component on the whole
  contract note (all fills of one segment on one day) and round each one on its own to the
  paisa; GST is then taken on the rounded components it applies to, and the total is the sum of
  the rounded components, so the numbers add up exactly as printed. :func:`charges_for_fills`
  prices one contract note; :func:`charges_for_fill` is a note with one fill and
  :func:`charges_for_round_trip` a note with a buy and a sell. Rounding each fill separately
  and adding gives slightly different figures (8.25 instead of 8.24 GST in the worked check),
  which is why the aggregation is explicit.
* **GST base: brokerage + exchange transaction charge + SEBI fee, without IPFT** (the policy's
  ``gst.on``). MARKET_FACTS.md states that base, and its worked check only comes out with it:
  18% of (40 + 5.78 + 0.02) = 8.244 → 8.24, whereas adding IPFT 0.08 gives 8.2584 → 8.26.

All functions are pure: same model and arguments, same result, no clock and no I/O.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from itertools import pairwise
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, get_args

from .errors import RuleEngineError
from .schema import apply_defaults

if TYPE_CHECKING:
    from .policyset import PolicySet

InstrumentType = Literal["option", "future"]
Side = Literal["BUY", "SELL"]
Exchange = Literal["NSE", "BSE"]

_CRORE = Decimal(10_000_000)
_HUNDRED = Decimal(100)
_ZERO = Decimal(0)
_METHODS = {"half_up": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN}


class CostError(RuleEngineError, ValueError):
    """A trade cannot be priced: no schedule in force, an exchange without rates, bad input."""


def _dec(value: Any) -> Decimal:
    """The decimal written in YAML or passed by a caller, not the binary float's expansion."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CostError(f"expected a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise CostError(f"expected a finite number, got {value!r}")
    return Decimal(str(value))


def _opt(value: Any) -> Decimal | None:
    """An optional rate: the schema's ``default: null`` means "not applicable" and is not filled."""
    return None if value is None else _dec(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExchangeRates:
    """One exchange's charges: transaction charge in percent, IPFT in INR per crore."""

    txn_pct: Decimal
    ipft_per_crore: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class Rates:
    """Every rate of one schedule entry; percentages in percent, fees in INR per crore."""

    effective_from: date
    brokerage_per_order: Decimal
    brokerage_pct: Decimal | None
    stt_sell_pct: Decimal
    stt_buy_pct: Decimal
    stt_exercise_pct: Decimal | None
    exchanges: Mapping[str, ExchangeRates]
    sebi_per_crore: Decimal
    stamp_buy_pct: Decimal
    gst_pct: Decimal
    gst_on: tuple[str, ...]
    note: str = ""

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> Rates:
        """One defaulted schedule entry of a ``costs`` document."""
        brokerage, stt, gst = entry["brokerage"], entry["stt"], entry["gst"]
        exchanges = {name: ExchangeRates(txn_pct=_dec(ex["txn_pct"]),
                                         ipft_per_crore=_dec(ex["ipft_per_crore"]))
                     for name, ex in entry["exchanges"].items() if ex is not None}
        return cls(
            effective_from=date.fromisoformat(entry["effective_from"]),
            brokerage_per_order=_dec(brokerage["per_order"]),
            brokerage_pct=_opt(brokerage.get("pct")),
            stt_sell_pct=_dec(stt["sell_pct"]), stt_buy_pct=_dec(stt["buy_pct"]),
            stt_exercise_pct=_opt(stt.get("exercise_pct")),
            exchanges=MappingProxyType(exchanges),
            sebi_per_crore=_dec(entry["sebi_per_crore"]),
            stamp_buy_pct=_dec(entry["stamp_buy_pct"]),
            gst_pct=_dec(gst["pct"]), gst_on=tuple(gst["on"]), note=entry["note"])

    def exchange(self, name: str) -> ExchangeRates:
        """The rates of one exchange, or :class:`CostError` if this entry has none for it."""
        try:
            return self.exchanges[name]
        except KeyError:
            have = ", ".join(sorted(self.exchanges)) or "none"
            raise CostError(f"no {name} charges in the costs schedule from "
                            f"{self.effective_from} (configured: {have}); add them to the "
                            "costs policy once the rates are confirmed") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class Fill:
    """One side of a trade: ``orders`` executed orders of the same side and price.

    ``orders`` matters because brokerage is charged per executed order: an order sliced above
    the freeze quantity into three pays three times.
    """

    side: Side
    qty: int
    price: float
    orders: int = 1

    def __post_init__(self) -> None:
        if self.side not in get_args(Side):
            raise CostError(f"side must be BUY or SELL, got {self.side!r}")
        if isinstance(self.qty, bool) or not isinstance(self.qty, int) or self.qty < 1:
            raise CostError(f"qty must be a whole number of units >= 1, got {self.qty!r}")
        if isinstance(self.orders, bool) or not isinstance(self.orders, int) or self.orders < 1:
            raise CostError(f"orders must be a whole number >= 1, got {self.orders!r}")
        if _dec(self.price) < 0:
            raise CostError(f"price must not be negative, got {self.price!r}")

    @property
    def value(self) -> Decimal:
        """Turnover of this fill: price x quantity (premium for options)."""
        return _dec(self.price) * self.qty


@dataclass(frozen=True, slots=True, kw_only=True)
class Charges:
    """Charges in INR, each component rounded as the policy says; ``total`` is their sum."""

    brokerage: float = 0.0
    stt: float = 0.0
    exchange_txn: float = 0.0
    ipft: float = 0.0
    sebi: float = 0.0
    stamp: float = 0.0
    gst: float = 0.0
    total: float = 0.0

    def __add__(self, other: Charges) -> Charges:
        """Charges of two contract notes together, added exactly (no float drift in paisa)."""
        if not isinstance(other, Charges):
            return NotImplemented

        def add(a: float, b: float) -> float:
            return float(Decimal(repr(a)) + Decimal(repr(b)))

        return Charges(brokerage=add(self.brokerage, other.brokerage),
                       stt=add(self.stt, other.stt),
                       exchange_txn=add(self.exchange_txn, other.exchange_txn),
                       ipft=add(self.ipft, other.ipft), sebi=add(self.sebi, other.sebi),
                       stamp=add(self.stamp, other.stamp), gst=add(self.gst, other.gst),
                       total=add(self.total, other.total))


@dataclass(frozen=True, slots=True, kw_only=True)
class CostModel:
    """Dated charge schedules per instrument type, and how amounts are rounded."""

    schedules: Mapping[str, tuple[Rates, ...]]
    places: int = 2
    method: str = "half_up"
    _dates: Mapping[str, tuple[date, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.method not in _METHODS:
            raise CostError(f"rounding method must be one of {', '.join(_METHODS)}, "
                            f"got {self.method!r}")
        dates: dict[str, tuple[date, ...]] = {}
        for kind, entries in self.schedules.items():
            days = tuple(r.effective_from for r in entries)
            for before, after in pairwise(days):
                if after <= before:
                    raise CostError(f"{kind} charge schedule dates must increase; {after} does "
                                    f"not come after {before}")
            dates[kind] = days
        object.__setattr__(self, "_dates", MappingProxyType(dates))

    @classmethod
    def from_policy(cls, data: Mapping[str, Any]) -> CostModel:
        """Build from the data of one valid ``costs`` document (defaults are applied here too).

        The document must already have passed schema validation (loading it through
        :func:`~ruleengine.policyset.load_policy_set` does that); entries must be in date order.
        """
        doc = apply_defaults(dict(data), "costs")
        schedules = {kind: tuple(Rates.from_entry(e) for e in entries)
                     for kind, entries in doc["schedules"].items()}
        return cls(schedules=MappingProxyType(schedules), places=doc["rounding"]["places"],
                   method=doc["rounding"]["method"])

    @classmethod
    def from_policy_set(cls, pset: PolicySet) -> CostModel:
        """The model of the one ``costs`` document in a loaded policy set."""
        docs = pset.of_kind("costs")
        if len(docs) != 1:
            raise CostError(f"expected exactly one 'kind: costs' document in the policy set, "
                            f"found {len(docs)}")
        return cls.from_policy(docs[0])

    def rates_on(self, instrument_type: InstrumentType, trade_date: date) -> Rates:
        """The schedule entry in force on ``trade_date``: effective_from <= date < next."""
        entries = self.schedules.get(instrument_type)
        if not entries:
            raise CostError(f"no {instrument_type} charge schedule in the costs policy")
        i = bisect.bisect_right(self._dates[instrument_type], trade_date) - 1
        if i < 0:
            raise CostError(f"no {instrument_type} charges in force on {trade_date}: the "
                            f"schedule starts on {entries[0].effective_from}")
        return entries[i]

    def round(self, amount: Decimal) -> Decimal:
        """One component rounded to ``places`` decimals with the policy's method."""
        return amount.quantize(Decimal(1).scaleb(-self.places), rounding=_METHODS[self.method])


def _brokerage(rates: Rates, fill: Fill) -> Decimal:
    """Per executed order: flat, or min(pct% of the order's value, cap).

    With a percentage and several orders the fill's value is taken as split evenly over them,
    so the charge is min(pct% x value, cap x orders).
    """
    cap = rates.brokerage_per_order * fill.orders
    if rates.brokerage_pct is None:
        return cap
    return min(fill.value * rates.brokerage_pct / _HUNDRED, cap)


def charges_for_fills(model: CostModel, *, trade_date: date, instrument_type: InstrumentType,
                      fills: Iterable[Fill], exchange: Exchange = "NSE") -> Charges:
    """Charges of one contract note: fills of one instrument type on one exchange and day.

    Each component is computed on the note's whole turnover and rounded once (see the module
    docstring); GST is charged on the rounded components listed in the schedule's ``gst.on``.
    """
    rates = model.rates_on(instrument_type, trade_date)
    ex = rates.exchange(exchange)
    fills = tuple(fills)
    buy = sum((f.value for f in fills if f.side == "BUY"), _ZERO)
    sell = sum((f.value for f in fills if f.side == "SELL"), _ZERO)
    turnover = buy + sell
    exact: dict[str, Decimal] = {
        "brokerage": sum((_brokerage(rates, f) for f in fills), _ZERO),
        "stt": (sell * rates.stt_sell_pct + buy * rates.stt_buy_pct) / _HUNDRED,
        "exchange_txn": turnover * ex.txn_pct / _HUNDRED,
        "ipft": turnover * ex.ipft_per_crore / _CRORE,
        "sebi": turnover * rates.sebi_per_crore / _CRORE,
        "stamp": buy * rates.stamp_buy_pct / _HUNDRED,
    }
    return _assemble(model, rates, {k: model.round(v) for k, v in exact.items()})


def _assemble(model: CostModel, rates: Rates, parts: Mapping[str, Decimal]) -> Charges:
    gst = model.round(sum((parts[c] for c in rates.gst_on), _ZERO) * rates.gst_pct / _HUNDRED)
    total = sum(parts.values(), _ZERO) + gst
    return Charges(brokerage=float(parts["brokerage"]), stt=float(parts["stt"]),
                   exchange_txn=float(parts["exchange_txn"]), ipft=float(parts["ipft"]),
                   sebi=float(parts["sebi"]), stamp=float(parts["stamp"]), gst=float(gst),
                   total=float(total))


def charges_for_fill(model: CostModel, *, trade_date: date, instrument_type: InstrumentType,
                     side: Side, qty: int, price: float, orders: int = 1,
                     exchange: Exchange = "NSE") -> Charges:
    """Charges of a single fill priced as its own contract note.

    A buy pays stamp duty, a sell pays STT; both pay brokerage (per executed order), the
    exchange charge, IPFT, the SEBI fee and GST.
    """
    return charges_for_fills(model, trade_date=trade_date, instrument_type=instrument_type,
                             fills=(Fill(side=side, qty=qty, price=price, orders=orders),),
                             exchange=exchange)


def charges_for_round_trip(model: CostModel, *, trade_date: date,
                           instrument_type: InstrumentType, qty: int, buy_price: float,
                           sell_price: float, buy_orders: int = 1, sell_orders: int = 1,
                           exchange: Exchange = "NSE") -> Charges:
    """Charges of a buy and a sell of ``qty`` on the same day, on one contract note.

    That is ``buy_orders + sell_orders`` executed orders of brokerage (2 for a plain round
    trip). For a position held overnight, price each day's fills as its own note with
    :func:`charges_for_fill` (the schedule of each trade date applies) and add the results.
    """
    fills = (Fill(side="BUY", qty=qty, price=buy_price, orders=buy_orders),
             Fill(side="SELL", qty=qty, price=sell_price, orders=sell_orders))
    return charges_for_fills(model, trade_date=trade_date, instrument_type=instrument_type,
                             fills=fills, exchange=exchange)


def charges_for_exercise(model: CostModel, *, trade_date: date, qty: int,
                         intrinsic_value: float) -> Charges:
    """STT on an in-the-money option exercised at expiry.

    ``intrinsic_value`` is per unit (settlement price minus strike for a call, strike minus
    settlement for a put); the tax is ``stt.exercise_pct`` of intrinsic value x qty. Only STT
    is modelled: MARKET_FACTS.md lists no other charge on exercise.
    """
    rates = model.rates_on("option", trade_date)
    if rates.stt_exercise_pct is None:
        raise CostError(f"the option charge schedule from {rates.effective_from} has no "
                        "stt.exercise_pct")
    if isinstance(qty, bool) or not isinstance(qty, int) or qty < 1:
        raise CostError(f"qty must be a whole number of units >= 1, got {qty!r}")
    value = _dec(intrinsic_value)
    if value < 0:
        raise CostError(f"intrinsic value must not be negative, got {intrinsic_value!r}")
    parts = dict.fromkeys(("brokerage", "exchange_txn", "ipft", "sebi", "stamp"), _ZERO)
    parts["stt"] = model.round(value * qty * rates.stt_exercise_pct / _HUNDRED)
    return _assemble(model, rates, parts)
