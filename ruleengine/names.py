"""The context registry: the documented names an expression may read.

Names live in ``names.yaml`` beside this module (data, not code), so the reference in ``docs/``
and the linter read the same list. Strategies add their own names (``ind.<name>`` for declared
indicators) through :meth:`Registry.extend`, which returns a new registry.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

import yaml

ValueType = Literal["number", "bool", "str"]


@dataclass(frozen=True, slots=True, kw_only=True)
class NameInfo:
    """One readable name: its type, unit, description and the values it can take."""

    name: str
    type: ValueType
    unit: str
    description: str
    low: float | None = None
    high: float | None = None


class Registry(Mapping[str, NameInfo]):
    """An immutable mapping of dotted name to :class:`NameInfo`."""

    __slots__ = ("_names",)

    def __init__(self, names: Mapping[str, NameInfo]) -> None:
        self._names = dict(names)

    def __getitem__(self, key: str) -> NameInfo:
        return self._names[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def extend(self, extra: Mapping[str, NameInfo]) -> Registry:
        return Registry({**self._names, **extra})

    def suggest(self, name: str) -> str | None:
        """The closest known name, for "did you mean" hints."""
        close = difflib.get_close_matches(name, list(self._names), n=1, cutoff=0.6)
        return close[0] if close else None


@cache
def default_registry() -> Registry:
    text = resources.files(__package__).joinpath("names.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    names: dict[str, NameInfo] = {}
    for name, spec in raw.items():
        low, high = (spec.get("range") or [None, None])
        names[name] = NameInfo(name=name, type=spec["type"], unit=str(spec.get("unit", "")),
                               description=spec["description"], low=low, high=high)
    return Registry(names)
