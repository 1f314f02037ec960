"""Choosing the contract a strategy leg trades."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from ruleengine.events import ChainSnapshot, Contract, IndexTick, Quote
from ruleengine.instruments import Instrument
from ruleengine.market import MarketState
from ruleengine.policyset import Leg, load_policy_set
from ruleengine.sizing import resolve_contract

REPO = Path(__file__).resolve().parents[1]
POLICY = load_policy_set([REPO / "policies", REPO / "strategies"])
TS = datetime(2026, 11, 26, 10, 0)
EXPIRY = date(2026, 12, 1)


def _market(strike: float) -> tuple[MarketState, Contract]:
    """A market whose option chain quotes one call at ``strike`` (an int if the feed says so)."""
    market = MarketState()
    market.apply(IndexTick(ts=TS, underlying="NIFTY", value=24010.0))
    listed = Contract(underlying="NIFTY", kind="OPT", expiry=EXPIRY, strike=strike,
                      option_type="CE")
    quote = Quote(ts=TS, contract=listed, ltp=100.0, bid=99.0, ask=101.0)
    market.apply(ChainSnapshot(ts=TS, underlying="NIFTY", expiry=EXPIRY, spot=24010.0,
                               quotes=(quote,)))
    return market, listed


def _atm_call() -> tuple[Leg, Instrument]:
    strategy = next(s for s in POLICY.strategies if s.id == "short-straddle-0920")
    leg = next(leg for leg in strategy.legs if leg.option_type == "CE")
    return leg, POLICY.instruments["NIFTY"]


def test_a_leg_trades_the_quote_books_own_contract_object() -> None:
    """Open legs are marked every tick by looking their contract up in the quote book; the
    book's own object makes that an identity match rather than a field-by-field compare."""
    market, listed = _market(24000.0)
    leg, inst = _atm_call()
    chosen = resolve_contract(leg, market.underlyings["NIFTY"], inst, market, TS.date())
    assert chosen is listed


def test_an_equal_contract_of_other_field_types_is_not_substituted() -> None:
    """24000 == 24000.0, so a feed's int strike finds the same quote; the order must still
    carry the strike as built (a float), or what the audit store and review files record would
    depend on the feed."""
    market, listed = _market(24000)
    leg, inst = _atm_call()
    chosen = resolve_contract(leg, market.underlying("NIFTY"), inst, market, TS.date())
    assert chosen == listed and chosen is not listed
    assert chosen is not None and type(chosen.strike) is float
