"""The flat ``{dotted.name: value}`` mappings that expressions read, built once per tick.

A name whose value is unknown (no price yet, no previous close) is left out rather than set to a
placeholder: reading it then fails, and the engine resolves that rule to the safe side. Values
are only those documented in ``names.yaml`` (plus a strategy's ``ind.*``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from .dataquality import DQParams, divergence_pct
from .events import Contract
from .instruments import Instrument
from .market import (
    MOVE_WINDOWS_MIN,
    SESSION_CLOSE_S,
    SESSION_OPEN_S,
    MarketState,
    UnderlyingState,
    in_session,
    seconds_of_day,
)
from .portfolio import LegPosition, Portfolio

Values = dict[str, Any]


class LazyValues(dict[str, Any]):
    """A scope's values, computed a group at a time on first read.

    Compiled expressions read ``n["market.vix"]``; a dict subclass with ``__missing__`` keeps
    that a plain dict lookup once loaded, and computes a group (``market``, ``account``, ...) only
    when some rule or strategy actually reads one of its names. A name the group cannot supply
    raises KeyError, which the expression layer reports as a missing value (the safe side).
    """

    __slots__ = ("_base", "_loaded", "_loaders")

    def __init__(self, loaders: dict[str, Callable[[], Values]],
                 base: Values | None = None) -> None:
        super().__init__()
        self._loaders = loaders
        self._loaded: set[str] = set()
        self._base = base or {}

    def __missing__(self, key: str) -> Any:
        base = self._base
        if key in base:  # shared values are read through, never copied
            return base[key]
        group = key.partition(".")[0]
        if group not in self._loaded:
            self._loaded.add(group)
            loader = self._loaders.get(group)
            if loader is not None:
                self.update(loader())
                if key in self:
                    return dict.__getitem__(self, key)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _session_age(now: datetime, then: datetime | None) -> float | None:
    """Age of the last tick, counted from today's open when it is from an earlier session: a
    weekend is not a halt, but no tick for two minutes after the open is silence."""
    if then is not None and then.date() != now.date():
        return float(max(seconds_of_day(now) - SESSION_OPEN_S, 0))
    return _age(now, then)


def _age(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else (now - then).total_seconds()


def session_values(now: datetime) -> Values:
    secs = seconds_of_day(now)
    return {
        "session.time": secs,
        "session.is_open": in_session(now) and now.weekday() < 5,
        "session.minutes_since_open": max(secs - SESSION_OPEN_S, 0) / 60.0,
        "session.minutes_to_close": max(SESSION_CLOSE_S - secs, 0) / 60.0,
        "session.weekday": now.weekday(),
    }


def next_expiry(u: UnderlyingState, inst: Instrument | None, today: date) -> date | None:
    """Nearest listed expiry on or after today: from the chain when seen, else the pattern."""
    for e in u.expiries:
        if e >= today:
            return e
    if inst is None:
        return None
    weekly, monthly = inst.expiry_pattern(today)
    day = weekly if weekly != "none" else monthly
    target = _WEEKDAYS.index(day)
    if weekly != "none":
        return today + timedelta(days=(target - today.weekday()) % 7)
    # last such weekday of this month, or of next month once it has passed
    for months_ahead in (0, 1):
        y, m = today.year + (today.month + months_ahead - 1) // 12, \
            (today.month + months_ahead - 1) % 12 + 1
        last = date(y + (m == 12), m % 12 + 1, 1) - timedelta(days=1)
        exp = last - timedelta(days=(last.weekday() - target) % 7)
        if exp >= today:
            return exp
    return None


def market_values(market: MarketState, u: UnderlyingState, inst: Instrument | None,
                  stale: DQParams, moves: tuple[int, ...] = MOVE_WINDOWS_MIN) -> Values:
    now = market.now
    assert now is not None
    v: Values = {}
    spot = u.spot
    if spot is not None:
        v["market.spot"] = spot
        if inst is not None:
            v["market.atm_strike"] = round(spot / inst.strike_step) * inst.strike_step
        if u.prev_close:
            v["market.change_pct"] = (spot - u.prev_close) / u.prev_close * 100.0
            if u.high is not None and u.low is not None:
                v["market.range_pct"] = (u.high - u.low) / u.prev_close * 100.0
        for minutes in moves:
            move = u.move_pct(minutes)
            if move is not None:
                v[f"market.move_{minutes}m_pct"] = move
    if u.prev_close is not None:
        v["market.prev_close"] = u.prev_close
    if u.open is not None:
        v["market.open"] = u.open
        if u.prev_close:
            v["market.gap_pct"] = (u.open - u.prev_close) / u.prev_close * 100.0
    if u.high is not None:
        v["market.day_high"] = u.high
    if u.low is not None:
        v["market.day_low"] = u.low
    if u.fut is not None:
        v["market.fut"] = u.fut.ltp
    if market.vix is not None:
        v["market.vix"] = market.vix
        if market.vix_prev_close:
            v["market.vix_prev_close"] = market.vix_prev_close
            v["market.vix_change_pct"] = (market.vix / market.vix_prev_close - 1.0) * 100.0
        if market.vix_low:
            v["market.vix_day_low"] = market.vix_low
            v["market.vix_rise_from_low_pct"] = (market.vix / market.vix_low - 1.0) * 100.0
    spot_age = _session_age(now, u.spot_ts)
    vix_age = _age(now, market.vix_ts)
    chain_age = _age(now, u.chain_ts)
    if spot_age is not None:
        v["feed.age_s"] = spot_age
    if vix_age is not None:
        v["feed.vix_age_s"] = vix_age
    if chain_age is not None:
        v["feed.chain_age_s"] = chain_age
    v["feed.healthy"] = (u.spot_ts is not None and u.spot_ts.date() == now.date()
                         and spot_age is not None and spot_age <= stale.stale_s("underlying", now)
                         and vix_age is not None and vix_age <= stale.stale_s("vix", now))
    if u.feeds.active is not None:
        v["feed.source"] = u.feeds.active
    v["feed.divergence_pct"] = divergence_pct(u.feeds)
    v["feed.in_auction"] = u.feeds.auction_until is not None and now < u.feeds.auction_until
    v["feed.suspect"] = any(t.suspect is not None for t in u.feeds.sources.values())
    v["feed.chain_strikes"] = u.chain_strikes
    v["feed.chain_ok"] = (chain_age is not None and chain_age <= stale.stale_s("options", now)
                          and u.chain_strikes >= stale.min_strikes_each_side)
    return v


def expiry_values(u: UnderlyingState | None, inst: Instrument | None, today: date) -> Values:
    expiry = next_expiry(u, inst, today) if u is not None else None
    if expiry is None:
        return {}
    return {"session.is_expiry_day": expiry == today,
            "session.days_to_expiry": (expiry - today).days}


def account_values(portfolio: Portfolio, capital: float, unrealized: float,
                   peak_equity: float, open_orders: int, orders_today: int,
                   kill_switch: bool) -> Values:
    day_pnl = portfolio.realized - portfolio.charges + unrealized
    equity = capital + day_pnl
    return {
        "account.capital": capital,
        "account.equity": equity,
        "account.day_pnl": day_pnl,
        "account.day_pnl_pct": day_pnl / capital * 100.0,
        "account.realized_pnl": portfolio.realized - portfolio.charges,
        "account.unrealized_pnl": unrealized,
        "account.charges": portfolio.charges,
        "account.peak_equity": max(peak_equity, equity),
        "account.drawdown_pct": max(max(peak_equity, equity) - equity, 0.0) / capital * 100.0,
        "account.open_positions": len(portfolio.open_legs()),
        "account.open_orders": open_orders,
        "account.trades_today": portfolio.trades_today,
        "account.orders_today": orders_today,
        "account.consecutive_losses": portfolio.consecutive_losses,
        "operator.kill_switch": kill_switch,
    }


def strategy_values(portfolio: Portfolio, strategy_id: str, capital: float,
                    legs: list[LegPosition], marks: Callable[[Contract], float | None],
                    entry_ts: datetime | None, now: datetime) -> Values:
    book = portfolio.book(strategy_id)
    unrealized = sum(p.unrealized(marks(p.contract)) for p in legs)
    day_pnl = book.realized - book.charges + unrealized
    peak = book.peak_pnl = max(book.peak_pnl, day_pnl)  # tracked whenever a rule reads it
    v: Values = {
        "strategy.capital": capital,
        "strategy.day_pnl": day_pnl,
        "strategy.day_pnl_pct": day_pnl / capital * 100.0 if capital else 0.0,
        "strategy.drawdown_pct": (peak - day_pnl) / capital * 100.0 if capital else 0.0,
        "strategy.trades_today": book.trades_today,
        "strategy.consecutive_losses": book.consecutive_losses,
        "strategy.in_position": bool(legs),
        "strategy.open_legs": len(legs),
        "strategy.reentries_today": book.reentries_today,
    }
    if legs:
        position_pnl = unrealized + book.trade_pnl
        base = position_base(legs)
        v["strategy.position_pnl"] = position_pnl
        if base > 0:
            v["strategy.position_pnl_pct"] = position_pnl / base * 100.0
        if entry_ts is not None:
            v["strategy.minutes_in_trade"] = (now - entry_ts).total_seconds() / 60.0
        v.update(position_values(legs, marks))
    if book.last_exit_ts is not None:
        v["strategy.minutes_since_exit"] = (now - book.last_exit_ts).total_seconds() / 60.0
    return v


def position_values(legs: list[LegPosition],
                    marks: Callable[[Contract], float | None]) -> Values:
    """``position.*`` in a strategy's scope: its open leg with the worst P&L (for a one-leg
    strategy, simply its leg), so an exit condition can watch the leg nearest its stop."""
    worst: tuple[float, LegPosition, float] | None = None
    for leg in legs:
        mark = marks(leg.contract)
        if mark is None:
            continue
        pnl = leg.unrealized(mark)
        if worst is None or pnl < worst[0]:
            worst = (pnl, leg, mark)
    if worst is None:
        return {}
    pnl, leg, mark = worst
    v: Values = {"position.qty": leg.qty, "position.avg_price": leg.avg_price,
                 "position.ltp": mark, "position.pnl": pnl}
    premium = abs(leg.avg_price * leg.qty)
    if premium > 0:
        v["position.pnl_pct"] = pnl / premium * 100.0
    return v


def position_base(legs: list[LegPosition]) -> float:
    """Premium a position's percentages are measured against: the net credit or debit, or the
    gross premium when the legs net out to nearly nothing."""
    net = abs(sum(p.avg_price * p.qty for p in legs))
    gross = sum(abs(p.avg_price * p.qty) for p in legs)
    return net if net > 0.05 * gross else gross
