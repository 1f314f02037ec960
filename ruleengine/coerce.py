"""Broker events in the field types the engine declares, before anything acts on them.

A broker adapter builds its events from the broker's JSON, where a whole price arrives as an
int, an id as a number, and a missing reason as null. Pure Python would carry such a value on,
and the audit would record `154` where another day recorded `154.0`. The compiled core (see
corebuild.py) would stop the tick with a TypeError. So the execution gateway converts what
converts without loss: None to "" for text, numbers to text for ids, a whole number to an int
quantity, any real number to a float price. A value that cannot be converted (2.5 lots, a
price of "abc") is left as it is: what acts on it then fails loudly, rather than a guess being
traded on.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, TypeVar

E = TypeVar("E")

_PLAIN: dict[str, type] = {"str": str, "int": int, "float": float}  # annotation -> exact type
_FIELDS: dict[type, tuple[tuple[str, str], ...]] = {}


def _plain_fields(cls: type) -> tuple[tuple[str, str], ...]:
    found = _FIELDS.get(cls)
    if found is None:
        found = tuple((f.name, str(f.type)) for f in dataclasses.fields(cls)
                      if str(f.type) in _PLAIN)
        _FIELDS[cls] = found
    return found


def _converted(kind: str, value: Any) -> Any:
    """The value in the declared type, or the value itself when no lossless form exists."""
    if isinstance(value, bool):
        return value  # a flag where a number or text belongs: not ours to reinterpret
    if kind == "str":
        if value is None:
            return ""
        return str(value) if isinstance(value, numbers.Integral) else value
    if kind == "int":
        if isinstance(value, numbers.Integral):
            return int(value)
        if isinstance(value, numbers.Real) and float(value).is_integer():
            return int(float(value))
        return value
    if isinstance(value, numbers.Real) and math.isfinite(float(value)):
        return float(value)
    return value


def declared_types(event: E) -> E:
    """The same event with its text, whole-number and price fields in their declared types;
    the event itself when nothing needed converting (the usual case, and cheap)."""
    changes = {}
    for name, kind in _plain_fields(type(event)):
        value = getattr(event, name)
        if type(value) is not _PLAIN[kind]:
            converted = _converted(kind, value)
            if converted is not value:
                changes[name] = converted
    return dataclasses.replace(event, **changes) if changes else event  # type: ignore[type-var]
