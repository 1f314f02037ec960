"""Pre-trade checks: the fat-finger corpus, exits that must pass, slicing and the reason codes."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ruleengine.checks import (
    DENIAL_CODES,
    CheckConfig,
    CheckContext,
    CheckResult,
    Sent,
    check_order,
    context_for,
    derived_client_id,
    review_groups,
    slice_order,
    validated_policy,
)
from ruleengine.contracts import OrderRequest, Purpose
from ruleengine.errors import ConfigError
from ruleengine.events import Contract, Quote
from ruleengine.instruments import Instrument, build_instrument
from ruleengine.policyset import load_policy_set

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 3, 10, 10, 0, 0)  # lot 65, freeze 1800 -> at most 27 lots (1755) a child
EXPIRY = date(2026, 3, 17)
CE = Contract(underlying="NIFTY", kind="OPT", expiry=EXPIRY, strike=24000.0, option_type="CE")
PE = Contract(underlying="NIFTY", kind="OPT", expiry=EXPIRY, strike=24000.0, option_type="PE")
FUT = Contract(underlying="NIFTY", kind="FUT", expiry=date(2026, 3, 31))
CHEAP = Contract(underlying="NIFTY", kind="OPT", expiry=EXPIRY, strike=25500.0,
                 option_type="CE")
NIFTY = build_instrument({
    "symbol": "NIFTY", "exchange": "NSE", "segment": "NFO", "strike_step": 50,
    "tick_size": 0.05, "lot_sizes": [{"effective_from": "2024-11-20", "value": 75},
                                     {"effective_from": "2026-01-01", "value": 65}],
    "freeze_qty": [{"effective_from": "2024-11-20", "value": 1800}]})
INSTRUMENTS: dict[str, Instrument] = {"NIFTY": NIFTY}
RISK_LIMITS = {"NIFTY": {"max_lots": 10, "max_qty": 650}}
NSE_BANDS = [{"effective_from": "2022-10-28", "option": {"reference_threshold": 50,
                                                          "absolute": 20, "percent": 40},
              "future": {"reference_threshold": 10000, "absolute": 200, "percent": 2}}]
LOT = 65


def config(**over: Any) -> CheckConfig:
    data: dict[str, Any] = {"limits": {"NIFTY": {"max_lots": 4}}, "exchange_bands": NSE_BANDS}
    data.update(over)
    return CheckConfig.from_policy(data, instruments=INSTRUMENTS, order_limits=RISK_LIMITS)


def quote(contract: Contract = CE, ltp: float = 100.0, spread: float = 0.5) -> Quote:
    return Quote(ts=NOW, contract=contract, ltp=ltp, bid=ltp - spread, ask=ltp + spread,
                 bid_qty=500, ask_qty=500)


QUOTES = {CE: quote(CE), PE: quote(PE, 90.0), FUT: quote(FUT, 24100.0, 1.0),
          CHEAP: quote(CHEAP, 4.0, 0.1)}


def order(cid: str = "re0000000000000001", *, contract: Contract = CE, side: str = "BUY",
          lots: int = 1, qty: int | None = None, limit: float | None = 101.0,
          purpose: Purpose = "entry", strategy: str = "straddle") -> OrderRequest:
    return OrderRequest(client_id=cid, contract=contract, side=side,  # type: ignore[arg-type]
                        qty=qty if qty is not None else lots * LOT,
                        order_type="LIMIT" if limit is not None else "MARKET",
                        limit_price=limit, purpose=purpose, strategy_id=strategy, leg_id="ce")


def ctx(cfg: CheckConfig | None = None, *, open_orders: tuple[OrderRequest, ...] = (),
        recent: tuple[tuple[float, OrderRequest], ...] = (), ids: frozenset[str] = frozenset(),
        now: datetime = NOW) -> CheckContext:
    return CheckContext(config=cfg or config(), now=now, quotes=QUOTES,
                        open_orders=tuple(Sent(request=o, sent_ts=now) for o in open_orders),
                        recent=tuple(Sent(request=o, sent_ts=now - timedelta(seconds=age))
                                     for age, o in recent),
                        client_ids=ids)


def code(result: CheckResult) -> str | None:
    return result.code


# -- the fat-finger corpus --------------------------------------------------------------------

def test_corpus_ten_lots_instead_of_one_is_max_lots() -> None:
    assert code(check_order(order(lots=1), ctx())) is None
    result = check_order(order(lots=10), ctx())
    assert code(result) == "max-lots"
    assert result.orders == ()
    assert result.denial is not None and result.denial.values == {"lots": 10, "max_lots": 4}


def test_corpus_price_ten_times_ltp_is_outside_the_band() -> None:
    result = check_order(order(limit=1000.0), ctx())
    assert code(result) == "price-band"
    assert result.denial is not None and result.denial.values["ltp"] == 100.0


def test_corpus_quantity_not_a_lot_multiple() -> None:
    result = check_order(order(qty=100), ctx())
    assert code(result) == "not-lot-multiple"
    assert "65" in result.denial.message  # type: ignore[union-attr]


def test_corpus_quantity_above_freeze_is_sliced_not_denied() -> None:
    cfg = config(limits={"NIFTY": {"max_lots": 40, "max_qty": 2600}})
    no_risk_limits = CheckConfig.from_policy(
        {"limits": {"NIFTY": {"max_lots": 40, "max_qty": 2600}}, "exchange_bands": NSE_BANDS},
        instruments=INSTRUMENTS)
    result = check_order(order(lots=30), ctx(no_risk_limits))
    assert result.approved
    assert [o.qty for o in result.orders] == [1755, 195]  # 27 lots, then the 3 left
    assert [o.client_id for o in result.orders] == ["re0000000000000001s1",
                                                    "re0000000000000001s2"]
    assert all(o.qty % LOT == 0 and o.qty <= 1800 for o in result.orders)
    assert result.notes and "sliced into 2" in result.notes[-1]
    assert check_order(order(lots=30), ctx(no_risk_limits)).orders == result.orders
    # the risk policy's order_limits still apply (stricter wins): 30 lots > its 10
    assert code(check_order(order(lots=30), ctx(cfg))) == "max-lots"


def test_corpus_duplicate_within_the_window() -> None:
    first = order("re00000000000000a1")
    again = order("re00000000000000a2")
    assert code(check_order(again, ctx(recent=((2.0, first),)))) == "duplicate-order"
    assert code(check_order(again, ctx(recent=((6.0, first),)))) is None  # window is 5 s
    other_qty = order("re00000000000000a3", lots=2)
    assert code(check_order(other_qty, ctx(recent=((2.0, first),)))) is None


def test_corpus_self_crossing_order() -> None:
    resting_sell = order("re00000000000000b1", side="SELL", limit=100.5, strategy="other")
    result = check_order(order(limit=101.0), ctx(open_orders=(resting_sell,)))
    assert code(result) == "self-trade"
    assert result.denial is not None and result.denial.values["crosses"] == [
        "re00000000000000b1"]
    below = check_order(order(limit=100.0), ctx(open_orders=(resting_sell,)))
    assert below.approved  # a buy below our own offer does not cross it


def test_repeated_client_id_is_refused_for_every_purpose() -> None:
    for purpose in ("entry", "exit", "square_off"):
        result = check_order(order(purpose=purpose),  # type: ignore[arg-type]
                             ctx(ids=frozenset({"re0000000000000001"})))
        assert code(result) == "duplicate-client-id"


# -- more denials, each with its code ---------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "over", "expected"), [
    ({"qty": 0}, {}, "bad-quantity"),
    ({"limit": -5.0}, {}, "no-limit-price"),
    ({"limit": 100.02}, {"tick": "reject"}, "off-tick"),
    ({"contract": Contract(underlying="NIFTY", kind="IDX")}, {}, "not-tradable"),
    ({"contract": Contract(underlying="MIDCPNIFTY", kind="FUT", expiry=EXPIRY)}, {},
     "unknown-instrument"),
    ({"lots": 7, "limit": 24100.0, "contract": FUT}, {}, "max-value"),  # 1.1 crore notional
    ({"lots": 4}, {"max_option_value": 20000}, "max-value"),
    ({"lots": 3}, {"max_premium_at_risk": 15000}, "max-premium-at-risk"),
    ({"contract": Contract(underlying="NIFTY", kind="OPT", expiry=EXPIRY, strike=1.0,
                           option_type="CE")}, {}, "no-price"),
    ({"contract": CHEAP, "limit": 25.0}, {"price_band": {"pct": 100, "min_ticks": 1000}},
     "exchange-band"),
    ({"lots": 30}, {"limits": {"NIFTY": {"max_lots": 300}}, "max_slices": 1},
     "too-many-slices"),
])
def test_denials_carry_their_code(kwargs: dict[str, Any], over: dict[str, Any],
                                  expected: str) -> None:
    cfg = CheckConfig.from_policy({"exchange_bands": NSE_BANDS, **over},
                                  instruments=INSTRUMENTS)
    result = check_order(order(**kwargs), ctx(cfg))
    assert code(result) == expected
    assert expected in DENIAL_CODES
    assert result.denial is not None and result.denial.message


def test_max_open_orders_counts_working_orders() -> None:
    cfg = config(max_open_orders=2)
    working = tuple(order(f"re00000000000000c{i}", contract=PE, limit=90.0, side="SELL",
                          strategy=f"s{i}") for i in range(2))
    assert code(check_order(order(), ctx(cfg, open_orders=working))) == "max-open-orders"
    assert code(check_order(order(), ctx(cfg, open_orders=working[:1]))) is None


def test_cheap_option_band_has_a_floor_in_ticks() -> None:
    # LTP 4.00: 5% is 0.20, but the band is at least 20 ticks (1.00) wide each side
    assert check_order(order(contract=CHEAP, limit=4.9), ctx()).approved
    assert code(check_order(order(contract=CHEAP, limit=5.1), ctx())) == "price-band"


def test_off_tick_price_is_rounded_against_the_trader_by_default() -> None:
    buy = check_order(order(limit=100.97), ctx())
    assert buy.approved and buy.orders[0].limit_price == 100.95
    sell = check_order(order(side="SELL", limit=100.92), ctx())
    assert sell.approved and sell.orders[0].limit_price == 100.95
    assert "rounded" in buy.notes[0]


def test_market_orders_are_valued_at_the_touch() -> None:
    cfg = config(max_option_value=6600)  # 65 x 101.5 = 6597.5 at the ask... fits
    assert check_order(order(limit=None), ctx(cfg)).approved
    assert code(check_order(order(limit=None), ctx(config(max_option_value=6500)))) == \
        "max-value"


# -- exits and square-offs: only broker validity ----------------------------------------------

@pytest.mark.parametrize("purpose", ["exit", "square_off"])
def test_exits_pass_what_would_stop_an_entry(purpose: Purpose) -> None:
    cfg = config(max_open_orders=1, max_option_value=1000)
    resting = order("re00000000000000d1", contract=PE, side="BUY", limit=90.0)
    recent = ((1.0, order("re00000000000000d2", side="SELL", lots=10, limit=99.0,
                          purpose=purpose)),)
    exit_ = order(side="SELL", lots=10, limit=99.0, purpose=purpose)  # 10 lots > max 4
    as_entry = check_order(replace(exit_, purpose="entry"),
                           ctx(cfg, open_orders=(resting,), recent=recent))
    assert not as_entry.approved
    result = check_order(exit_, ctx(cfg, open_orders=(resting,), recent=recent))
    assert result.approved and result.orders == (exit_,)
    far = check_order(replace(exit_, limit_price=60.0), ctx(cfg))  # 40% below LTP
    assert far.approved and far.orders[0].limit_price == 60.0  # inside the exchange band


def test_exit_outside_the_exchange_band_is_pulled_inside() -> None:
    result = check_order(order(side="BUY", limit=1000.0, purpose="exit"), ctx())
    assert result.approved
    assert result.orders[0].limit_price == 140.0  # LTP 100 + 40%
    assert "pulled inside" in result.notes[0]


def test_exit_above_freeze_is_sliced() -> None:
    result = check_order(order(side="SELL", lots=60, limit=99.0, purpose="square_off"), ctx())
    assert [o.qty for o in result.orders] == [1755, 1755, 390]
    assert result.review is None


def test_exit_crossing_our_resting_entry_is_sent_and_reported() -> None:
    resting = order("re00000000000000e1", side="BUY", limit=100.0)
    result = check_order(order(side="SELL", limit=99.0, purpose="exit"),
                         ctx(open_orders=(resting,)))
    assert result.approved and result.crosses == ("re00000000000000e1",)


def test_exits_still_need_whole_lots() -> None:
    assert code(check_order(order(qty=100, purpose="exit"), ctx())) == "not-lot-multiple"


def test_halt_gateway_still_first() -> None:
    from ruleengine.checks import gateway
    from ruleengine.tradingstate import ScopeState, TradingState

    halted = {"account": ScopeState(state=TradingState.HALTED, rule_id="kill-switch")}
    assert gateway(order(), halted)[0] == "halted"
    assert gateway(order(purpose="exit"), halted)[0] is None


# -- review thresholds ------------------------------------------------------------------------

def test_large_entries_need_review_and_exits_never() -> None:
    cfg = config(confirm={"lots": 3})
    assert check_order(order(lots=2), ctx(cfg)).review is None
    held = check_order(order(lots=3), ctx(cfg))
    assert held.approved and held.review is not None and "3 lots" in held.review
    assert check_order(order(lots=3, purpose="exit"), ctx(cfg)).review is None
    by_value = check_order(order(lots=2), ctx(config(confirm={"option_value": 13000})))
    assert by_value.review is not None and "option_value" in by_value.review


def test_review_groups_count_slices_of_one_order_together() -> None:
    cfg = CheckConfig.from_policy({"limits": {"NIFTY": {"max_lots": 60}},
                                   "confirm": {"lots": 40}}, instruments=INSTRUMENTS)
    parent = order(lots=45)
    slices = check_order(parent, ctx(cfg)).orders
    assert len(slices) == 2 and all(o.qty < 40 * LOT for o in slices)
    groups = review_groups(slices, cfg, day=NOW.date())
    assert len(groups) == 1 and groups[0][1] == slices
    assert review_groups(slices[:1], cfg, day=NOW.date()) == []


# -- building blocks --------------------------------------------------------------------------

def test_child_ids_fit_the_kite_tag_and_are_unique() -> None:
    assert derived_client_id("re0123456789abcd", "s", 1) == "re0123456789abcds1"
    long = "x" * 20
    ids = {derived_client_id(long, m, n) for m in "sr" for n in range(1, 30)}
    assert len(ids) == 58 and all(len(i) <= 20 for i in ids)


def test_slice_order_keeps_the_total() -> None:
    o = order(lots=55)
    parts = slice_order(o, 1800, LOT)
    assert sum(p.qty for p in parts) == o.qty and max(p.qty for p in parts) == 1755
    assert slice_order(order(lots=27), 1800, LOT) == (order(lots=27),)


def test_config_rejects_mistyped_keys() -> None:
    with pytest.raises(ConfigError, match="max_slice"):
        CheckConfig.from_policy({"max_slice": 3}, instruments=INSTRUMENTS)
    assert validated_policy("order_checks", {})["tick"] == "round"


def test_shipped_policies_build_a_config_that_passes_the_shipped_strategies() -> None:
    policy = load_policy_set([ROOT / "policies", ROOT / "strategies"])
    cfg = CheckConfig.from_policy_set(policy)
    assert cfg.limits_for("NIFTY").max_lots == 10  # from the risk policy's order_limits
    assert cfg.bands_for("NIFTY", NOW.date()) is not None
    # a straddle leg as the strategies size it: 2 units of 1 lot, marketable limit 2% through
    sell = order(side="SELL", lots=2, limit=97.55)
    assert check_order(sell, ctx(cfg)).approved
    assert check_order(sell, ctx(cfg)).review is None


def test_context_for_reads_engine_state_without_copying() -> None:
    track = SimpleNamespace(request=order("re00000000000000f1"), sent_ts=NOW)
    state = SimpleNamespace(market=SimpleNamespace(quotes=QUOTES),
                            live={"re00000000000000f1": track},
                            orders={"re00000000000000f1": track})
    c = context_for(state, config(), NOW)  # type: ignore[arg-type]
    assert code(check_order(order("re00000000000000f2"), c)) == "duplicate-order"
    assert code(check_order(order("re00000000000000f1"), c)) == "duplicate-client-id"


# -- properties -------------------------------------------------------------------------------

VALIDITY = {"unknown-instrument", "not-tradable", "bad-quantity", "not-lot-multiple",
            "no-limit-price", "off-tick", "duplicate-client-id"}


@settings(max_examples=300, deadline=None)
@given(qty=st.integers(-70, 4000), price_mult=st.floats(0.01, 20.0),
       side=st.sampled_from(["BUY", "SELL"]),
       purpose=st.sampled_from(["entry", "exit", "square_off"]),
       contract=st.sampled_from([CE, PE, FUT, CHEAP]), market=st.booleans(),
       n_open=st.integers(0, 25), tick_mode=st.sampled_from(["round", "reject"]))
def test_any_order_gets_a_coded_answer(qty: int, price_mult: float, side: str, purpose: str,
                                       contract: Contract, market: bool, n_open: int,
                                       tick_mode: str) -> None:
    cfg = config(tick=tick_mode, limits={"NIFTY": {"max_lots": 60}})
    ltp = QUOTES[contract].ltp
    o = order(contract=contract, side=side, qty=qty, purpose=purpose,  # type: ignore[arg-type]
              limit=None if market else round(ltp * price_mult, 2))
    working = tuple(order(f"re000000000000w{i:02d}", contract=PE, side="SELL", limit=200.0)
                    for i in range(n_open))
    result = check_order(o, ctx(cfg, open_orders=working))
    if result.denial is not None:
        assert result.denial.code in DENIAL_CODES and result.denial.message
        assert result.orders == ()
        if purpose != "entry":
            assert result.denial.code in VALIDITY  # exits only meet broker validity
        return
    assert sum(c.qty for c in result.orders) == o.qty
    for child in result.orders:
        assert child.qty % LOT == 0 and 0 < child.qty <= 1800
        assert len(child.client_id) <= 20
        if child.limit_price is not None:
            steps = child.limit_price / 0.05
            assert abs(steps - round(steps)) < 1e-6
    assert len({c.client_id for c in result.orders}) == len(result.orders)


@pytest.mark.parametrize("module", ["ruleengine.checks", "ruleengine.execution",
                                    "ruleengine.review", "adapters.brokers.faulty"])
def test_public_names_are_listed_and_exist(module: str) -> None:
    import importlib

    mod = importlib.import_module(module)
    assert all(hasattr(mod, name) for name in mod.__all__)
    assert len(set(mod.__all__)) == len(mod.__all__)
