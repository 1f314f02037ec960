"""The paper broker must be at least as harsh as a real one, or paper results mislead."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.brokers.paper import (
    CANCELLED,
    COMPLETE,
    OPEN,
    OPEN_PENDING,
    REJECTED,
    PaperBroker,
    PaperConfig,
)
from ruleengine import cli
from ruleengine.contracts import Broker, OrderRequest
from ruleengine.errors import BrokerRejected
from ruleengine.events import (
    ChainSnapshot,
    Contract,
    IndexTick,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    Quote,
)
from ruleengine.policyset import load_policy_set

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2025, 6, 2, 10, 0, 0)
EXPIRY = date(2025, 6, 5)
CE = Contract(underlying="NIFTY", kind="OPT", expiry=EXPIRY, strike=24000.0, option_type="CE")
CE_HEDGE = Contract(underlying="NIFTY", kind="OPT", expiry=EXPIRY, strike=24200.0,
                    option_type="CE")
FUT = Contract(underlying="NIFTY", kind="FUT", expiry=date(2025, 6, 26))
NO_SLIP: dict[str, Any] = {"slippage": {"impact_ticks": 0, "jitter_ticks": 0}}


def t(i: int) -> datetime:
    return T0 + timedelta(seconds=i)


def cfg(**over: Any) -> PaperConfig:
    return PaperConfig.from_policy(over)


def quote(i: int, bid: float | None, ask: float | None, *, ltp: float | None = None,
          bid_qty: int = 1000, ask_qty: int = 1000, contract: Contract = CE) -> Quote:
    mid = ((bid or 0) + (ask or 0)) / 2
    return Quote(ts=t(i), contract=contract, ltp=mid if ltp is None else ltp, bid=bid, ask=ask,
                 bid_qty=bid_qty, ask_qty=ask_qty)


def req(cid: str, side: str = "BUY", qty: int = 65, limit: float | None = None,
        contract: Contract = CE) -> OrderRequest:
    return OrderRequest(client_id=cid, contract=contract, side=side,  # type: ignore[arg-type]
                        qty=qty, order_type="MARKET" if limit is None else "LIMIT",
                        limit_price=limit, purpose="entry", strategy_id="s", leg_id="l")


def broker(config: PaperConfig | None = None, *, seed: int = 7,
           capital: float = 1_000_000.0) -> PaperBroker:
    b = PaperBroker(config or cfg(**NO_SLIP), seed=seed, capital=capital)
    b.on_market(IndexTick(ts=t(0), underlying="NIFTY", value=24000.0))
    return b


def fills(events: Any) -> list[OrderFilled]:
    return [e for e in events if isinstance(e, OrderFilled)]


def test_is_a_broker() -> None:
    assert isinstance(broker(), Broker)


def test_buy_fills_at_ask_and_sell_at_bid_never_ltp() -> None:
    b = broker()
    b.on_market(quote(1, 99.0, 101.0, ltp=100.0))
    b.place(req("b1", "BUY", limit=105.0), t(1))
    b.place(req("s1", "SELL", limit=95.0), t(1))
    b.on_market(quote(2, 99.0, 101.0, ltp=100.0))
    got = {f.client_id: f.price for f in fills(b.poll(t(3)))}
    assert got == {"b1": 101.0, "s1": 99.0}
    report = b.slippage_vs_ltp()
    assert report.vs_ltp == pytest.approx(2 * 65 * 1.0)  # a full point each side vs LTP
    assert report.vs_touch == 0


def test_default_slippage_pays_beyond_the_touch_and_rounds_to_tick() -> None:
    b = broker(cfg())
    b.on_market(quote(1, 99.0, 101.0, ltp=100.0))
    b.place(req("b1", "BUY", limit=110.0), t(1))
    b.on_market(quote(2, 99.0, 101.0, ltp=100.0))
    (f,) = fills(b.poll(t(3)))
    assert f.price > 101.0
    assert round(f.price / 0.05) == pytest.approx(f.price / 0.05)
    assert b.fills[0].ltp == 100.0 and b.fills[0].touch == 101.0


def test_larger_order_gets_a_worse_price() -> None:
    prices = []
    for qty in (65, 650):
        b = broker(cfg(slippage={"impact_ticks": 3, "jitter_ticks": 0}))
        b.on_market(quote(1, 99.0, 101.0))
        b.place(req("b", "BUY", qty=qty, limit=120.0), t(1))
        b.on_market(quote(2, 99.0, 101.0, ask_qty=1000))
        (f,) = fills(b.poll(t(3)))
        assert f.qty == qty
        prices.append(f.price)
    assert 101.0 < prices[0] < prices[1]


def test_limit_caps_slippage() -> None:
    b = broker(cfg(slippage={"impact_ticks": 50, "jitter_ticks": 0}))
    b.on_market(quote(1, 99.0, 101.0))
    b.place(req("b", "BUY", limit=101.5), t(1))
    b.on_market(quote(2, 99.0, 101.0))
    (f,) = fills(b.poll(t(3)))
    assert f.price == 101.5


def test_partial_fill_beyond_displayed_depth_then_rest_on_next_quote() -> None:
    b = broker()
    b.on_market(quote(1, 99.0, 101.0, ask_qty=130))
    b.place(req("b", "BUY", qty=325, limit=102.0), t(1))
    b.on_market(quote(2, 99.0, 101.0, ask_qty=130))
    ev = b.poll(t(2))
    assert [type(e) for e in ev] == [OrderAccepted, OrderFilled]
    assert fills(ev)[0].qty == 130 and fills(ev)[0].cum_qty == 130
    (row,) = b.orders_by_tag("b")
    assert (row.status, row.filled_qty, row.qty) == (OPEN, 130, 325)
    b.on_market(quote(3, 99.0, 101.5, ask_qty=1000))
    (f,) = fills(b.poll(t(3)))
    assert (f.qty, f.cum_qty, f.order_qty, f.price) == (195, 325, 325, 101.5)
    (row,) = b.orders_by_tag("b")
    assert row.status == COMPLETE
    assert row.avg_price == pytest.approx((130 * 101.0 + 195 * 101.5) / 325, abs=1e-4)


def test_orders_share_displayed_depth_in_time_priority() -> None:
    b = broker()
    b.on_market(quote(1, 99.0, 101.0))
    b.place(req("first", "BUY", qty=100, limit=102.0), t(1))
    b.place(req("second", "BUY", qty=100, limit=102.0), t(1))
    b.on_market(quote(2, 99.0, 101.0, ask_qty=150))
    assert [(f.client_id, f.qty) for f in fills(b.poll(t(2)))] == [("first", 100),
                                                                     ("second", 50)]


def test_limit_not_marketable_rests_then_fills_at_its_price_when_market_comes() -> None:
    b = broker()
    b.on_market(quote(1, 99.0, 101.0))
    b.place(req("b", "BUY", limit=97.0), t(1))
    b.on_market(quote(2, 98.0, 100.0))
    ev = b.poll(t(2))
    assert [type(e) for e in ev] == [OrderAccepted]
    assert b.orders_by_tag("b")[0].status == OPEN
    b.on_market(quote(3, 95.0, 96.0))  # the offer comes through our bid
    (f,) = fills(b.poll(t(3)))
    assert f.price == 97.0  # where it sat in the book, never worse than the limit
    assert b.fills[0].resting and b.fills[0].slippage_ticks == 0


def test_sell_limit_rests_until_bid_reaches_it() -> None:
    b = broker()
    b.on_market(quote(1, 99.0, 101.0))
    b.place(req("s", "SELL", limit=104.0), t(1))
    b.on_market(quote(2, 102.0, 103.0))
    assert fills(b.poll(t(2))) == []
    b.on_market(quote(3, 104.0, 105.0))
    (f,) = fills(b.poll(t(3)))
    assert f.price == 104.0


def test_limit_price_protection_rejects_like_the_exchange() -> None:
    b = broker()
    b.on_market(quote(1, 99.0, 101.0, ltp=100.0))  # premium > 50: band 60..140
    b.place(req("hi", "BUY", limit=140.05), t(1))
    b.place(req("lo", "SELL", limit=59.95), t(1))
    b.place(req("ok", "BUY", limit=140.0), t(1))
    b.on_market(quote(2, 99.0, 101.0, ltp=100.0))
    ev = b.poll(t(2))
    rejected = {e.client_id: e.reason for e in ev if isinstance(e, OrderRejected)}
    assert set(rejected) == {"hi", "lo"}
    assert "limit price protection" in rejected["hi"] and "140.00" in rejected["hi"]
    assert b.orders_by_tag("hi")[0].status == REJECTED
    assert [f.client_id for f in fills(ev)] == ["ok"]


def test_cheap_option_band_is_absolute_and_no_band_before_lpp_existed() -> None:
    b = broker()
    b.on_market(quote(1, 9.5, 10.5, ltp=10.0))  # premium <= 50: +/- 20 INR
    b.place(req("hi", "BUY", limit=30.05), t(1))
    b.on_market(quote(2, 9.5, 10.5, ltp=10.0))
    assert isinstance(b.poll(t(2))[0], OrderRejected)

    old = PaperBroker(cfg(**NO_SLIP), seed=1, capital=1e6)
    day = datetime(2021, 3, 1, 10, 0)
    old.on_market(Quote(ts=day, contract=CE, ltp=10.0, bid=9.5, ask=10.5, bid_qty=100,
                        ask_qty=100))
    old.place(req("hi", "BUY", limit=30.05), day)
    old.on_market(Quote(ts=day + timedelta(seconds=1), contract=CE, ltp=10.0, bid=9.5,
                        ask=10.5, bid_qty=100, ask_qty=100))
    assert [type(e) for e in old.poll(day)] == [OrderAccepted, OrderFilled]


def test_market_order_converted_to_protected_limit() -> None:
    b = broker(cfg(slippage={"impact_ticks": 200, "jitter_ticks": 0}))  # 10 INR of impact
    b.on_market(quote(1, 99.0, 101.0, ltp=100.0))
    b.place(req("m", "BUY"), t(1))
    b.on_market(quote(2, 99.0, 101.0, ltp=100.0, ask_qty=65))
    (f,) = fills(b.poll(t(2)))
    assert f.price == pytest.approx(106.05)  # ask * 1.05 rounded up: the protection caps it


def test_market_orders_refused_when_policy_says_reject() -> None:
    b = broker(cfg(market_orders={"mode": "reject"}))
    with pytest.raises(BrokerRejected, match="market_protection"):
        b.place(req("m", "BUY"), t(1))


def test_insufficient_cash_for_option_buy_is_rejected() -> None:
    b = broker(capital=5000.0)
    b.on_market(quote(1, 99.0, 101.0))
    b.place(req("b", "BUY", qty=65, limit=101.0), t(1))  # needs 6,565
    b.on_market(quote(2, 99.0, 101.0))
    (e,) = b.poll(t(2))
    assert isinstance(e, OrderRejected) and "insufficient funds" in e.reason
    assert b.positions() == []


def test_naked_short_needs_margin_and_a_hedge_reduces_it() -> None:
    # naked: 10% of 24,000 * 65 = 156,000 > 100,000 of capital
    b = broker(capital=100_000.0)
    b.on_market(quote(1, 99.0, 101.0))
    b.place(req("s", "SELL", limit=99.0), t(1))
    b.on_market(quote(2, 99.0, 101.0))
    (e,) = b.poll(t(2))
    assert isinstance(e, OrderRejected) and "insufficient funds" in e.reason

    # hedged by a long call of the same expiry: 156,000 * (1 - 64%) = 56,160 fits
    b = broker(capital=100_000.0)
    b.on_market(quote(1, 49.0, 50.0, contract=CE_HEDGE))
    b.on_market(quote(1, 99.0, 101.0))
    b.place(req("h", "BUY", limit=50.0, contract=CE_HEDGE), t(1))
    b.place(req("s", "SELL", limit=99.0), t(1))
    b.on_market(quote(2, 99.0, 101.0))
    b.on_market(quote(2, 49.0, 50.0, contract=CE_HEDGE))
    ev = b.poll(t(2))
    assert not [e for e in ev if isinstance(e, OrderRejected)]
    assert {p.contract: p.qty for p in b.positions()} == {CE: -65, CE_HEDGE: 65}
    assert b.required_margin(EXPIRY - timedelta(days=1)) == pytest.approx(56_160.0)


def test_same_seed_same_fills_different_seed_different_jitter() -> None:
    def run(seed: int) -> list[tuple[str, int, float]]:
        b = broker(cfg(slippage={"jitter_ticks": 8}), seed=seed)
        b.on_market(quote(1, 99.0, 101.0))
        for i in range(8):
            b.place(req(f"o{i}", "BUY" if i % 2 else "SELL", qty=65,
                        limit=130.0 if i % 2 else 70.0), t(1 + i))
            b.on_market(quote(2 + i, 99.0, 101.0))
        return [(f.client_id, f.qty, f.price) for f in fills(b.poll(t(20)))]

    assert run(1) == run(1)
    assert len(run(1)) == 8
    assert run(1) != run(2)


def test_cancel_leaves_the_remainder_cancelled() -> None:
    b = broker()
    b.on_market(quote(1, 99.0, 101.0))
    b.place(req("b", "BUY", qty=325, limit=102.0), t(1))
    b.on_market(quote(2, 99.0, 101.0, ask_qty=130))
    b.poll(t(2))
    b.cancel("b", t(3))
    (e,) = b.poll(t(3))
    assert isinstance(e, OrderCancelled) and e.filled_qty == 130 and e.ts == t(3)
    b.on_market(quote(4, 99.0, 101.0, ask_qty=1000))
    assert b.poll(t(4)) == []
    (row,) = b.orders_by_tag("b")
    assert (row.status, row.filled_qty) == (CANCELLED, 130)
    with pytest.raises(BrokerRejected, match="already CANCELLED"):
        b.cancel("b", t(5))
    with pytest.raises(BrokerRejected):
        b.cancel("nope", t(5))


def test_positions_net_with_average_price() -> None:
    b = broker()
    b.on_market(quote(1, 99.0, 101.0))
    b.on_market(quote(1, 23990.0, 24000.0, contract=FUT))
    b.place(req("b1", "BUY", qty=130, limit=101.0), t(1))
    b.place(req("f1", "SELL", qty=75, limit=23990.0, contract=FUT), t(1))
    b.on_market(quote(2, 99.0, 101.0))
    b.on_market(quote(2, 23990.0, 24000.0, contract=FUT))
    b.on_market(quote(3, 101.0, 103.0))
    b.place(req("b2", "BUY", qty=65, limit=103.0), t(3))
    b.on_market(quote(4, 101.0, 103.0))
    b.place(req("s1", "SELL", qty=65, limit=101.0), t(4))
    b.on_market(quote(5, 101.0, 103.0))
    pos = {p.contract: (p.qty, p.avg_price) for p in b.positions()}
    assert pos[CE][0] == 130  # 130 + 65 - 65
    assert pos[CE][1] == pytest.approx((130 * 101.0 + 65 * 103.0) / 195)  # sells keep avg
    assert pos[FUT] == (-75, 23990.0)

    b.place(req("s2", "SELL", qty=195, limit=101.0), t(5))  # flip through zero to short 65
    b.place(req("f2", "BUY", qty=75, limit=24000.0, contract=FUT), t(5))
    b.on_market(quote(6, 101.0, 103.0))
    b.on_market(quote(6, 23990.0, 24000.0, contract=FUT))
    pos = {p.contract: (p.qty, p.avg_price) for p in b.positions()}
    assert pos == {CE: (-65, 101.0)}  # the flat future is no longer listed
    # cash: premium paid and received on the option, and the future's realised loss
    premium = -130 * 101.0 - 65 * 103.0 + 65 * 101.0 + 195 * 101.0
    assert b.cash == pytest.approx(1_000_000.0 + premium - 75 * 10.0)


def test_duplicate_client_id_is_refused() -> None:
    b = broker()
    b.on_market(quote(1, 99.0, 101.0))
    b.place(req("dup", "BUY", limit=101.0), t(1))
    with pytest.raises(BrokerRejected, match="duplicate"):
        b.place(req("dup", "BUY", limit=101.0), t(1))


def test_malformed_requests_are_refused_at_the_api() -> None:
    b = broker()
    with pytest.raises(BrokerRejected, match="tick"):
        b.place(req("a", "BUY", limit=101.03), t(1))
    with pytest.raises(BrokerRejected, match="positive"):
        b.place(req("b", "BUY", qty=0, limit=101.0), t(1))
    with pytest.raises(BrokerRejected, match="20"):
        b.place(req("x" * 21, "BUY", limit=101.0), t(1))


def test_latency_counts_later_market_updates_only() -> None:
    b = broker(cfg(latency_ticks=2, **NO_SLIP))
    b.on_market(quote(1, 99.0, 101.0))
    b.place(req("b", "BUY", limit=101.0), t(1))
    b.on_market(quote(1, 99.0, 101.0))  # same timestamp as the placement: not a step
    b.on_market(quote(2, 99.0, 101.0))
    assert b.poll(t(2)) == []
    assert b.orders_by_tag("b")[0].status == OPEN_PENDING
    b.on_market(IndexTick(ts=t(3), underlying="NIFTY", value=24010.0))
    assert [type(e) for e in b.poll(t(3))] == [OrderAccepted, OrderFilled]


def test_zero_latency_fills_on_placement() -> None:
    b = broker(cfg(latency_ticks=0, **NO_SLIP))
    b.on_market(quote(1, 99.0, 101.0))
    oid = b.place(req("b", "BUY", limit=101.0), t(1))
    ev = b.poll(t(1))
    assert oid == "P000001" and [type(e) for e in ev] == [OrderAccepted, OrderFilled]
    assert all(e.ts == t(1) and e.source == "paper" for e in ev)


def test_unknown_contract_waits_for_a_quote() -> None:
    b = broker()
    b.place(req("b", "BUY", limit=101.0), t(1))
    b.on_market(IndexTick(ts=t(2), underlying="NIFTY", value=24000.0))
    b.on_market(IndexTick(ts=t(3), underlying="NIFTY", value=24000.0))
    assert b.poll(t(3)) == [] and b.orders_by_tag("b")[0].status == OPEN_PENDING
    snap = ChainSnapshot(ts=t(4), underlying="NIFTY", expiry=EXPIRY, spot=24000.0,
                         quotes=(quote(4, 99.0, 101.0),))
    b.on_market(snap)
    assert [type(e) for e in b.poll(t(4))] == [OrderAccepted, OrderFilled]


def test_reject_probability_is_seeded() -> None:
    b = broker(cfg(reject_probability=1.0))
    b.on_market(quote(1, 99.0, 101.0))
    b.place(req("b", "BUY", limit=101.0), t(1))
    b.on_market(quote(2, 99.0, 101.0))
    (e,) = b.poll(t(2))
    assert isinstance(e, OrderRejected) and "reject_probability" in e.reason


def test_default_policy_loads_and_lints_clean() -> None:
    pset = load_policy_set([ROOT / "policies"])
    (doc,) = pset.of_kind("paper_broker")
    assert PaperConfig.from_policy_set(pset) == PaperConfig.from_policy({})
    assert doc["latency_ticks"] == 1
    assert cli.main(["lint", str(ROOT / "policies"), str(ROOT / "strategies")]) == 0


def test_hand_built_config_is_checked_against_the_schema() -> None:
    with pytest.raises(ValueError, match="latency"):
        PaperConfig.from_policy({"latency": 1})
    with pytest.raises(ValueError):
        PaperConfig.from_policy({"reject_probability": 2})
