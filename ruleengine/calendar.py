"""Trading days and session hours: an exchange calendar corrected by the schedule policy.

Holiday lists are facts that change (a closure announced a week ahead, a library release that
lags, a Muhurat session on a Sunday), so the exchange calendar from ``exchange_calendars`` is the
base and the ``schedule`` policy's override lists have the last word: a listed holiday closes a
day the library thinks is open, and a special session opens a day that would otherwise be closed.

Every answer here is a pure function of the date asked about: nothing reads the wall clock, so a
simulated week gives the same answers as a real one. ``exchange_calendars`` is slow to import and
to build, so each named calendar is built once per process and kept as a set of session dates.
The library only knows the years its maintainers entered (XBOM: 1997–2026); a date outside that
range falls back to weekdays minus the override list, and a :class:`CalendarCoverageWarning`
says so, because such a day may be a holiday nobody has entered yet.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple
from zoneinfo import ZoneInfo

from .errors import ConfigError, Finding
from .functions import parse_hhmm
from .schema import apply_defaults

if TYPE_CHECKING:
    from .policyset import LoadedDoc, PolicySet

__all__ = [
    "IST",
    "JOB_NAMES",
    "REGULAR_CLOSE",
    "REGULAR_OPEN",
    "CalendarCoverageWarning",
    "ExchangeDays",
    "Holiday",
    "Session",
    "SpecialSession",
    "TradingCalendar",
    "check_schedule",
    "exchange_days",
    "parse_time",
    "schedule_document",
]

#: Indian exchanges run on IST, which has had one offset and no daylight saving since 1945.
IST = ZoneInfo("Asia/Kolkata")
REGULAR_OPEN = time(9, 15)
REGULAR_CLOSE = time(15, 30)

#: The schedule policy's daily jobs, in the order their times must increase.
JOB_NAMES = ("pre_open_checks", "session_start", "square_off", "close", "end_of_day_report")

#: When a calendar has no built-in bounds, fixed ones keep its answers independent of today's
#: date (``exchange_calendars`` otherwise defaults to "20 years ago until a year from now").
_FALLBACK_START = date(2000, 1, 1)
_FALLBACK_END = date(2030, 12, 31)


class CalendarCoverageWarning(UserWarning):
    """A date lies outside what the exchange calendar knows; only the override list applies."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Holiday:
    """A closure the schedule policy adds to the exchange calendar."""

    day: date
    reason: str
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SpecialSession:
    """A session outside the regular timetable, such as Muhurat trading."""

    day: date
    open: time
    close: time
    reason: str
    note: str = ""


class Session(NamedTuple):
    """One session's continuous-trading window in IST; unpacks as ``(open, close)``."""

    open: datetime
    close: datetime

    @property
    def day(self) -> date:
        return self.open.date()


@dataclass(frozen=True, slots=True, kw_only=True)
class ExchangeDays:
    """What one ``exchange_calendars`` calendar says, reduced to plain dates once."""

    name: str
    sessions: frozenset[date]
    first: date
    last: date

    def covers(self, day: date) -> bool:
        return self.first <= day <= self.last


@functools.cache
def exchange_days(name: str) -> ExchangeDays | None:
    """The session dates of a named exchange calendar, or None when the library is missing.

    Built over the calendar's own recorded bounds (XBOM: 1997-01-01 to 2026-12-31), not the
    library's default window, which moves with today's date and would make answers depend on
    when the process started.
    """
    try:
        import exchange_calendars as xc
    except ImportError:
        return None
    with warnings.catch_warnings():  # the library's own pandas deprecations are not ours
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        try:
            probe = xc.get_calendar(name)
        except xc.errors.InvalidCalendarName as exc:
            raise ConfigError(f"unknown exchange calendar {name!r} (see exchange_calendars."
                              "get_calendar_names(); NSE and BSE are XBOM)") from exc
        low, high = type(probe).bound_min(), type(probe).bound_max()
        start = low.date() if low is not None else _FALLBACK_START
        end = high.date() if high is not None else _FALLBACK_END
        cal = xc.get_calendar(name, start=start.isoformat(), end=end.isoformat())
    sessions = frozenset(ts.date() for ts in cal.sessions)
    return ExchangeDays(name=name, sessions=sessions, first=cal.first_session.date(),
                        last=cal.last_session.date())


