"""How long the full pre-trade check chain takes per order.

Run: ``python benchmarks/checks.py [--number N]``. Prints microseconds per order for
:func:`ruleengine.checks.check_order` under the shipped ``policies/`` (order_checks, risk limits,
instruments), in a busy context: 8 orders working at the broker and 300 sent earlier in the day
(the last few inside the duplicate window). Four cases: an ordinary entry that passes every
check (the full chain — the figure the target is about), an entry above the freeze quantity
(sliced), an exit, and an entry refused by the first validity check. The target is under 50 µs
per order for the full chain, so checks never become the reason a tick is slow.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from datetime import date, datetime, timedelta
from pathlib import Path

from ruleengine.checks import CheckConfig, CheckContext, Sent, check_order
from ruleengine.contracts import OrderRequest
from ruleengine.events import Contract, Quote
from ruleengine.policyset import load_policy_set

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 3, 10, 10, 30, 0)
EXPIRY = date(2026, 3, 17)


def contract(strike: float, kind: str = "CE") -> Contract:
    return Contract(underlying="NIFTY", kind="OPT", expiry=EXPIRY, strike=strike,
                    option_type=kind)  # type: ignore[arg-type]


def order(cid: str, c: Contract, side: str, qty: int, limit: float,
          purpose: str = "entry", strategy: str = "bench") -> OrderRequest:
    return OrderRequest(client_id=cid, contract=c, side=side, qty=qty,  # type: ignore[arg-type]
                        order_type="LIMIT", limit_price=limit,
                        purpose=purpose, strategy_id=strategy, leg_id="leg")  # type: ignore[arg-type]


def per_call_us(fn: object, number: int) -> float:
    """Best of five runs, in microseconds per call."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--number", type=int, default=20_000, help="orders per timing run")
    args = parser.parse_args(argv)
    policy = load_policy_set([ROOT / "policies"])
    cfg = CheckConfig.from_policy_set(policy)
    chain = [contract(24000.0 + 50 * i, kind) for i in range(-10, 11) for kind in ("CE", "PE")]
    quotes = {c: Quote(ts=NOW, contract=c, ltp=100.0 + i, bid=99.5 + i, ask=100.5 + i,
                       bid_qty=600, ask_qty=600) for i, c in enumerate(chain)}
    working = tuple(Sent(request=order(f"rew{i:014d}", chain[i], "SELL", 65, 150.0 + i,
                                       strategy=f"s{i}"), sent_ts=NOW - timedelta(seconds=20))
                    for i in range(8))
    recent = tuple(Sent(request=order(f"rer{i:014d}", chain[i % len(chain)], "BUY", 65, 100.0,
                                      strategy=f"r{i}"),
                        sent_ts=NOW - timedelta(seconds=300 - i)) for i in range(300))
    ids = {s.request.client_id: s for s in recent}
    ctx = CheckContext(config=cfg, now=NOW, quotes=quotes, open_orders=working, recent=recent,
                       client_ids=ids)
    target = chain[20]
    ltp = quotes[target].ltp
    cases = {
        "entry, full chain": order("re00000000000001", target, "BUY", 130, ltp + 1.5),
        "entry, sliced (30 lots)": order("re00000000000002", target, "BUY", 1950, ltp + 1.5),
        "exit": order("re00000000000003", target, "SELL", 130, ltp - 2.0, purpose="exit"),
        "entry, refused early": order("re00000000000004", target, "BUY", 100, ltp + 1.5),
    }
    # the sliced case needs ceilings above the freeze quantity, as a desk trading size would set
    big = CheckConfig.from_policy({"limits": {"NIFTY": {"max_lots": 40, "max_qty": 2600}},
                                   "max_option_value": 1e7, "max_premium_at_risk": 1e7},
                                  instruments=policy.instruments)
    big_ctx = CheckContext(config=big, now=NOW, quotes=quotes, open_orders=working,
                           recent=recent, client_ids=ids)
    print(f"Python {sys.version.split()[0]}; best of 5 runs; µs per order "
          f"({len(working)} working orders, {len(recent)} sent today)")
    ok = True
    for label, o in cases.items():
        c = big_ctx if "sliced" in label else ctx
        result = check_order(o, c)
        expect_ok = "refused" not in label
        assert result.approved == expect_ok, (label, result)
        us = per_call_us(lambda o=o, c=c: check_order(o, c), args.number)
        extra = f"  -> {len(result.orders)} orders" if result.approved else \
            f"  -> {result.code}"
        print(f"{label:<26} {us:>8.2f}{extra}")
        if label == "entry, full chain":
            ok = us < 50.0
    print("target (full chain < 50 µs per order):", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
