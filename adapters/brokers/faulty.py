"""A broker wrapper that misbehaves on purpose, the way real brokers do on a bad day.

Execution code that has only met a polite broker has never been tested. This wraps any
:class:`~ruleengine.contracts.Broker` (normally the paper broker) and, with seeded
probabilities, injects the failures the execution layer must survive:

=============  ===============================================================================
``ratelimit``  place/cancel raise ``BrokerRateLimited`` (HTTP 429); the request never arrives
``timeout``    place/cancel *reach the broker*, then raise ``BrokerTimeout`` (the order exists)
``lost``       place/cancel raise ``BrokerTimeout`` and never arrive (safe to send again)
``reject``     place raises ``BrokerRejected`` (an RMS refusal); nothing arrives
``lookupfail`` ``orders_by_tag`` raises ``BrokerTimeout``
``partial``    a fill is reported as two partial fills (same total)
``dup``        an update is delivered twice
``reorder``    an update is held back to the next poll, so it arrives after later ones
=============  ===============================================================================

Only ways a broker can *report* badly are injected, never ways it could *be* wrong: no fill is
lost or invented, so positions built from the reported fills must still match the broker's
book at the end — the property the execution tests check. Every request that reached the
wrapper and every placement forwarded to the real broker are recorded for those tests.

Spec: ``"ratelimit=0.1,timeout=0.05,reject=0.02,dup=0.05,reorder=0.05"`` (``seed=N`` optional),
or the same as a YAML mapping, inline or in a file.
"""

from __future__ import annotations

import difflib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from ruleengine.contracts import Broker, BrokerOrder, BrokerPosition, OrderRequest
from ruleengine.errors import BrokerRateLimited, BrokerRejected, BrokerTimeout, ConfigError
from ruleengine.events import BrokerEvent, Event, OrderFilled

__all__ = [
    "DEFAULT_SPEC",
    "Call",
    "FaultSpec",
    "FaultyBroker",
    "faulty_broker",
    "wrap_broker",
]

#: A moderate default for ``--broker faulty`` without a spec.
DEFAULT_SPEC = "ratelimit=0.05,timeout=0.05,lost=0.02,reject=0.01,partial=0.1,dup=0.05,reorder=0.05"


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultSpec:
    """Probabilities (0..1) per fault, and an optional seed of its own."""

    ratelimit: float = 0.0
    timeout: float = 0.0
    lost: float = 0.0
    reject: float = 0.0
    lookupfail: float = 0.0
    partial: float = 0.0
    dup: float = 0.0
    reorder: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "seed" and not 0.0 <= value <= 1.0:
                raise ConfigError(f"fault {f.name}={value} must be a probability within 0..1")

    @classmethod
    def parse(cls, text: str | Mapping[str, Any] | None) -> FaultSpec:
        """From ``"name=p,name=p"``, a YAML mapping (inline or a file path), or a mapping."""
        if text is None or text == "":
            return cls()
        data: Any
        if isinstance(text, Mapping):
            data = dict(text)
        elif Path(text).is_file():
            data = yaml.safe_load(Path(text).read_text(encoding="utf-8")) or {}
        elif "=" in text and ":" not in text:
            data = {}
            for part in text.split(","):
                if not part.strip():
                    continue
                key, sep, value = part.partition("=")
                if not sep:
                    raise ConfigError(f"fault spec part {part!r} must be name=probability")
                data[key.strip()] = value.strip()
        else:
            data = yaml.safe_load(text)
        if not isinstance(data, dict):
            raise ConfigError(f"fault spec {text!r} must be name=probability pairs or a mapping")
        known = [f.name for f in fields(cls)]
        out: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f" — did you mean {close[0]!r}?" if close else \
                    f"; known: {', '.join(known)}"
                raise ConfigError(f"unknown fault {key!r}{hint}")
            try:
                out[key] = int(value) if key == "seed" else float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"fault {key}={value!r} is not a number") from None
        return cls(**out)


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """One request that reached the wrapper (before any fault), for rate-limit checks."""

    ts: datetime
    method: str
    tag: str


