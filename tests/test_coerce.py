"""Broker events in the engine's declared types: what converts without loss, and what not."""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction

from ruleengine.coerce import declared_types
from ruleengine.events import OrderCancelled, OrderFilled, OrderRejected

NOW = datetime(2026, 11, 26, 10, 0)


def fill(**over: object) -> OrderFilled:
    fields: dict[str, object] = {"ts": NOW, "source": "kite", "client_id": "c1",
                                 "broker_order_id": "B1", "fill_id": "F1", "qty": 65,
                                 "price": 154.0, "cum_qty": 65, "order_qty": 65}
    fields.update(over)
    return OrderFilled(**fields)  # type: ignore[arg-type]


def test_an_event_already_in_its_types_is_returned_as_is() -> None:
    ev = fill()
    assert declared_types(ev) is ev


def test_broker_json_shapes_become_the_declared_types() -> None:
    ev = declared_types(fill(price=154, fill_id=90017, broker_order_id=250312000123,
                             qty=65.0, cum_qty=Fraction(130, 2), source=None))
    assert (ev.price, ev.fill_id, ev.broker_order_id, ev.qty, ev.cum_qty, ev.source) == \
        (154.0, "90017", "250312000123", 65, 65, "")
    assert (type(ev.price), type(ev.qty), type(ev.cum_qty)) == (float, int, int)
    assert ev.ts == NOW and ev.client_id == "c1"  # the rest untouched


def test_a_missing_reason_becomes_empty_text() -> None:
    ev = declared_types(OrderRejected(ts=NOW, client_id="c1", reason=None))  # type: ignore[arg-type]
    assert ev.reason == ""
    assert declared_types(OrderCancelled(ts=NOW, client_id="c1", filled_qty=0.0)) \
        .filled_qty == 0  # type: ignore[arg-type]


def test_values_without_a_lossless_form_are_left_for_the_engine_to_refuse() -> None:
    """No guessing: half a lot, a non-finite or non-numeric price, a flag where a number goes."""
    for over in ({"qty": 2.5}, {"price": float("nan")}, {"price": "abc"}, {"qty": True}):
        ev = declared_types(fill(**over))
        [(name, value)] = over.items()
        assert getattr(ev, name) is value, name
