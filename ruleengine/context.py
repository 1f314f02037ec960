"""The flat ``{dotted.name: value}`` mappings that expressions read, built once per tick.

A name whose value is unknown (no price yet, no previous close) is left out rather than set to a
placeholder: reading it then fails, and the engine resolves that rule to the safe side. Values
are only those documented in ``names.yaml`` (plus a strategy's ``ind.*``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from .dataquality import DQParams, divergence_pct
from .instruments import Instrument
from .market import (
    MOVE_WINDOWS_MIN,
    SESSION_CLOSE_S,
    SESSION_OPEN_S,
    MarketState,
    UnderlyingState,
    in_session_s,
)
from .portfolio import LegPosition, Portfolio

Values = dict[str, Any]


class ScopeValues(dict[str, Any]):
    """A strategy scope's values: its own names (``strategy.*``, ``position.*``, ``ind.*``)
    held directly, and the underlying's shared values read through rather than copied.

    Four strategies copying a fifty-name dict every tick cost more than the few shared names
    each one actually reads. The two names that move with the clock alone (minutes in the
    trade, minutes since the last exit) are worked out when read, from ``now``, so a kept
    scope costs nothing per tick beyond pointing it at the tick's shared values and time.
    ``get`` is overridden because ``dict.get`` skips ``__missing__``.
    """

    __slots__ = ("base", "entered", "exited", "now")

    def __init__(self, base: Values, now: datetime, entered: datetime | None,
                 exited: datetime | None) -> None:
        super().__init__()
        self.base = base
        self.now = now
        self.entered = entered  # entry of the open position (None when flat)
        self.exited = exited  # the last trade's exit (None before the first)

    def __missing__(self, key: str) -> Any:
        if key in _CLOCK_NAMES:
            then = self.entered if key == "strategy.minutes_in_trade" else self.exited
            if then is None:
                raise KeyError(key)
            return (self.now - then).total_seconds() / 60.0
        return self.base[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


_CLOCK_NAMES = frozenset({"strategy.minutes_in_trade", "strategy.minutes_since_exit"})


_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def session_values(now: datetime, secs: int) -> Values:
    """``session.*`` at ``now``; ``secs`` is its second of the day, worked out once a tick."""
    weekday = now.weekday()
    return {
        "session.time": secs,
        "session.is_open": in_session_s(secs) and weekday < 5,
        "session.minutes_since_open": max(secs - SESSION_OPEN_S, 0) / 60.0,
        "session.minutes_to_close": max(SESSION_CLOSE_S - secs, 0) / 60.0,
        "session.weekday": weekday,
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


_MOVE_NAMES = {m: f"market.move_{m}m_pct" for m in MOVE_WINDOWS_MIN}

# Shared names worked out only when some expression or message of the policy set reads one of
# their group; every other shared name is read by the shipped set and always built.
MARKET_EXTRA = frozenset({"market.atm_strike", "market.range_pct", "market.prev_close",
                          "market.open", "market.day_high", "market.day_low"})
VIX_EXTRA = frozenset({"market.vix_prev_close", "market.vix_change_pct",
                       "market.vix_day_low"})
FEED_EXTRA = frozenset({"feed.chain_age_s", "feed.source", "feed.in_auction", "feed.suspect"})
ACCOUNT_EXTRA = frozenset({"account.capital", "account.equity", "account.realized_pnl",
                           "account.unrealized_pnl", "account.charges", "account.peak_equity",
                           "account.drawdown_pct", "account.open_orders",
                           "account.orders_today"})


@dataclass(frozen=True, slots=True)
class Reads:
    """Which optional shared names the loaded policy set reads. Values are built every tick,
    and a name no expression or message can read is work for nothing: half the shared names,
    for the shipped set. Nothing else reads the values, so leaving those out changes no
    outcome. The default reads everything."""

    moves: tuple[int, ...] = MOVE_WINDOWS_MIN  # the market.move_<N>m_pct windows
    market_extra: bool = True
    vix_extra: bool = True
    feed_extra: bool = True
    account_extra: bool = True

    @classmethod
    def of(cls, names: Collection[str]) -> Reads:
        return cls(moves=tuple(m for m in MOVE_WINDOWS_MIN if _MOVE_NAMES[m] in names),
                   market_extra=not MARKET_EXTRA.isdisjoint(names),
                   vix_extra=not VIX_EXTRA.isdisjoint(names),
                   feed_extra=not FEED_EXTRA.isdisjoint(names),
                   account_extra=not ACCOUNT_EXTRA.isdisjoint(names))


ALL_NAMES = Reads()


def market_values(v: Values, market: MarketState, u: UnderlyingState, inst: Instrument | None,
                  stale: DQParams, secs: int, reads: Reads = ALL_NAMES) -> None:
    """Add ``market.*`` and ``feed.*`` of one underlying to ``v`` (the tick's shared values,
    filled in place rather than merged: merging dicts of fifty names cost more than building
    them). Built on every tick, so written with locals and few calls; each name is still set
    only when its value is known. ``secs`` is ``market.now``'s second of the day; groups of
    names that ``reads`` says nobody reads are left out."""
    now = market.now
    assert now is not None
    spot, prev, high, low = u.spot, u.prev_close, u.high, u.low
    extra = reads.market_extra
    if spot is not None:
        v["market.spot"] = spot
        if extra and inst is not None:
            v["market.atm_strike"] = round(spot / inst.strike_step) * inst.strike_step
        if prev:
            v["market.change_pct"] = (spot - prev) / prev * 100.0
            if extra and high is not None and low is not None:
                v["market.range_pct"] = (high - low) / prev * 100.0
        for minutes in reads.moves:
            move = u.move_pct(minutes)
            if move is not None:
                v[_MOVE_NAMES.get(minutes) or f"market.move_{minutes}m_pct"] = move
    if u.open is not None and prev:
        v["market.gap_pct"] = (u.open - prev) / prev * 100.0
    if extra:
        if prev is not None:
            v["market.prev_close"] = prev
        if u.open is not None:
            v["market.open"] = u.open
        if high is not None:
            v["market.day_high"] = high
        if low is not None:
            v["market.day_low"] = low
    if u.fut is not None:
        v["market.fut"] = u.fut.ltp
    vix = market.vix
    if vix is not None:
        v["market.vix"] = vix
        if reads.vix_extra and market.vix_prev_close:
            v["market.vix_prev_close"] = market.vix_prev_close
            v["market.vix_change_pct"] = (vix / market.vix_prev_close - 1.0) * 100.0
        if market.vix_low:
            if reads.vix_extra:
                v["market.vix_day_low"] = market.vix_low
            v["market.vix_rise_from_low_pct"] = (vix / market.vix_low - 1.0) * 100.0
    spot_ts, feeds = u.spot_ts, u.feeds
    today = now.date()
    spot_today = spot_ts is not None and spot_ts.date() == today
    # a tick from an earlier session ages from today's open: a weekend is not a halt, but no
    # tick for two minutes after the open is silence
    spot_age = None if spot_ts is None else (now - spot_ts).total_seconds() if spot_today \
        else float(max(secs - SESSION_OPEN_S, 0))
    vix_age = None if market.vix_ts is None else (now - market.vix_ts).total_seconds()
    chain_age = None if u.chain_ts is None else (now - u.chain_ts).total_seconds()
    if spot_age is not None:
        v["feed.age_s"] = spot_age
    if vix_age is not None:
        v["feed.vix_age_s"] = vix_age
    limits = stale.thresholds_at(secs)
    v["feed.healthy"] = (spot_today and spot_age is not None
                         and spot_age <= limits.underlying
                         and vix_age is not None and vix_age <= limits.vix)
    sources = feeds.sources
    v["feed.divergence_pct"] = divergence_pct(feeds) if len(sources) > 1 else 0.0
    if reads.feed_extra:
        if chain_age is not None:
            v["feed.chain_age_s"] = chain_age
        if feeds.active is not None:
            v["feed.source"] = feeds.active
        v["feed.in_auction"] = feeds.auction_until is not None and now < feeds.auction_until
        suspect = False
        for track in sources.values():
            if track.suspect is not None:
                suspect = True
                break
        v["feed.suspect"] = suspect
    v["feed.chain_strikes"] = u.chain_strikes
    v["feed.chain_ok"] = (chain_age is not None
                          and chain_age <= limits.options
                          and u.chain_strikes >= stale.min_strikes_each_side)


def expiry_values(u: UnderlyingState | None, inst: Instrument | None, today: date) -> Values:
    expiry = next_expiry(u, inst, today) if u is not None else None
    if expiry is None:
        return {}
    return {"session.is_expiry_day": expiry == today,
            "session.days_to_expiry": (expiry - today).days}


ACCOUNT_NAMES = ("account.capital", "account.equity", "account.day_pnl",
                 "account.day_pnl_pct", "account.realized_pnl", "account.unrealized_pnl",
                 "account.charges", "account.peak_equity", "account.drawdown_pct",
                 "account.open_positions", "account.open_orders", "account.trades_today",
                 "account.orders_today", "account.consecutive_losses", "operator.kill_switch")


def account_values(v: Values, portfolio: Portfolio, capital: float, unrealized: float,
                   peak_equity: float, open_positions: int, open_orders: int,
                   orders_today: int, kill_switch: bool, reads: Reads = ALL_NAMES) -> float:
    """Add ``account.*`` (the names of ``ACCOUNT_NAMES`` that ``reads`` asks for) to ``v``, in
    place; returns the peak equity, tracked whether or not a rule reads it."""
    day_pnl = portfolio.realized - portfolio.charges + unrealized
    equity = capital + day_pnl
    peak = max(peak_equity, equity)
    v["account.day_pnl"] = day_pnl
    v["account.day_pnl_pct"] = day_pnl / capital * 100.0
    v["account.open_positions"] = open_positions
    v["account.trades_today"] = portfolio.trades_today
    v["account.consecutive_losses"] = portfolio.consecutive_losses
    v["operator.kill_switch"] = kill_switch
    if reads.account_extra:
        v["account.capital"] = capital
        v["account.equity"] = equity
        v["account.realized_pnl"] = portfolio.realized - portfolio.charges
        v["account.unrealized_pnl"] = unrealized
        v["account.charges"] = portfolio.charges
        v["account.peak_equity"] = peak
        v["account.drawdown_pct"] = max(peak - equity, 0.0) / capital * 100.0
        v["account.open_orders"] = open_orders
        v["account.orders_today"] = orders_today
    return peak


MarkedLeg = tuple[LegPosition, float | None]  # an open leg and this tick's mark of it


def strategy_values(v: Values, portfolio: Portfolio, strategy_id: str, capital: float,
                    marked: list[MarkedLeg]) -> None:
    """Add ``strategy.*`` and ``position.*`` of one strategy to ``v``, in place; ``marked``
    are its open legs, each with this tick's mark (worked out once per tick, however many
    stages read it). The minutes in and since a trade are :class:`ScopeValues`' own."""
    book = portfolio.book(strategy_id)
    unrealized = 0.0
    for leg, mark in marked:
        unrealized += leg.unrealized(mark)
    day_pnl = book.realized - book.charges + unrealized
    peak = book.peak_pnl = max(book.peak_pnl, day_pnl)  # tracked whenever a rule reads it
    v["strategy.capital"] = capital
    v["strategy.day_pnl"] = day_pnl
    v["strategy.day_pnl_pct"] = day_pnl / capital * 100.0 if capital else 0.0
    v["strategy.drawdown_pct"] = (peak - day_pnl) / capital * 100.0 if capital else 0.0
    v["strategy.trades_today"] = book.trades_today
    v["strategy.consecutive_losses"] = book.consecutive_losses
    v["strategy.in_position"] = bool(marked)
    v["strategy.open_legs"] = len(marked)
    v["strategy.reentries_today"] = book.reentries_today
    if marked:
        position_pnl = unrealized + book.trade_pnl
        base = position_base([leg for leg, _ in marked])
        v["strategy.position_pnl"] = position_pnl
        if base > 0:
            v["strategy.position_pnl_pct"] = position_pnl / base * 100.0
        v.update(position_values(marked))


def position_values(marked: list[MarkedLeg]) -> Values:
    """``position.*`` in a strategy's scope: its open leg with the worst P&L (for a one-leg
    strategy, simply its leg), so an exit condition can watch the leg nearest its stop."""
    worst: tuple[float, LegPosition, float] | None = None
    for leg, mark in marked:
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
    net = 0.0
    gross = 0.0
    for p in legs:
        value = p.avg_price * p.qty
        net += value
        gross += abs(value)
    net = abs(net)
    return net if net > 0.05 * gross else gross