class FaultyBroker:
    """Wraps ``inner`` and injects the faults of ``spec``; see the module docstring.

    It takes the inner broker's ``name`` (rate limits and event sources stay those of the
    broker it stands in for); reporting extras of the inner broker (``fills``, ``cash``, ...)
    are reached through attribute delegation.
    """

    def __init__(self, inner: Broker, spec: FaultSpec, seed: int = 0) -> None:
        self.inner = inner
        self.name = inner.name
        self.spec = spec
        self._rng = random.Random(spec.seed if spec.seed is not None else seed)
        self._late: list[BrokerEvent] = []
        self.calls: list[Call] = []
        self.forwarded: list[str] = []  # tags placed at the inner broker, in order
        self.injected: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (during unpickling): do not recurse
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _roll(self, fault: str) -> bool:
        p: float = getattr(self.spec, fault)
        hit = p > 0 and self._rng.random() < p
        if hit:
            self.injected[fault] = self.injected.get(fault, 0) + 1
        return hit

    # -- Broker protocol ----------------------------------------------------------------------
    def place(self, order: OrderRequest, now: datetime) -> str:
        self.calls.append(Call(ts=now, method="place", tag=order.client_id))
        if self._roll("ratelimit"):
            raise BrokerRateLimited("faulty: Too many requests (429)")
        if self._roll("lost"):
            raise BrokerTimeout("faulty: no answer (the request was lost on the way)")
        if self._roll("reject"):
            raise BrokerRejected("faulty: injected RMS rejection")
        broker_id = self.inner.place(order, now)
        self.forwarded.append(order.client_id)
        if self._roll("timeout"):
            raise BrokerTimeout("faulty: no answer (the broker did accept the order)")
        return broker_id

    def cancel(self, client_id: str, now: datetime) -> None:
        self.calls.append(Call(ts=now, method="cancel", tag=client_id))
        if self._roll("ratelimit"):
            raise BrokerRateLimited("faulty: Too many requests (429)")
        if self._roll("lost"):
            raise BrokerTimeout("faulty: no answer (the cancel was lost on the way)")
        self.inner.cancel(client_id, now)
        if self._roll("timeout"):
            raise BrokerTimeout("faulty: no answer (the broker did take the cancel)")

    def orders_by_tag(self, client_id: str) -> Sequence[BrokerOrder]:
        if self._roll("lookupfail"):
            raise BrokerTimeout("faulty: order book lookup timed out")
        return self.inner.orders_by_tag(client_id)

    def positions(self) -> Sequence[BrokerPosition]:
        return self.inner.positions()

    def on_market(self, event: Event) -> None:
        self.inner.on_market(event)

    def poll(self, now: datetime) -> Sequence[BrokerEvent]:
        """Inner updates, garbled: split fills, duplicates, and some held back a poll."""
        fresh: list[BrokerEvent] = []
        for ev in self.inner.poll(now):
            if isinstance(ev, OrderFilled) and ev.qty >= 2 and self._roll("partial"):
                first = self._rng.randint(1, ev.qty - 1)
                fresh.append(replace(ev, fill_id=ev.fill_id + "a", qty=first,
                                     cum_qty=ev.cum_qty - ev.qty + first))
                fresh.append(replace(ev, fill_id=ev.fill_id + "b", qty=ev.qty - first))
            else:
                fresh.append(ev)
        late, self._late = self._late, []
        out: list[BrokerEvent] = []
        for ev in fresh:
            if self._roll("reorder"):
                self._late.append(ev)
            else:
                out.append(ev)
            if self._roll("dup"):
                (self._late if self._rng.random() < 0.5 else out).append(ev)
        return [*out, *late]  # what was held back arrives after this poll's news

    @property
    def pending_events(self) -> int:
        """Updates held back for a later poll (a test polls until this is 0)."""
        return len(self._late)


def wrap_broker(*, inner: Broker, spec: str, seed: int) -> Broker:
    """The ``ruleengine.broker_wrappers`` entry point: ``inner`` with the faults of ``spec``."""
    return FaultyBroker(inner, FaultSpec.parse(spec), seed=seed)


def faulty_broker(*, policy: Any, seed: int, capital: float, faults: str = DEFAULT_SPEC) -> Broker:
    """The ``ruleengine.brokers`` entry point ``faulty``: the paper broker with ``faults``."""
    from adapters.factory import paper_broker

    return FaultyBroker(paper_broker(policy=policy, seed=seed, capital=capital),
                        FaultSpec.parse(faults), seed=seed)
