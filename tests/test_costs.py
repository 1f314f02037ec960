"""Charges from policies/costs.yaml, held to the worked check in MARKET_FACTS.md to the paisa."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ruleengine.costs import (
    Charges,
    CostError,
    CostModel,
    Fill,
    charges_for_exercise,
    charges_for_fill,
    charges_for_fills,
    charges_for_round_trip,
)
from ruleengine.errors import PolicyError
from ruleengine.policyset import lint, load_policy_set
from ruleengine.yamlsource import load_file

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "policies"
COSTS_YAML = POLICIES / "costs.yaml"

D2025 = date(2025, 6, 10)


@pytest.fixture(scope="module")
def model() -> CostModel:
    return CostModel.from_policy_set(load_policy_set([COSTS_YAML]))


def raw_costs() -> dict[str, Any]:
    data: dict[str, Any] = load_file(COSTS_YAML).data
    return data


@cache
def shared_model() -> CostModel:
    """Built once: hypothesis examples must not pay for parsing the YAML each time."""
    return CostModel.from_policy(raw_costs())


def nifty_round_trip(model: CostModel, day: date) -> Charges:
    return charges_for_round_trip(model, trade_date=day, instrument_type="option", qty=75,
                                  buy_price=100, sell_price=120)


# -- the worked check ------------------------------------------------------------------------

def test_worked_check_from_market_facts(model: CostModel) -> None:
    c = nifty_round_trip(model, D2025)
    assert asdict(c) == {"brokerage": 40.0, "stt": 9.0, "exchange_txn": 5.78, "ipft": 0.08,
                         "sebi": 0.02, "stamp": 0.23, "gst": 8.24, "total": 63.35}
    gross = (120 - 100) * 75
    assert gross == 1500
    assert float(Decimal(gross) - Decimal(repr(c.total))) == 1436.65


def test_worked_check_holds_through_the_whole_policies_folder() -> None:
    pset = load_policy_set([POLICIES])
    c = nifty_round_trip(CostModel.from_policy_set(pset), D2025)
    assert (c.gst, c.total) == (8.24, 63.35)


def test_policies_folder_lints_clean() -> None:
    assert [f for f in lint([POLICIES]) if f.severity == "error"] == []


def test_gst_base_excludes_ipft_and_including_it_misses_the_check() -> None:
    data = raw_costs()
    for entry in data["schedules"]["option"]:
        entry["gst"]["on"] = ["brokerage", "exchange_txn", "ipft", "sebi"]
    c = nifty_round_trip(CostModel.from_policy(data), D2025)
    assert c.gst == 8.26  # 18% of 45.88 = 8.2584: why the policy leaves IPFT out


def test_round_trip_is_one_contract_note_and_equals_charges_for_fills(model: CostModel) -> None:
    fills = [Fill(side="BUY", qty=75, price=100), Fill(side="SELL", qty=75, price=120)]
    note = charges_for_fills(model, trade_date=D2025, instrument_type="option", fills=fills)
    assert note == nifty_round_trip(model, D2025)
    # Pricing each fill as its own note rounds twice: IPFT 0.04 + 0.05 and GST 4.08 + 4.17.
    buy = charges_for_fill(model, trade_date=D2025, instrument_type="option", side="BUY",
                           qty=75, price=100)
    sell = charges_for_fill(model, trade_date=D2025, instrument_type="option", side="SELL",
                            qty=75, price=120)
    apart = buy + sell
    assert (apart.ipft, apart.gst, apart.total) == (0.09, 8.25, 63.37)
    assert apart.total == round(buy.total + sell.total, 2)


def test_total_is_the_sum_of_the_rounded_components(model: CostModel) -> None:
    c = nifty_round_trip(model, D2025)
    parts = (c.brokerage, c.stt, c.exchange_txn, c.ipft, c.sebi, c.stamp, c.gst)
    assert sum(Decimal(repr(p)) for p in parts) == Decimal(repr(c.total))


# -- sides -----------------------------------------------------------------------------------

def test_sell_side_pays_stt_and_buy_side_pays_stamp(model: CostModel) -> None:
    buy = charges_for_fill(model, trade_date=D2025, instrument_type="option", side="BUY",
                           qty=75, price=100)
    sell = charges_for_fill(model, trade_date=D2025, instrument_type="option", side="SELL",
                            qty=75, price=120)
    assert (buy.stt, buy.stamp) == (0.0, 0.23)
    assert (sell.stt, sell.stamp) == (9.0, 0.0)
    assert buy.brokerage == sell.brokerage == 20.0


def test_brokerage_is_per_executed_order(model: CostModel) -> None:
    sliced = charges_for_fill(model, trade_date=D2025, instrument_type="option", side="SELL",
                              qty=75 * 30, price=120, orders=2)
    assert sliced.brokerage == 40.0


# -- schedules -------------------------------------------------------------------------------

def test_stt_switches_on_2026_04_01(model: CostModel) -> None:
    def sell(day: date) -> Charges:
        return charges_for_fill(model, trade_date=day, instrument_type="option", side="SELL",
                                qty=75, price=120)

    assert sell(date(2026, 3, 31)).stt == 9.0  # 0.1% of 9,000
    assert sell(date(2026, 4, 1)).stt == 13.5  # 0.15% of 9,000


def test_nse_charge_switches_on_2026_03_01(model: CostModel) -> None:
    before = nifty_round_trip(model, date(2026, 2, 27))
    after = nifty_round_trip(model, date(2026, 3, 2))
    assert (before.exchange_txn, before.ipft) == (5.78, 0.08)  # 0.03503% + ₹50/crore
    assert (after.exchange_txn, after.ipft) == (5.86, 0.0)  # 0.03552% of 16,500 = 5.8608
    assert after.stt == 9.0  # STT changes only on 1 Apr


def test_rates_before_1_oct_2024(model: CostModel) -> None:
    c = nifty_round_trip(model, date(2024, 9, 30))
    # STT 0.0625% of 9,000 = 5.625; NSE 0.0495% of 16,500 = 8.1675; GST 18% of 48.19 = 8.6742
    assert asdict(c) == {"brokerage": 40.0, "stt": 5.63, "exchange_txn": 8.17, "ipft": 0.0,
                         "sebi": 0.02, "stamp": 0.23, "gst": 8.67, "total": 62.72}
    assert nifty_round_trip(model, date(2024, 10, 1)).total == 63.35


def test_rates_on_picks_the_entry_in_force(model: CostModel) -> None:
    assert model.rates_on("option", date(2026, 3, 31)).effective_from == date(2026, 3, 1)
    assert model.rates_on("option", date(2026, 4, 1)).effective_from == date(2026, 4, 1)
    assert model.rates_on("future", date(2030, 1, 1)).effective_from == date(2026, 4, 1)


def test_trade_before_the_first_entry_is_not_priced(model: CostModel) -> None:
    with pytest.raises(CostError, match="no option charges in force on 2020-01-02"):
        nifty_round_trip(model, date(2020, 1, 2))
    with pytest.raises(CostError, match="no future charges in force"):
        charges_for_fill(model, trade_date=date(2024, 9, 30), instrument_type="future",
                         side="BUY", qty=75, price=25_000)


def test_bse_without_rates_raises_instead_of_guessing(model: CostModel) -> None:
    with pytest.raises(CostError, match="no BSE charges"):
        charges_for_fill(model, trade_date=D2025, instrument_type="option", side="SELL",
                         qty=20, price=300, exchange="BSE")


def test_bse_rates_when_configured() -> None:
    data = raw_costs()
    for entry in data["schedules"]["option"]:
        entry["exchanges"]["BSE"] = {"txn_pct": 0.05, "note": "test rate, not a real one"}
    c = charges_for_fill(CostModel.from_policy(data), trade_date=D2025,
                         instrument_type="option", side="SELL", qty=20, price=300,
                         exchange="BSE")
    assert (c.exchange_txn, c.ipft) == (3.0, 0.0)  # 0.05% of 6,000; IPFT defaults to 0


# -- futures ---------------------------------------------------------------------------------

def test_futures_brokerage_is_capped_at_20_per_order(model: CostModel) -> None:
    def buy(qty: int, price: float, orders: int = 1) -> float:
        return charges_for_fill(model, trade_date=D2025, instrument_type="future", side="BUY",
                                qty=qty, price=price, orders=orders).brokerage

    assert buy(75, 25_000) == 20.0  # 0.03% of 18,75,000 = 562.50, capped
    assert buy(1, 50_000) == 15.0  # 0.03% of 50,000, under the cap
    assert buy(1800, 25_000, orders=3) == 60.0  # three executed orders, each capped


def test_futures_round_trip_and_stt_switch(model: CostModel) -> None:
    def trip(day: date) -> Charges:
        return charges_for_round_trip(model, trade_date=day, instrument_type="future", qty=75,
                                      buy_price=25_000, sell_price=25_100)

    c = trip(D2025)
    # turnover 37,57,500: NSE 0.00173% = 65.00475; SEBI 3.7575; stamp 0.002% of 18,75,000
    assert asdict(c) == {"brokerage": 40.0, "stt": 376.5, "exchange_txn": 65.0, "ipft": 0.0,
                         "sebi": 3.76, "stamp": 37.5, "gst": 19.58, "total": 542.34}
    assert trip(date(2026, 4, 1)).stt == 941.25  # 0.05% of 18,82,500


# -- exercise --------------------------------------------------------------------------------

def test_stt_on_exercise_uses_intrinsic_value(model: CostModel) -> None:
    c = charges_for_exercise(model, trade_date=D2025, qty=75, intrinsic_value=50)
    assert (c.stt, c.total) == (4.69, 4.69)  # 0.125% of 3,750 = 4.6875
    assert charges_for_exercise(model, trade_date=date(2026, 4, 1), qty=75,
                                intrinsic_value=50).stt == 5.63  # 0.15% of 3,750 = 5.625


# -- rounding and input ----------------------------------------------------------------------

def test_half_even_rounding_is_configurable() -> None:
    data = raw_costs()
    data["rounding"]["method"] = "half_even"
    c = charges_for_fill(CostModel.from_policy(data), trade_date=D2025,
                         instrument_type="option", side="BUY", qty=75, price=100)
    assert c.stamp == 0.22  # 0.225 to even; the policy's half_up gives 0.23


def test_prices_are_taken_as_written_not_as_binary_floats(model: CostModel) -> None:
    # Stamp 0.003% of 7,500 is exactly 0.225 when computed in Decimal, so half-up gives 0.23.
    c = charges_for_fill(model, trade_date=D2025, instrument_type="option", side="BUY",
                         qty=1, price=7500)
    assert c.stamp == 0.23
    c = charges_for_fill(model, trade_date=D2025, instrument_type="option", side="SELL",
                         qty=1, price=2675)  # STT 0.1% = 2.675, which round() makes 2.67
    assert c.stt == 2.68


def test_unordered_schedule_is_refused() -> None:
    data = raw_costs()
    data["schedules"]["option"].reverse()
    with pytest.raises(CostError, match="dates must increase"):
        CostModel.from_policy(data)


@pytest.mark.parametrize("kwargs", [
    {"side": "BUY", "qty": 0, "price": 100},
    {"side": "BUY", "qty": True, "price": 100},
    {"side": "BUY", "qty": 75, "price": -1},
    {"side": "BUY", "qty": 75, "price": float("nan")},
    {"side": "BUY", "qty": 75, "price": 100, "orders": 0},
    {"side": "buy", "qty": 75, "price": 100},
])
def test_bad_fills_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(CostError):
        Fill(**kwargs)


def test_charges_add_exactly() -> None:
    a = Charges(brokerage=0.1, total=0.1)
    b = Charges(brokerage=0.2, total=0.2)
    assert (a + b).brokerage == 0.3  # not 0.30000000000000004


@given(qty=st.integers(1, 10_000),
       buy=st.integers(5, 500_000).map(lambda t: t / 100),
       sell=st.integers(5, 500_000).map(lambda t: t / 100),
       day=st.dates(date(2023, 4, 1), date(2027, 12, 31)))
def test_components_are_paisa_and_add_up(qty: int, buy: float, sell: float, day: date) -> None:
    m = shared_model()
    c = charges_for_round_trip(m, trade_date=day, instrument_type="option", qty=qty,
                               buy_price=buy, sell_price=sell)
    parts = [Decimal(repr(v)) for k, v in asdict(c).items() if k != "total"]
    assert all(p >= 0 and p == p.quantize(Decimal("0.01")) for p in parts)
    assert sum(parts) == Decimal(repr(c.total))
    assert c == charges_for_round_trip(m, trade_date=day, instrument_type="option", qty=qty,
                                       buy_price=buy, sell_price=sell)


# -- schema ----------------------------------------------------------------------------------

BAD = """\
kind: costs
version: 1
schedules:
  option:
    - effective_from: "2025-01-01"
      brokerage: {per_order: 20}
      stt: {sell_pct: "0.1%"}
      exchanges:
        NSE: {txn_pct: 0.03503}
      sebi_per_crore: 10
      stamp_pct: 0.003
      gst: {pct: 18}
"""


def test_bad_costs_entry_gives_located_findings(tmp_path: Path) -> None:
    path = tmp_path / "costs.yaml"
    path.write_text(BAD, encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy_set([path])
    found = {(f.line, f.code) for f in info.value.findings}
    assert (7, "schema-type") in found  # sell_pct "0.1%" is text
    assert (11, "schema-unknown-key") in found  # stamp_pct
    assert (5, "schema-required") in found  # stamp_buy_pct missing from the entry
    by_code = {f.code: f for f in info.value.findings}
    assert "did you mean 'stamp_buy_pct'" in by_code["schema-unknown-key"].message
    assert by_code["schema-type"].file == str(path)


def test_unknown_instrument_type_is_a_located_finding(tmp_path: Path) -> None:
    path = tmp_path / "costs.yaml"
    path.write_text(BAD.replace("  option:", "  options:").replace('"0.1%"', "0.1")
                    .replace("stamp_pct", "stamp_buy_pct"), encoding="utf-8")
    findings = lint([path])
    assert [(f.line, f.code) for f in findings] == [(4, "schema-unknown-key")]
    assert "did you mean 'option'" in findings[0].message
