"""Stage 4 — strategies: entry and exit signals from strategy YAML.

Indicators update on closed bars only, built here from the ticks of each strategy's timeframe,
so a signal can only use data that existed at the time (no look-ahead by construction). Exits are
checked before entries and never depend on the trading state: a halted strategy still takes its
stop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from .context import MarkedLeg
from .errors import EvaluationError
from .indicators import Bar, make_indicator
from .policyset import Level
from .portfolio import Portfolio
from .state import StrategyRun


@dataclass(frozen=True, slots=True, kw_only=True)
class Signal:
    strategy_id: str
    kind: str  # entry | exit
    reason: str  # entry | stop_loss | target | trailing_stop | exit_condition | time_exit
    legs: tuple[str, ...] = ()
    inputs: dict[str, Any] = field(default_factory=dict)


def make_run_indicators(run: StrategyRun) -> None:
    run.indicators = {i.name: make_indicator(i.type, i.period, bar_seconds=run.spec.timeframe_s)
                      for i in run.spec.indicators}
    # bars are built only for the series some indicator reads ("spot" before "fut")
    run.sources = tuple(s for s in ("spot", "fut") if any(i.source == s
                                                           for i in run.spec.indicators))


def update_bars(run: StrategyRun, day_s: int, secs: int, spot: float | None,
                fut: float | None) -> None:
    """Fold the latest prices into each source's current bar; close bars at bucket edges.
    ``day_s`` is the day's ordinal in seconds and ``secs`` the second of the day, worked out
    once per tick for every strategy."""
    tf = run.spec.timeframe_s
    bucket = day_s + secs - secs % tf
    bars = run.bars
    for source in run.sources:
        price = spot if source == "spot" else fut
        if price is None:
            continue
        current = bars.get(source)
        if current is None or current[0] != bucket:
            if current is not None:
                _close_bar(run, source, current[0], current[1])
            bars[source] = (bucket, [price, price, price, price])
        else:
            ohlc = current[1]
            if price > ohlc[1]:
                ohlc[1] = price
            if price < ohlc[2]:
                ohlc[2] = price
            ohlc[3] = price


def _close_bar(run: StrategyRun, source: str, bucket: int, ohlc: list[float]) -> None:
    day, secs = divmod(bucket, 86400)
    start = datetime.combine(date.fromordinal(day), time()) + timedelta(seconds=secs)
    bar = Bar(ts=start, open=ohlc[0], high=ohlc[1], low=ohlc[2], close=ohlc[3])
    run.ind_changes += 1
    for spec in run.spec.indicators:
        if spec.source == source:
            value = run.indicators[spec.name].update(bar)
            if value is None:
                run.ind_values.pop(f"ind.{spec.name}", None)
            else:
                run.ind_values[f"ind.{spec.name}"] = value


def exit_signals(run: StrategyRun, marked: list[MarkedLeg], values: dict[str, Any],
                 secs: int, exiting: set[str]) -> list[Signal]:
    """Exits for an open position, most urgent first; legs already exiting are left alone.
    ``marked`` are the strategy's open legs with this tick's marks, ``secs`` the tick's second
    of the day. Runs every tick for every open position, so leg lists are built only when an
    exit fires, and combined levels read the P&L figures already in ``values``."""
    spec = run.spec
    live = [pm for pm in marked if pm[0].leg_id not in exiting] if exiting else marked
    if not live:
        return []
    sid = spec.id
    if secs >= spec.time_exit_s:
        return [Signal(strategy_id=sid, kind="exit", reason="time_exit",
                       legs=tuple(p.leg_id for p, _ in live))]
    if spec.leg_levels:
        out: list[Signal] = []
        by_id = spec.legs_by_id
        for p, mark in live:
            if mark is None:
                continue
            leg = by_id.get(p.leg_id)
            if leg is None:
                continue
            move = (mark - p.avg_price) * (1 if p.qty > 0 else -1)  # favourable move per unit
            pnl = move * abs(p.qty)
            if leg.stop_loss is not None and _breached(leg.stop_loss, -move, -pnl,
                                                       p.avg_price):
                out.append(Signal(strategy_id=sid, kind="exit", reason="stop_loss",
                                  legs=(p.leg_id,), inputs={"leg": p.leg_id,
                                                            "avg_price": p.avg_price,
                                                            "mark": mark}))
            elif leg.target is not None and _breached(leg.target, move, pnl, p.avg_price):
                out.append(Signal(strategy_id=sid, kind="exit", reason="target",
                                  legs=(p.leg_id,), inputs={"leg": p.leg_id,
                                                            "avg_price": p.avg_price,
                                                            "mark": mark}))
        if out:
            return out
    if spec.stop_loss is not None or spec.target is not None:
        # the position's P&L and its % of the premium base, exactly as the strategy's rules
        # read them (the % is absent when the base is not positive)
        pnl_total = values.get("strategy.position_pnl", 0.0)
        pct = values.get("strategy.position_pnl_pct")
        if spec.stop_loss is not None and _combined(spec.stop_loss, -pnl_total,
                                                    None if pct is None else -pct, marked):
            return [Signal(strategy_id=sid, kind="exit", reason="stop_loss",
                           legs=tuple(p.leg_id for p, _ in live),
                           inputs={"position_pnl": pnl_total})]
        if spec.target is not None and _combined(spec.target, pnl_total, pct, marked):
            return [Signal(strategy_id=sid, kind="exit", reason="target",
                           legs=tuple(p.leg_id for p, _ in live),
                           inputs={"position_pnl": pnl_total})]
    if spec.trail_activate_pct > 0:
        pct = values.get("strategy.position_pnl_pct")
        if pct is not None:
            run.best_pnl_pct = pct if run.best_pnl_pct is None else max(run.best_pnl_pct, pct)
            if run.best_pnl_pct >= spec.trail_activate_pct and \
                    pct <= run.best_pnl_pct - spec.trail_pct:
                return [Signal(strategy_id=sid, kind="exit", reason="trailing_stop",
                               legs=tuple(p.leg_id for p, _ in live),
                               inputs={"position_pnl_pct": pct,
                                       "best_pnl_pct": run.best_pnl_pct})]
    if spec.exit.verdict == "never":  # e.g. `exit: false`, a strategy left to its stops
        return []
    try:
        if spec.exit.evaluate(values):
            return [Signal(strategy_id=sid, kind="exit", reason="exit_condition",
                           legs=tuple(p.leg_id for p, _ in live),
                           inputs=spec.exit.inputs(values))]
    except EvaluationError:
        pass  # an exit condition that cannot be read does not force an exit; stops still work
    return []


def _breached(level: Level, adverse_points: float, adverse_amount: float, avg: float) -> bool:
    if level.kind == "points":
        return adverse_points >= level.value
    if level.kind == "pct":
        return avg > 0 and adverse_points / avg * 100.0 >= level.value
    return adverse_amount >= level.value


def _combined(level: Level, adverse_amount: float, adverse_pct: float | None,
              marked: list[MarkedLeg]) -> bool:
    """A combined stop or target: ``adverse_pct`` is the adverse move as a % of the premium
    base (None when the base is not positive, so a % level cannot be reached)."""
    if level.kind == "amount":
        return adverse_amount >= level.value
    if level.kind == "pct":
        return adverse_pct is not None and adverse_pct >= level.value
    units = sum(abs(p.qty) for p, _ in marked) / max(len(marked), 1)
    return units > 0 and adverse_amount / units >= level.value


def entry_signal(run: StrategyRun, portfolio: Portfolio, values: dict[str, Any],
                 now: datetime, secs: int) -> Signal | str | None:
    """An entry signal, or a reason code why not (for the edges worth recording), or None.
    ``secs`` is ``now``'s second of the day."""
    spec = run.spec
    if not spec.enabled or not (spec.entry_start_s <= secs <= spec.entry_end_s):
        return None
    book = portfolio.book(spec.id)
    if book.trades_today >= spec.max_trades_per_day:
        return None
    reentry = book.last_exit_reason in ("stop_loss", "trailing_stop")
    if reentry:
        if not spec.reentry_enabled or book.reentries_today >= spec.max_reentries:
            return None
        assert book.last_exit_ts is not None
        if (now - book.last_exit_ts).total_seconds() < spec.reentry_cooldown_s:
            return None
    try:
        fire = bool(spec.entry.evaluate(values))
    except EvaluationError as exc:
        return f"entry-unevaluable: {exc}"
    if not fire:
        return None
    return Signal(strategy_id=spec.id, kind="entry", reason="reentry" if reentry else "entry",
                  inputs=spec.entry.inputs(values))
