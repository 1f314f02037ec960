"""Black-76 must be exactly right: the synthetic chain, paper fills and any Greeks-based rule
inherit its numbers, and an error here looks like an edge that does not exist."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.feeds.pricing import (
    black76_call_put,
    black76_delta,
    black76_price,
    black76_vega,
    norm_cdf,
)
from ruleengine.events import OptionType

OPTION_TYPES: tuple[OptionType, ...] = ("CE", "PE")

forwards = st.floats(min_value=1_000.0, max_value=60_000.0)
moneyness = st.floats(min_value=0.7, max_value=1.3)
years = st.floats(min_value=1.0 / (365 * 86_400), max_value=1.0)
rates = st.floats(min_value=0.0, max_value=0.12)
vols = st.floats(min_value=0.01, max_value=1.5)


@given(forwards, moneyness, years, rates, vols)
def test_put_call_parity(f: float, m: float, t: float, r: float, sigma: float) -> None:
    k = f * m
    call = black76_price(f, k, t, r, sigma, "CE")
    put = black76_price(f, k, t, r, sigma, "PE")
    assert call - put == pytest.approx(math.exp(-r * t) * (f - k), abs=1e-9)


@given(forwards, moneyness, years, rates, vols)
def test_call_put_pair_matches_single_prices(f: float, m: float, t: float, r: float,
                                             sigma: float) -> None:
    k = f * m
    call, put = black76_call_put(f, k, t, r, sigma)
    assert call == pytest.approx(black76_price(f, k, t, r, sigma, "CE"), abs=1e-9)
    assert put == pytest.approx(black76_price(f, k, t, r, sigma, "PE"), abs=1e-9)
    assert call == black76_call_put(f, k, t, r, sigma, disc=math.exp(-r * t))[0]


def test_known_value_at_the_money() -> None:
    # F = K = 100, T = 1, r = 0, sigma = 0.2: d1 = 0.1, d2 = -0.1, so
    # C = 100 * (N(0.1) - N(-0.1)) = 100 * erf(0.1 / sqrt 2) = 7.965567455405804.
    assert black76_price(100.0, 100.0, 1.0, 0.0, 0.2, "CE") == pytest.approx(
        7.965567455405804, abs=1e-12)
    assert black76_price(100.0, 100.0, 1.0, 0.0, 0.2, "PE") == pytest.approx(
        7.965567455405804, abs=1e-12)


def test_known_value_hull_futures_put() -> None:
    # Hull, Options, Futures and Other Derivatives (Black's model example): a put on a futures
    # price of 20, strike 20, r = 9%, T = 4 months, sigma = 25%. By hand:
    # d1 = 0.25 * sqrt(1/3) / 2 = 0.0721688, N(d1) = 0.528766, N(-d1) = 0.471234,
    # p = e^(-0.03) * 20 * (N(-d2) - N(-d1)) = 0.970446 * 20 * 0.057532 = 1.1166.
    put = black76_price(20.0, 20.0, 4.0 / 12.0, 0.09, 0.25, "PE")
    assert put == pytest.approx(1.1166, abs=5e-5)


def test_known_value_out_of_the_money_weekly() -> None:
    # A NIFTY-like weekly call: F = 24000, K = 24200, T = 7/365, r = 6.5%, sigma = 14%.
    # sigma*sqrt(T) = 0.0193879, d1 = (ln(24000/24200) + 0.0193879^2/2) / 0.0193879 = -0.418347,
    # d2 = -0.437734, N(d1) = 0.337847, N(d2) = 0.330789, e^(-rT) = 0.998754,
    # C = 0.998754 * (24000 * 0.337847 - 24200 * 0.330789) = 103.093
    # (N() from statistics.NormalDist, independent of the module's erfc).
    assert black76_price(24_000.0, 24_200.0, 7 / 365, 0.065, 0.14, "CE") == pytest.approx(
        103.09306608423775, abs=1e-9)


def test_norm_cdf_reference_points() -> None:
    assert norm_cdf(0.0) == 0.5
    assert norm_cdf(1.959963984540054) == pytest.approx(0.975, abs=1e-12)
    assert norm_cdf(-10.0) == pytest.approx(7.619853024160527e-24, rel=1e-9)


@pytest.mark.parametrize("option_type", OPTION_TYPES)
def test_price_increases_with_volatility(option_type: OptionType) -> None:
    for k in (22_000.0, 24_000.0, 26_000.0):
        prices = [black76_price(24_000.0, k, 10 / 365, 0.065, v / 100, option_type)
                  for v in range(5, 80, 5)]
        assert all(a < b for a, b in itertools.pairwise(prices))


def test_price_monotonic_in_strike() -> None:
    strikes = [22_000.0 + 50 * i for i in range(81)]
    calls = [black76_price(24_000.0, k, 10 / 365, 0.065, 0.15, "CE") for k in strikes]
    puts = [black76_price(24_000.0, k, 10 / 365, 0.065, 0.15, "PE") for k in strikes]
    assert all(a > b for a, b in itertools.pairwise(calls))
    assert all(a < b for a, b in itertools.pairwise(puts))


@given(forwards, moneyness, st.floats(min_value=1 / 365, max_value=1.0), rates,
       st.floats(min_value=0.05, max_value=1.0))
def test_delta_and_vega_match_finite_differences(f: float, m: float, t: float, r: float,
                                                 sigma: float) -> None:
    k = f * m
    h = f * 1e-5
    for opt in OPTION_TYPES:
        numeric = (black76_price(f + h, k, t, r, sigma, opt)
                   - black76_price(f - h, k, t, r, sigma, opt)) / (2 * h)
        assert black76_delta(f, k, t, r, sigma, opt) == pytest.approx(numeric, abs=1e-6)
    call_delta = black76_delta(f, k, t, r, sigma, "CE")
    put_delta = black76_delta(f, k, t, r, sigma, "PE")
    assert call_delta - put_delta == pytest.approx(math.exp(-r * t), abs=1e-12)
    dv = 1e-5
    numeric_vega = (black76_price(f, k, t, r, sigma + dv, "CE")
                    - black76_price(f, k, t, r, sigma - dv, "CE")) / (2 * dv)
    assert black76_vega(f, k, t, r, sigma) == pytest.approx(numeric_vega, rel=1e-4, abs=1e-6)


def test_expiry_and_zero_vol_give_intrinsic_value() -> None:
    assert black76_price(24_100.0, 24_000.0, 0.0, 0.065, 0.2, "CE") == pytest.approx(100.0)
    assert black76_price(24_100.0, 24_000.0, 0.0, 0.065, 0.2, "PE") == 0.0
    assert black76_price(23_900.0, 24_000.0, -1.0, 0.065, 0.2, "PE") == pytest.approx(100.0)
    assert black76_price(24_100.0, 24_000.0, 0.5, 0.0, 0.0, "CE") == pytest.approx(100.0)
    assert black76_call_put(24_100.0, 24_000.0, 0.0, 0.065, 0.2) == pytest.approx((100.0, 0.0))
    assert black76_delta(24_100.0, 24_000.0, 0.0, 0.0, 0.2, "CE") == 1.0
    assert black76_delta(24_100.0, 24_000.0, 0.0, 0.0, 0.2, "PE") == 0.0
    assert black76_delta(23_900.0, 24_000.0, 0.0, 0.0, 0.2, "PE") == -1.0
    assert black76_delta(24_000.0, 24_000.0, 0.0, 0.0, 0.2, "CE") == 0.5
    assert black76_vega(24_000.0, 24_000.0, 0.0, 0.0, 0.2) == 0.0


def test_far_out_of_the_money_put_from_parity_is_never_negative() -> None:
    _, put = black76_call_put(24_000.0, 18_000.0, 1 / 365, 0.065, 0.10)
    assert put >= 0.0


@pytest.mark.parametrize(("f", "k"), [(0.0, 100.0), (100.0, 0.0), (-1.0, 100.0)])
def test_rejects_non_positive_inputs(f: float, k: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        black76_price(f, k, 0.1, 0.05, 0.2, "CE")
