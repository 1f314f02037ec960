"""Ticks per second and per-tick latency of the engine over a full synthetic session.

A session of 1-second ticks (09:15:00-15:30:00, 22,501 ticks plus the previous-close event)
from the seeded `calm` scenario, the four shipped strategies and the default risk set. Broker
results are fed back as they would be in a run (paper broker), but the audit store is left out:
this measures the engine's tick, not SQLite. Run once with guards on and once with guards off
for the ratio. The first line says which build ran: the mypyc-compiled core that `pip install`
builds when it can, or pure Python (`RULEENGINE_PURE=1 python3 benchmarks/engine.py` for the
pure figures from a compiled install).

    python3 benchmarks/engine.py            # the figures
    python3 benchmarks/engine.py --profile  # where a tick's time goes (cProfile, guards on)
"""

from __future__ import annotations

import cProfile
import pstats
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.factory import paper_broker, synthetic_feed  # noqa: E402
from ruleengine import core_build  # noqa: E402
from ruleengine.engine import Engine  # noqa: E402
from ruleengine.events import Event  # noqa: E402
from ruleengine.policyset import load_policy_set  # noqa: E402
from ruleengine.runner import batches, make_charge_fn  # noqa: E402

TARGET_TICKS_PER_S = 20_000  # issue #3, on a 2-core machine
TARGET_P99_S = 1e-3


def measure(guards: bool, ticks: list[list[Event]],
            profiler: cProfile.Profile | None = None) -> tuple[float, list[float], int]:
    policy = load_policy_set([ROOT / "policies", ROOT / "strategies"])
    engine = Engine(policy, charge_fn=make_charge_fn(policy), guards=guards)
    broker = paper_broker(policy=policy, seed=1, capital=policy.capital)
    latencies: list[float] = []
    orders = 0
    clock = time.perf_counter
    start = clock()
    for batch in ticks:
        now = batch[0].ts
        inbound = [*broker.poll(now), *batch]
        for event in batch:
            broker.on_market(event)
        t0 = clock()
        result = engine.tick(inbound) if profiler is None else \
            profiler.runcall(engine.tick, inbound)
        latencies.append(clock() - t0)
        for order in result.orders:
            broker.place(order, now)
            orders += 1
        for cid in result.cancels:
            broker.cancel(cid, now)
    return clock() - start, latencies, orders


def profile(ticks: list[list[Event]]) -> None:
    """The functions a tick spends its time in (the engine's tick only, not the paper broker),
    to pick the next thing to make cheaper."""
    profiler = cProfile.Profile()
    measure(True, ticks, profiler)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main() -> None:
    policy = load_policy_set([ROOT / "policies", ROOT / "strategies"])
    events = list(synthetic_feed("calm", seed=1, policy=policy).events())
    ticks = list(batches(iter(events)))
    if "--profile" in sys.argv[1:]:
        profile(ticks)
        return
    print(f"build: {core_build().describe()}")
    print(f"session: {len(ticks):,} ticks, {len(events):,} events "
          f"({len(policy.strategies)} strategies, {len(policy.rules)} rules)")
    results: dict[bool, tuple[float, float]] = {}
    for guards in (True, False):
        measure(guards, ticks[:2000])  # warm-up
        _wall, lat, orders = measure(guards, ticks)
        engine_s = sum(lat)
        lat.sort()
        q = statistics.quantiles(lat, n=100)
        results[guards] = (len(ticks) / engine_s, q[98])
        label = "guards on " if guards else "guards off"
        print(f"{label}: {len(ticks) / engine_s:>9,.0f} ticks/s   p50 {q[49] * 1e6:7.1f} µs   "
              f"p99 {q[98] * 1e6:7.1f} µs   max {lat[-1] * 1e3:6.2f} ms   orders {orders}")
    print(f"guards cost: {results[False][0] / results[True][0]:.2f}x "
          "(ticks/s without guards / with guards)")
    rate, p99 = results[True]
    verdict = "met" if rate >= TARGET_TICKS_PER_S and p99 < TARGET_P99_S else "NOT met"
    print(f"target: >= {TARGET_TICKS_PER_S:,} ticks/s and p99 < {TARGET_P99_S * 1e3:g} ms "
          f"with guards on: {verdict} on this run")


if __name__ == "__main__":
    main()
