"""Everything that flows into the engine: market data, broker results, timers, operator commands.

Events are frozen, slotted, keyword-only dataclasses so a stream can be recorded, replayed and
compared byte for byte. Every event carries ``ts``, the exchange time it describes, as a naive
``datetime`` in IST (Asia/Kolkata): the engine's only clock. Times are never read from the machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

OptionType = Literal["CE", "PE"]
Side = Literal["BUY", "SELL"]


class _HashSlot:
    """Gives :class:`Contract` a slot for its hash that is not a dataclass field: ``fields()``,
    the audit's canonical JSON, repr, equality, ordering and pickling (which would carry a
    per-process string hash into another process) keep seeing only the five real fields."""

    __slots__ = ("_hash",)
    _hash: int


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class Contract(_HashSlot):
    """A tradable instrument. ``kind``: IDX (the index itself, not tradable), FUT or OPT."""

    underlying: str
    kind: Literal["IDX", "FUT", "OPT"]
    expiry: date | None = None
    strike: float | None = None
    option_type: OptionType | None = None

    def __hash__(self) -> int:
        """The generated dataclass hash, computed once per instance: contracts key the quote
        book and the marks, tens of lookups a tick, and feeds reuse their contract objects."""
        try:
            return self._hash
        except AttributeError:
            value = hash((self.underlying, self.kind, self.expiry, self.strike,
                          self.option_type))
            object.__setattr__(self, "_hash", value)  # frozen: a cache, not a field
            return value

    @property
    def symbol(self) -> str:
        """Kite-style trading symbol, e.g. NIFTY24JUN23900CE (monthly form for every expiry,
        which is unique enough for paper trading and audit; live adapters map to the broker's
        own symbols through its instrument master)."""
        if self.kind == "IDX" or self.expiry is None:
            return self.underlying
        stem = f"{self.underlying}{self.expiry:%y%b%d}".upper()
        if self.kind == "FUT":
            return f"{stem}FUT"
        strike = f"{self.strike:g}" if self.strike is not None else ""
        return f"{stem}{strike}{self.option_type}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """``received`` is when a live adapter received the event (its own clock, set at the edge);
    replays and simulations leave it None. It lets the engine spot a source whose clock runs
    ahead (a timestamp in the future) without ever reading a clock itself."""

    ts: datetime
    source: str = ""
    received: datetime | None = None


# -- market data ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class IndexTick(Event):
    """A value of an underlying index (NIFTY, BANKNIFTY, SENSEX)."""

    underlying: str
    value: float


@dataclass(frozen=True, slots=True, kw_only=True)
class VixTick(Event):
    """India VIX."""

    value: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Quote(Event):
    """Top of book for a future or an option. ``bid``/``ask`` are None when the side is empty."""

    contract: Contract
    ltp: float
    bid: float | None = None
    ask: float | None = None
    bid_qty: int = 0
    ask_qty: int = 0
    oi: int = 0
    iv: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainSnapshot(Event):
    """A full option-chain snapshot for one underlying and expiry (spot included for ATM)."""

    underlying: str
    expiry: date
    spot: float
    quotes: tuple[Quote, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Bar(Event):
    """An OHLC bar of an underlying; ``ts`` is the bar's end (when its close was known)."""

    underlying: str
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0
    start: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PreviousClose(Event):
    """The previous session's official closes, sent before the session starts."""

    underlying: str
    close: float
    vix_close: float | None = None


# -- session and people -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class Timer(Event):
    """Time passes with no market data (lets the engine see silence, for example a halt)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OperatorCommand(Event):
    """A person's command: kill, rearm, override, clear_override."""

    command: Literal["kill", "rearm", "override", "clear_override"]
    reason: str
    who: str = "operator"
    rule_id: str = ""
    until: datetime | None = None


# -- broker results ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class OrderAccepted(Event):
    client_id: str
    broker_order_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderFilled(Event):
    """A fill, possibly partial; ``cum_qty`` is the order's filled quantity after this fill."""

    client_id: str
    broker_order_id: str
    fill_id: str
    qty: int
    price: float
    cum_qty: int
    order_qty: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRejected(Event):
    client_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderCancelled(Event):
    client_id: str
    filled_qty: int = 0


MarketEvent = IndexTick | VixTick | Quote | ChainSnapshot | Bar | PreviousClose
BrokerEvent = OrderAccepted | OrderFilled | OrderRejected | OrderCancelled
