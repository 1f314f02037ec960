"""The shapes adapters must have. The core defines them and never imports a concrete adapter.

Adapters of one kind share one shape so the runner can swap a replay feed for a live one, or the
paper broker for Kite, by configuration alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from .events import BrokerEvent, Contract, Event, Side

OrderType = Literal["LIMIT", "MARKET"]
Purpose = Literal["entry", "exit", "square_off"]


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRequest:
    """What we ask a broker to do. ``client_id`` doubles as the broker tag (<= 20 chars), so a
    placement that timed out can be looked up before any retry."""

    client_id: str
    contract: Contract
    side: Side
    qty: int
    order_type: OrderType
    limit_price: float | None
    purpose: Purpose
    strategy_id: str
    leg_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerOrder:
    """An order as the broker reports it (Kite's order-book row, reduced)."""

    broker_order_id: str
    client_id: str
    status: str  # Kite statuses: OPEN, COMPLETE, CANCELLED, REJECTED, ...
    qty: int
    filled_qty: int
    avg_price: float


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerPosition:
    contract: Contract
    qty: int  # signed: negative = short
    avg_price: float


@runtime_checkable
class Feed(Protocol):
    """A source of market events in exchange-time order."""

    name: str

    def events(self) -> Iterator[Event]: ...


@runtime_checkable
class Broker(Protocol):
    """Place, cancel and look up orders. Results arrive later as events from :meth:`poll`.

    ``place`` may raise :class:`~ruleengine.errors.BrokerTimeout` after the broker accepted the
    order, :class:`~ruleengine.errors.BrokerRateLimited` or
    :class:`~ruleengine.errors.BrokerRejected`.
    """

    name: str

    def place(self, order: OrderRequest, now: datetime) -> str: ...

    def cancel(self, client_id: str, now: datetime) -> None: ...

    def orders_by_tag(self, client_id: str) -> Sequence[BrokerOrder]: ...

    def positions(self) -> Sequence[BrokerPosition]: ...

    def on_market(self, event: Event) -> None: ...

    def poll(self, now: datetime) -> Sequence[BrokerEvent]: ...


@runtime_checkable
class AlertSink(Protocol):
    """Delivers alert messages to a person (log, webhook, Telegram, e-mail)."""

    name: str

    def send(self, severity: str, title: str, body: str) -> None: ...
