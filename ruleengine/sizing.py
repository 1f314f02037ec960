"""Stage 6 — sizing: turn an entry signal into concrete order requests.

Size is the smallest of three caps: the strategy's ``max_units``; what keeps the loss at the
stop within the per-trade risk (1% of capital by default); and the premium outlay the strategy's
capital weight allows. A strategy that cannot afford one unit does not trade, and says why.
Legs resolve to contracts relative to ATM at the moment of the signal, and every order is a
marketable limit inside the protection band, never a bare market order.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from .contracts import OrderRequest, Purpose
from .events import Contract, Quote, Side
from .instruments import Instrument
from .market import MarketState, UnderlyingState
from .policyset import Leg, PolicySet, Strategy


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionParams:
    protection_pct: float = 2.0
    future_protection_pct: float = 0.1
    protection_min_ticks: int = 2
    square_off_retry_s: float = 10.0
    entry_timeout_s: float = 30.0


def client_id(strategy_id: str, ts: datetime, leg_id: str, attempt: int) -> str:
    """Deterministic and <= 20 characters, so it can be the broker tag (Kite's limit)."""
    raw = f"{strategy_id}|{ts.isoformat()}|{leg_id}|{attempt}"
    return "re" + hashlib.sha1(raw.encode()).hexdigest()[:14]


def marketable_limit(side: Side, quote: Quote, tick: float, ex: ExecutionParams) -> float:
    """Cross the spread by the protection band: fills like a market order, but bounded."""
    contract = quote.contract
    touch = quote.ask if side == "BUY" else quote.bid
    if touch is None or touch <= 0:
        touch = quote.ltp
    pct = ex.future_protection_pct if contract.kind == "FUT" else ex.protection_pct
    band = max(touch * pct / 100.0, ex.protection_min_ticks * tick)
    if side == "BUY":
        return round(math.ceil((touch + band) / tick - 1e-9) * tick, 2)
    return round(max(math.floor((touch - band) / tick + 1e-9) * tick, tick), 2)


def resolve_contract(leg: Leg, u: UnderlyingState, inst: Instrument, market: MarketState,
                     today: date) -> Contract | None:
    if leg.instrument == "future":
        return u.fut.contract if u.fut is not None else None
    if u.spot is None:
        return None
    expiries = [e for e in u.expiries if e >= today]
    if not expiries:
        return None
    expiry = expiries[0]
    if leg.expiry == "monthly":
        same_month = [e for e in expiries if (e.year, e.month) == (expiry.year, expiry.month)]
        expiry = same_month[-1]
    atm = round(u.spot / inst.strike_step) * inst.strike_step
    strike = atm + leg.strike_offset * inst.strike_step
    contract = Contract(underlying=u.symbol, kind="OPT", expiry=expiry, strike=float(strike),
                        option_type=leg.option_type)  # type: ignore[arg-type]
    # The quote book's own object when it has one: the position is then looked up by identity
    # every tick rather than compared field by field. Equal is not enough (24000 == 24000.0):
    # it is taken only with the same field types, so what is recorded stays exactly as built.
    quote = market.quotes.get(contract)
    if quote is not None and type(quote.contract.strike) is float and \
            type(quote.contract.expiry) is type(expiry):
        return quote.contract
    return contract


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryPlan:
    orders: tuple[OrderRequest, ...]
    units: int
    risk_per_unit: float | None
    detail: dict[str, Any]


def plan_entry(spec: Strategy, policy: PolicySet, market: MarketState, now: datetime,
               capital: float, ex: ExecutionParams) -> EntryPlan | str:
    """Orders for one entry, hedges (BUY legs) first; or a reason code when none can be sized."""
    inst = policy.instruments.get(spec.underlying)
    if inst is None:
        return "unknown-instrument"
    u = market.underlyings.get(spec.underlying)
    if u is None or u.spot is None:
        return "no-price"
    lot = inst.lot_size(now.date())
    legs: list[tuple[Leg, Contract, Quote]] = []
    for leg in spec.legs:
        contract = resolve_contract(leg, u, inst, market, now.date())
        quote = market.quotes.get(contract) if contract is not None else None
        if contract is None or quote is None:
            return "no-quote"
        limit = market.params.stale_s("futures" if contract.kind == "FUT" else "options", now)
        if (now - quote.ts).total_seconds() > limit:
            return "stale-quote"
        if quote.bid is None or quote.ask is None or quote.bid <= 0 or quote.ask <= quote.bid:
            return "invalid-quote"  # a missing strike side, a zero or crossed quote
        legs.append((leg, contract, quote))
    risk_unit, outlay_unit = _risk_per_unit(spec, legs, lot)
    strategy_capital = capital * spec.capital_weight
    units = spec.max_units
    if spec.sizing_mode == "risk":
        if risk_unit is not None and risk_unit > 0:
            units = min(units, math.floor(capital * policy.per_trade_risk_pct / 100 / risk_unit))
        if outlay_unit > 0:
            units = min(units, math.floor(strategy_capital / outlay_unit))
    if units < 1:
        return "size-below-one-unit"
    ordered = sorted(legs, key=lambda item: item[0].side != "BUY")  # hedges first
    orders = tuple(
        OrderRequest(client_id=client_id(spec.id, now, leg.id, 0), contract=contract,
                     side=leg.side, qty=leg.lots * lot * units,  # type: ignore[arg-type]
                     order_type="LIMIT",
                     limit_price=marketable_limit(leg.side, quote,  # type: ignore[arg-type]
                                                  inst.tick_size, ex),
                     purpose="entry", strategy_id=spec.id, leg_id=leg.id)
        for leg, contract, quote in ordered)
    return EntryPlan(orders=orders, units=units, risk_per_unit=risk_unit,
                     detail={"lot": lot, "units": units, "risk_per_unit": risk_unit,
                             "outlay_per_unit": outlay_unit, "strategy_capital": strategy_capital,
                             "spot": u.spot})


def _risk_per_unit(spec: Strategy, legs: list[tuple[Leg, Contract, Quote]],
                   lot: int) -> tuple[float | None, float]:
    """Loss at the stops for one unit (None when a short leg has no stop at all), and the
    premium paid for one unit (what the capital weight must cover for bought legs)."""
    risk = 0.0
    outlay = 0.0
    unbounded = False
    for leg, _contract, quote in legs:
        qty = leg.lots * lot
        price = (quote.ask if leg.side == "BUY" else quote.bid) or quote.ltp
        if leg.side == "BUY" and leg.instrument == "option":
            outlay += price * qty  # futures are margined, not paid for; the broker checks margin
        stop = leg.stop_loss
        if stop is None:
            if leg.side == "BUY" and leg.instrument == "option":
                risk += price * qty
            elif spec.stop_loss is None:
                unbounded = True
            continue
        if stop.kind == "pct":
            risk += price * stop.value / 100.0 * qty
        elif stop.kind == "points":
            risk += stop.value * qty
        else:
            risk += stop.value
    if spec.stop_loss is not None:
        net = abs(sum(((q.ask if lg.side == "BUY" else q.bid) or q.ltp) * lg.lots * lot *
                      (1 if lg.side == "BUY" else -1) for lg, _c, q in legs))
        combined = {"pct": net * spec.stop_loss.value / 100.0,
                    "points": spec.stop_loss.value * lot,
                    "amount": spec.stop_loss.value}[spec.stop_loss.kind]
        return (combined if not any(lg.stop_loss for lg, _c, _q in legs) else
                min(risk, combined) if risk else combined), outlay
    return (None if unbounded else risk), outlay


def exit_order(position_qty: int, contract: Contract, quote: Quote, inst: Instrument,
               ex: ExecutionParams, *, strategy_id: str, leg_id: str, now: datetime,
               attempt: int, purpose: Purpose) -> OrderRequest:
    side: Side = "SELL" if position_qty > 0 else "BUY"
    return OrderRequest(client_id=client_id(strategy_id, now, leg_id, attempt), contract=contract,
                        side=side, qty=abs(position_qty), order_type="LIMIT",
                        limit_price=marketable_limit(side, quote, inst.tick_size, ex),
                        purpose=purpose, strategy_id=strategy_id, leg_id=leg_id)
