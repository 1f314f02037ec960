"""Exit signals of an open position."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ruleengine.context import MarkedLeg, ScopeValues, position_base, strategy_values
from ruleengine.events import Contract
from ruleengine.policyset import Level, load_policy_set
from ruleengine.portfolio import LegPosition, Portfolio
from ruleengine.signals import exit_signals
from ruleengine.state import StrategyRun

REPO = Path(__file__).resolve().parents[1]
CONDOR = next(s for s in load_policy_set([REPO / "policies", REPO / "strategies"]).strategies
              if s.id == "iron-condor")  # combined stop and target, exit `false`
NOON = 12 * 3600

legs = st.lists(st.tuples(st.integers(-4, 4).filter(bool),  # lots, signed
                          st.floats(0.05, 500.0),  # average price
                          st.floats(0.05, 500.0)),  # this tick's mark
                min_size=1, max_size=4)
levels = st.tuples(st.sampled_from(["pct", "amount", "points"]), st.floats(0.0, 300.0))


@settings(max_examples=300, deadline=None)
@given(legs=legs, stop=levels, target=levels, trade_pnl=st.floats(-5000.0, 5000.0))
def test_combined_stops_and_targets_fire_exactly_at_their_level(
        legs: list[tuple[int, float, float]], stop: tuple[str, float],
        target: tuple[str, float], trade_pnl: float) -> None:
    """A combined stop or target compares the position's P&L (its % of the premium base, or
    per unit held) with its level; the exit reads the same figures the strategy's rules read
    (strategy.position_pnl, strategy.position_pnl_pct). Checked against the definition: the %
    over position_base of the legs, firing only when that base is positive."""
    spec = dataclasses.replace(CONDOR, stop_loss=Level(kind=stop[0], value=stop[1]),
                               target=Level(kind=target[0], value=target[1]),
                               trail_activate_pct=0.0)
    portfolio = Portfolio(charge_fn=lambda *_: 0.0)
    marked: list[MarkedLeg] = []
    for i, (lots, avg, mark) in enumerate(legs):
        contract = Contract(underlying="NIFTY", kind="OPT", expiry=date(2026, 12, 1),
                            strike=24000.0 + 50 * i, option_type="CE")
        leg = LegPosition(strategy_id=spec.id, leg_id=f"l{i}", contract=contract,
                          qty=lots * 75, avg_price=avg)
        marked.append((leg, mark))
    portfolio.book(spec.id).trade_pnl = trade_pnl
    values = ScopeValues({}, now=None, entered=None, exited=None)  # type: ignore[arg-type]
    strategy_values(values, portfolio, spec.id, 1_000_000.0, marked)

    pnl = 0.0
    for lots, avg, mark in legs:
        pnl += (mark - avg) * (lots * 75)
    pnl += trade_pnl
    base = position_base([leg for leg, _ in marked])
    units = sum(abs(leg.qty) for leg, _ in marked) / len(marked)

    def reached(level: tuple[str, float], adverse: float) -> bool:
        kind, value = level
        if kind == "amount":
            return adverse >= value
        if kind == "pct":
            return base > 0 and adverse / base * 100.0 >= value
        return adverse / units >= value

    want = "stop_loss" if reached(stop, -pnl) else "target" if reached(target, pnl) else None
    signals = exit_signals(StrategyRun(spec=spec), marked, values, NOON, set())
    assert [s.reason for s in signals] == ([want] if want else [])
