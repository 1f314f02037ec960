"""Stage 2 — positions and P&L, built only from fills the broker reported.

Positions change on fills, never on intentions, so a partially filled order leaves exactly the
position the broker holds. P&L is after charges: the loss limit a trader sets is about money
that actually leaves the account.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from .contracts import OrderRequest
from .events import Contract, OrderFilled

#: (trade date, contract, side, qty, price) -> total charges in INR for that fill.
ChargeFn = Callable[[date, Contract, str, int, float], float]


@dataclass(slots=True)
class LegPosition:
    strategy_id: str
    leg_id: str
    contract: Contract
    qty: int = 0  # signed
    avg_price: float = 0.0
    realized: float = 0.0  # before charges
    charges: float = 0.0
    entry_value: float = 0.0  # |qty| * avg price at the time the position was opened

    def fill(self, side: str, qty: int, price: float) -> float:
        """Apply a fill; returns the realized P&L (before charges) of any closed part."""
        signed = qty if side == "BUY" else -qty
        realized = 0.0
        if self.qty == 0 or (self.qty > 0) == (signed > 0):
            total = abs(self.qty) + qty
            self.avg_price = (self.avg_price * abs(self.qty) + price * qty) / total
            self.qty += signed
            self.entry_value = abs(self.qty) * self.avg_price
        else:
            closing = min(qty, abs(self.qty))
            direction = 1 if self.qty > 0 else -1
            realized = (price - self.avg_price) * closing * direction
            self.qty += signed
            if self.qty == 0:
                self.avg_price = 0.0
            elif (self.qty > 0) != (direction > 0):  # flipped through zero
                self.avg_price = price
                self.entry_value = abs(self.qty) * price
        self.realized += realized
        return realized

    def unrealized(self, mark: float | None) -> float:
        if self.qty == 0 or mark is None:
            return 0.0
        return (mark - self.avg_price) * self.qty


@dataclass(slots=True)
class StrategyBook:
    """Per-strategy day counters the risk rules and re-entry logic read."""

    realized: float = 0.0
    charges: float = 0.0
    trades_today: int = 0
    reentries_today: int = 0
    consecutive_losses: int = 0
    peak_pnl: float = 0.0
    last_exit_ts: datetime | None = None
    last_exit_reason: str = ""
    trade_pnl: float = 0.0  # realized P&L of the open trade so far (partial exits)


@dataclass(slots=True)
class Portfolio:
    charge_fn: ChargeFn
    legs: dict[tuple[str, str], LegPosition] = field(default_factory=dict)
    books: dict[str, StrategyBook] = field(default_factory=dict)
    realized: float = 0.0
    charges: float = 0.0
    consecutive_losses: int = 0
    trades_today: int = 0
    fills: list[tuple[OrderFilled, OrderRequest, float]] = field(default_factory=list)
    # Bumped by every method below that changes a leg or a book. The engine keeps each
    # strategy's values until this (or a mark) moves, so whatever those values are made of
    # changes only through these methods. Two book fields are not read by them: the peak
    # P&L (raised as the values are worked out) and the last exit reason (read by re-entry).
    revision: int = 0

    def book(self, strategy_id: str) -> StrategyBook:
        b = self.books.get(strategy_id)
        if b is None:
            b = self.books[strategy_id] = StrategyBook()
        return b

    def apply_fill(self, fill: OrderFilled, order: OrderRequest) -> float:
        """Book one fill; returns its charges."""
        key = (order.strategy_id, order.leg_id)
        leg = self.legs.get(key)
        if leg is None:
            leg = self.legs[key] = LegPosition(strategy_id=order.strategy_id,
                                               leg_id=order.leg_id, contract=order.contract)
        charges = self.charge_fn(fill.ts.date(), order.contract, order.side, fill.qty,
                                 fill.price)
        realized = leg.fill(order.side, fill.qty, fill.price)
        leg.charges += charges
        book = self.book(order.strategy_id)
        book.realized += realized
        book.trade_pnl += realized - charges
        book.charges += charges
        self.realized += realized
        self.charges += charges
        self.fills.append((fill, order, charges))
        self.revision += 1
        return charges

    def count_entry(self, strategy_id: str, *, reentry: bool) -> None:
        """A strategy opened a trade: count it against the day's limits."""
        book = self.book(strategy_id)
        book.trades_today += 1
        self.trades_today += 1
        if reentry:
            book.reentries_today += 1
        book.last_exit_reason = ""
        self.revision += 1

    def new_day(self) -> None:
        """Zero the day's P&L and counters; loss streaks and open legs carry over."""
        self.realized = self.charges = 0.0
        self.trades_today = 0
        for book in self.books.values():
            book.realized = book.charges = 0.0
            book.trades_today = book.reentries_today = 0
            book.peak_pnl = 0.0
        self.revision += 1

    def open_legs(self, strategy_id: str | None = None) -> list[LegPosition]:
        return [p for p in self.legs.values()
                if p.qty != 0 and (strategy_id is None or p.strategy_id == strategy_id)]

    def unrealized(self, marks: Callable[[Contract], float | None],
                   legs: Iterable[LegPosition] | None = None) -> float:
        return sum(p.unrealized(marks(p.contract)) for p in
                   (self.open_legs() if legs is None else legs))

    def close_trade(self, strategy_id: str, ts: datetime, reason: str) -> float:
        """Called when a strategy becomes flat: count the trade's result for loss streaks."""
        book = self.book(strategy_id)
        pnl = book.trade_pnl
        if pnl < 0:
            book.consecutive_losses += 1
            self.consecutive_losses += 1
        else:
            book.consecutive_losses = 0
            self.consecutive_losses = 0
        book.trade_pnl = 0.0
        book.last_exit_ts = ts
        book.last_exit_reason = reason
        self.revision += 1
        return pnl