def parse_time(text: str) -> time:
    """``"09:15"`` or ``"09:15:30"`` as a time of day (the schema has checked the form)."""
    seconds = parse_hhmm(text)
    return time(seconds // 3600, seconds % 3600 // 60, seconds % 60)


class TradingCalendar:
    """Which days trade and when, honouring the exchange calendar and the override lists.

    Precedence, most specific first: a special session opens its day (even a weekend or a
    listed holiday, which is how Muhurat trading works); a listed holiday closes its day; then
    the exchange calendar decides, or, for a date it does not cover, any weekday is open.
    """

    def __init__(self, *, exchange_calendar: str | None = "XBOM",
                 holidays: Iterable[Holiday] = (),
                 special_sessions: Iterable[SpecialSession] = (),
                 regular_open: time = REGULAR_OPEN,
                 regular_close: time = REGULAR_CLOSE) -> None:
        self.exchange_calendar = exchange_calendar
        self.regular_open = regular_open
        self.regular_close = regular_close
        self.holidays: Mapping[date, Holiday] = _unique(holidays, "holiday")
        self.special_sessions: Mapping[date, SpecialSession] = _unique(special_sessions,
                                                                        "special session")
        if not regular_open < regular_close:
            raise ConfigError(f"the regular session must open before it closes "
                              f"({regular_open} – {regular_close})")
        for s in self.special_sessions.values():
            if not s.open < s.close:
                raise ConfigError(f"special session on {s.day} must open before it closes "
                                  f"({s.open} – {s.close})")
        self._exchange = exchange_days(exchange_calendar) if exchange_calendar else None
        self._missing_library = bool(exchange_calendar) and self._exchange is None

    @classmethod
    def from_policy(cls, data: Mapping[str, Any]) -> TradingCalendar:
        """Build from one defaulted ``schedule`` document; its semantic problems raise."""
        problems = _problems(data)
        if problems:
            raise ConfigError("schedule policy: " + "; ".join(msg for _, msg in problems))
        jobs = data["jobs"]
        return cls(
            exchange_calendar=data["exchange_calendar"],
            holidays=[Holiday(day=date.fromisoformat(h["date"]), reason=h["reason"],
                              note=h.get("note", "")) for h in data["holidays"]],
            special_sessions=[SpecialSession(
                day=date.fromisoformat(s["date"]), open=parse_time(s["open"]),
                close=parse_time(s["close"]), reason=s["reason"], note=s.get("note", ""))
                for s in data["special_sessions"]],
            regular_open=parse_time(jobs["session_start"]["at"]),
            regular_close=parse_time(jobs["close"]["at"]))

    @classmethod
    def from_policy_set(cls, policy: PolicySet) -> TradingCalendar:
        return cls.from_policy(schedule_document(policy))

    # -- questions about one date ---------------------------------------------------------------
    def covers(self, day: date) -> bool:
        """Whether the exchange calendar has data for ``day`` (else only overrides apply)."""
        return self._exchange is not None and self._exchange.covers(day)

    def coverage_note(self, day: date) -> str | None:
        """Why ``day`` is decided without the exchange calendar, or None when it is not."""
        if self.exchange_calendar is None or self.covers(day):
            return None
        if self._missing_library:
            return (f"exchange_calendars is not installed; {day.year} uses weekdays minus the "
                    "schedule policy's holidays")
        assert self._exchange is not None
        return (f"exchange calendar {self.exchange_calendar} covers "
                f"{self._exchange.first}..{self._exchange.last}, not {day.year}; that year uses "
                "weekdays minus the schedule policy's holidays — add the exchange's holiday "
                "list for it")

    def is_trading_day(self, day: date) -> bool:
        if day in self.special_sessions:
            return True
        if day in self.holidays:
            return False
        if self._exchange is not None and self._exchange.covers(day):
            return day in self._exchange.sessions
        note = self.coverage_note(day)
        if note is not None:
            warnings.warn(note, CalendarCoverageWarning, stacklevel=2)
        return day.weekday() < 5

    def session(self, day: date) -> Session | None:
        """The day's continuous-trading window, or None when the exchange is closed."""
        special = self.special_sessions.get(day)
        if special is not None:
            return _session(day, special.open, special.close)
        if not self.is_trading_day(day):
            return None
        return _session(day, self.regular_open, self.regular_close)

    def special_session(self, day: date) -> SpecialSession | None:
        return self.special_sessions.get(day)

    def closure_reason(self, day: date) -> str | None:
        """Why there is no session on ``day`` (for records people read), or None if there is."""
        if self.is_trading_day(day):
            return None
        if day in self.holidays:
            return f"holiday: {self.holidays[day].reason}"
        if day.weekday() >= 5:
            return f"weekend ({day:%A})"
        return f"exchange holiday ({self.exchange_calendar})"

    # -- questions about a range ----------------------------------------------------------------
    def sessions(self, start: date, end: date) -> list[Session]:
        """Every session from ``start`` to ``end``, both included, in order."""
        out: list[Session] = []
        day = start
        while day <= end:
            s = self.session(day)
            if s is not None:
                out.append(s)
            day += timedelta(days=1)
        return out

    def next_session(self, after: date | datetime) -> Session:
        """The first session opening strictly after an instant, or on a day after a date."""
        if isinstance(after, datetime):
            if after.tzinfo is None:
                raise ValueError("next_session needs an aware datetime (IST)")
            day = after.astimezone(IST).date()
            moment = after
        else:
            day = after + timedelta(days=1)
            moment = None
        for _ in range(400):  # any year has weekdays, so this only ends early by a bug
            s = self.session(day)
            if s is not None and (moment is None or s.open > moment):
                return s
            day += timedelta(days=1)
        raise ConfigError(f"no session within 400 days after {after}")

    def coverage_gaps(self, start: date, end: date) -> list[str]:
        """One note per year in the range that the exchange calendar does not cover."""
        if self.exchange_calendar is None:
            return []
        notes: list[str] = []
        for year in range(start.year, end.year + 1):
            first = max(start, date(year, 1, 1))
            last = min(end, date(year, 12, 31))
            day = first
            while day <= last:
                note = self.coverage_note(day)
                if note is not None:
                    notes.append(note)
                    break
                # covered days are contiguous, so jumping to the range edge is enough
                day = (self._exchange.last + timedelta(days=1)
                       if self._exchange is not None and self._exchange.covers(day) else
                       day + timedelta(days=1))
        return notes


def _session(day: date, open_: time, close: time) -> Session:
    return Session(datetime.combine(day, open_, IST), datetime.combine(day, close, IST))


def _unique(items: Iterable[Holiday] | Iterable[SpecialSession],
            what: str) -> dict[date, Any]:
    out: dict[date, Any] = {}
    for item in items:
        if item.day in out:
            raise ConfigError(f"{what} {item.day} is listed twice")
        out[item.day] = item
    return out


# -- the schedule policy ----------------------------------------------------------------------

def schedule_document(policy: PolicySet) -> dict[str, Any]:
    """The set's one ``schedule`` document, defaulted; the schema defaults when there is none.

    Two schedules would mean two answers to "is today a trading day", so that is refused.
    """
    docs = [d for d in policy.documents if d.kind == "schedule"]
    if len(docs) > 1:
        raise ConfigError("a policy set holds at most one schedule policy; found "
                          + ", ".join(d.file for d in docs))
    if docs:
        return docs[0].data
    return apply_defaults({"kind": "schedule", "version": 1}, "schedule")


def _problems(data: Mapping[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    """What a schema cannot say about a schedule: repeated dates and times out of order."""
    out: list[tuple[tuple[Any, ...], str]] = []
    for field in ("holidays", "special_sessions"):
        seen: set[str] = set()
        for i, entry in enumerate(data.get(field, [])):
            if entry["date"] in seen:
                out.append(((field, i, "date"), f"{entry['date']} is listed twice in {field}"))
            seen.add(entry["date"])
    for i, s in enumerate(data.get("special_sessions", [])):
        if parse_hhmm(s["close"]) <= parse_hhmm(s["open"]):
            out.append((("special_sessions", i, "close"),
                        f"the session on {s['date']} closes at {s['close']}, not after it "
                        f"opens at {s['open']}"))
    jobs = data.get("jobs", {})
    previous: tuple[str, str] | None = None
    for name in JOB_NAMES:
        at = jobs.get(name, {}).get("at")
        if at is None:
            continue
        if previous is not None and parse_hhmm(at) <= parse_hhmm(previous[1]):
            out.append((("jobs", name, "at"), f"{name} at {at} must come after "
                        f"{previous[0]} at {previous[1]}; the daily jobs fire in the order "
                        + ", ".join(JOB_NAMES)))
        previous = (name, at)
    return out


def check_schedule(doc: LoadedDoc) -> list[Finding]:
    """Located findings for one defaulted ``schedule`` document (for ``ruleengine lint``)."""
    if doc.kind != "schedule":
        return []
    return [doc.source.finding(path, "schedule-order", message)
            for path, message in _problems(doc.data)]
