"""The whitelisted function library that expressions may call.

Every function is pure and deterministic (no clock, no randomness, no I/O), so evaluating a
policy twice on the same inputs gives the same answer. Each entry declares its argument and
result types, which the expression compiler checks before anything runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Function:
    """A callable with the types the compiler checks calls against."""

    fn: Callable[..., Any]
    args: tuple[str, ...]  # "number", "str" or "bool"; "*number" means any count >= 1
    returns: str
    doc: str
    const_args: bool = False  # arguments must be literals (checked and folded at load)


def parse_hhmm(text: str) -> int:
    """``"09:20"`` or ``"09:20:30"`` → seconds since midnight; the unit of ``session.time``."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() and len(p) == 2 for p in parts):
        raise ValueError(f"time {text!r} must be written HH:MM or HH:MM:SS")
    h, m, s = (int(p) for p in (*parts, "00")[:3])
    if h > 23 or m > 59 or s > 59:
        raise ValueError(f"time {text!r} is not a time of day")
    return h * 3600 + m * 60 + s


def _pct_change(new: float, old: float) -> float:
    return (new - old) / old * 100.0


def _clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


def _between(x: float, lo: float, hi: float) -> bool:
    return lo <= x <= hi


FUNCTIONS: dict[str, Function] = {
    "abs": Function(abs, ("number",), "number", "Absolute value."),
    "min": Function(min, ("*number",), "number", "Smallest of the arguments."),
    "max": Function(max, ("*number",), "number", "Largest of the arguments."),
    "round": Function(round, ("number", "number"), "number",
                      "round(x, digits): x rounded to the given number of decimals."),
    "floor": Function(math.floor, ("number",), "number", "Largest whole number <= x."),
    "ceil": Function(math.ceil, ("number",), "number", "Smallest whole number >= x."),
    "sqrt": Function(math.sqrt, ("number",), "number", "Square root (x must be >= 0)."),
    "clamp": Function(_clamp, ("number", "number", "number"), "number",
                      "clamp(x, lo, hi): x limited to the range lo..hi."),
    "between": Function(_between, ("number", "number", "number"), "bool",
                        "between(x, lo, hi): true when lo <= x <= hi."),
    "pct_change": Function(_pct_change, ("number", "number"), "number",
                           "pct_change(new, old): percent change from old to new."),
    "t": Function(parse_hhmm, ("str",), "number",
                  't("HH:MM"): a time of day in seconds, to compare with session.time.',
                  const_args=True),
}


_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"250ms"`` → seconds (the schema checks the form)."""
    for suffix in ("ms", "s", "m", "h"):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * _DURATION_UNITS[suffix]
    raise ValueError(f"duration {text!r} must end in ms, s, m or h")
