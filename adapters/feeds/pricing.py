"""Black-76 option pricing on a future (or forward), in plain ``math``.

NSE index options are European and settle in cash against the index, so pricing them on the
forward to their own expiry (Black-76) keeps put–call parity exact without modelling dividends.
The synthetic feed and tests need only prices and deltas; keeping these as pure functions with
no scipy or numpy dependency means replays compute identical numbers on every machine.
"""

from __future__ import annotations

import math

from ruleengine.events import OptionType

_SQRT2 = math.sqrt(2.0)


def norm_cdf(x: float) -> float:
    """Standard normal CDF via ``erfc``, which stays accurate deep in the left tail where
    ``0.5 * (1 + erf(x))`` would cancel to zero."""
    return 0.5 * math.erfc(-x / _SQRT2)


def _check(forward: float, strike: float) -> None:
    if not (forward > 0.0 and strike > 0.0):
        raise ValueError(f"forward and strike must be positive, got F={forward}, K={strike}")


def black76_d1_d2(forward: float, strike: float, t: float, sigma: float) -> tuple[float, float]:
    """Exposed so callers pricing a call and a put at one strike pay for the logs once."""
    _check(forward, strike)
    sd = sigma * math.sqrt(t)
    d1 = (math.log(forward / strike) + 0.5 * sd * sd) / sd
    return d1, d1 - sd


def black76_price(forward: float, strike: float, t: float, r: float, sigma: float,
                  option_type: OptionType) -> float:
    """Premium of a European option on ``forward``; ``t`` in years, ``r`` continuously
    compounded. At expiry (``t <= 0``) or zero volatility the option is worth its discounted
    intrinsic value, so callers need no special case at 15:30 on expiry day."""
    _check(forward, strike)
    if t <= 0.0 or sigma <= 0.0:
        disc = math.exp(-r * max(t, 0.0))
        intrinsic = forward - strike if option_type == "CE" else strike - forward
        return disc * max(intrinsic, 0.0)
    d1, d2 = black76_d1_d2(forward, strike, t, sigma)
    disc = math.exp(-r * t)
    if option_type == "CE":
        return disc * (forward * norm_cdf(d1) - strike * norm_cdf(d2))
    return disc * (strike * norm_cdf(-d2) - forward * norm_cdf(-d1))


def black76_delta(forward: float, strike: float, t: float, r: float, sigma: float,
                  option_type: OptionType) -> float:
    """Sensitivity to the forward (dV/dF), which is what a futures hedge neutralises; at expiry
    it collapses to 0 or ±1 (at the money it takes 0.5 / -0.5 by convention)."""
    _check(forward, strike)
    if t <= 0.0 or sigma <= 0.0:
        disc = math.exp(-r * max(t, 0.0))
        if forward == strike:
            return 0.5 * disc if option_type == "CE" else -0.5 * disc
        itm = forward > strike if option_type == "CE" else forward < strike
        sign = 1.0 if option_type == "CE" else -1.0
        return sign * disc if itm else 0.0
    d1, _ = black76_d1_d2(forward, strike, t, sigma)
    disc = math.exp(-r * t)
    if option_type == "CE":
        return disc * norm_cdf(d1)
    return -disc * norm_cdf(-d1)


def black76_vega(forward: float, strike: float, t: float, r: float, sigma: float) -> float:
    """dV/dsigma (same for calls and puts); positive, which is why premium rises with IV."""
    _check(forward, strike)
    if t <= 0.0 or sigma <= 0.0:
        return 0.0
    d1, _ = black76_d1_d2(forward, strike, t, sigma)
    return math.exp(-r * t) * forward * math.sqrt(t) * math.exp(-0.5 * d1 * d1) / math.sqrt(
        2.0 * math.pi)


def black76_call_put(forward: float, strike: float, t: float, r: float, sigma: float, *,
                     disc: float | None = None) -> tuple[float, float]:
    """Both premiums at one strike and one volatility: the chain generator's hot path, called
    ~140,000 times a synthetic day, hence inlined and given ``disc`` (e^(-rT), shared by every
    strike of a snapshot). The put comes from parity, so the pair satisfies
    C - P = e^(-rT)(F - K) by construction; it is floored at zero against rounding when the put
    is far out of the money."""
    if disc is None:
        disc = math.exp(-r * max(t, 0.0))
    if t <= 0.0 or sigma <= 0.0:
        _check(forward, strike)
        return disc * max(forward - strike, 0.0), disc * max(strike - forward, 0.0)
    sd = sigma * math.sqrt(t)
    d1 = (math.log(forward / strike) + 0.5 * sd * sd) / sd
    call = disc * (forward * 0.5 * math.erfc(-d1 / _SQRT2)
                   - strike * 0.5 * math.erfc((sd - d1) / _SQRT2))
    put = call - disc * (forward - strike)
    return call, max(put, 0.0)
