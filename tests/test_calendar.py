"""The trading calendar: XBOM plus the schedule policy's holidays and special sessions."""

from __future__ import annotations

import subprocess
import sys
import warnings
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest

from ruleengine import calendar as cal_module
from ruleengine.calendar import (
    IST,
    CalendarCoverageWarning,
    Holiday,
    SpecialSession,
    TradingCalendar,
    check_schedule,
    exchange_days,
    schedule_document,
)
from ruleengine.errors import ConfigError
from ruleengine.policyset import load_policy_set, read_documents
from ruleengine.schema import apply_defaults

#: NSE's 2026 trading holidays (MARKET_FACTS, official).
NSE_2026_HOLIDAYS = [date(2026, 1, 15), date(2026, 1, 26), date(2026, 3, 3), date(2026, 3, 26),
                     date(2026, 3, 31), date(2026, 4, 3), date(2026, 4, 14), date(2026, 5, 1),
                     date(2026, 5, 28), date(2026, 6, 26), date(2026, 9, 14), date(2026, 10, 2),
                     date(2026, 10, 20), date(2026, 11, 10), date(2026, 11, 24),
                     date(2026, 12, 25)]
HOLIDAY_WEEK = [date(2026, 11, 23 + i) for i in range(7)]  # Mon 23 .. Sun 29, Tue 24 closed


def ist(day: date, hhmm: str) -> datetime:
    h, m = (int(x) for x in hhmm.split(":"))
    return datetime.combine(day, time(h, m), IST)


@pytest.fixture(scope="module")
def shipped(schedule: dict[str, Any]) -> TradingCalendar:
    return TradingCalendar.from_policy(schedule)


@pytest.fixture(scope="module")
def xbom_only() -> TradingCalendar:
    """The exchange calendar with no override list at all."""
    return TradingCalendar(exchange_calendar="XBOM")


# -- the exchange calendar on its own ----------------------------------------------------------

def test_xbom_knows_every_nse_2026_holiday_without_overrides(xbom_only: TradingCalendar) -> None:
    for day in NSE_2026_HOLIDAYS:
        assert not xbom_only.is_trading_day(day), day
    assert xbom_only.closure_reason(date(2026, 11, 24)) == "exchange holiday (XBOM)"


def test_xbom_is_built_once_and_covers_1997_to_2026() -> None:
    assert exchange_days("XBOM") is exchange_days("XBOM")
    days = exchange_days("XBOM")
    assert days is not None
    assert (days.first, days.last) == (date(1997, 1, 1), date(2026, 12, 31))
    assert not any(d.weekday() >= 5 for d in days.sessions)


def test_unknown_exchange_calendar_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="XBOMM"):
        TradingCalendar(exchange_calendar="XBOMM")


# -- the shipped schedule policy ---------------------------------------------------------------

def test_holiday_week_has_no_session_on_the_holiday_or_the_weekend(
        shipped: TradingCalendar) -> None:
    open_days = [d for d in HOLIDAY_WEEK if shipped.is_trading_day(d)]
    assert open_days == [date(2026, 11, 23), date(2026, 11, 25), date(2026, 11, 26),
                         date(2026, 11, 27)]
    assert shipped.session(date(2026, 11, 24)) is None
    assert shipped.closure_reason(date(2026, 11, 24)) == \
        "holiday: Prakash Gurpurb Sri Guru Nanak Dev"
    assert shipped.closure_reason(date(2026, 11, 28)) == "weekend (Saturday)"
    assert [s.day for s in shipped.sessions(HOLIDAY_WEEK[0], HOLIDAY_WEEK[-1])] == open_days


def test_regular_session_is_0915_to_1530_ist(shipped: TradingCalendar) -> None:
    session = shipped.session(date(2026, 11, 25))
    assert session is not None
    open_, close = session
    assert (open_, close) == (ist(date(2026, 11, 25), "09:15"), ist(date(2026, 11, 25), "15:30"))
    assert open_.utcoffset() == IST.utcoffset(open_)


def test_muhurat_is_a_session_on_sunday_8_november_2026(shipped: TradingCalendar) -> None:
    day = date(2026, 11, 8)
    assert day.weekday() == 6
    assert shipped.is_trading_day(day)
    assert shipped.session(day) == (ist(day, "18:00"), ist(day, "19:00"))
    special = shipped.special_session(day)
    assert special is not None and "Muhurat" in special.reason
    assert "unconfirmed" in special.note.lower()
    assert shipped.session(date(2026, 11, 7)) is None  # the Saturday stays closed


def test_next_session(shipped: TradingCalendar) -> None:
    mon = date(2026, 11, 23)
    assert shipped.next_session(mon).day == date(2026, 11, 25)  # over the Tuesday holiday
    assert shipped.next_session(ist(mon, "08:00")).open == ist(mon, "09:15")
    assert shipped.next_session(ist(mon, "10:00")).open == ist(date(2026, 11, 25), "09:15")
    assert shipped.next_session(ist(date(2026, 11, 6), "16:00")).open == \
        ist(date(2026, 11, 8), "18:00")  # Friday evening -> Sunday's Muhurat session
    with pytest.raises(ValueError, match="aware"):
        shipped.next_session(datetime(2026, 11, 23, 10, 0))


# -- overrides and their precedence -------------------------------------------------------------

def test_override_holiday_closes_a_day_the_exchange_calendar_has_open() -> None:
    cal = TradingCalendar(holidays=[Holiday(day=date(2026, 11, 23), reason="ad-hoc closure")])
    assert not cal.is_trading_day(date(2026, 11, 23))
    assert cal.closure_reason(date(2026, 11, 23)) == "holiday: ad-hoc closure"


def test_special_session_wins_over_a_listed_holiday() -> None:
    day = date(2026, 11, 10)
    cal = TradingCalendar(holidays=[Holiday(day=day, reason="Diwali Balipratipada")],
                          special_sessions=[SpecialSession(day=day, open=time(18, 15),
                                                           close=time(19, 15), reason="test")])
    assert cal.session(day) == (ist(day, "18:15"), ist(day, "19:15"))


def test_repeated_dates_and_backwards_sessions_are_refused() -> None:
    h = Holiday(day=date(2026, 11, 23), reason="x")
    with pytest.raises(ConfigError, match="listed twice"):
        TradingCalendar(holidays=[h, h])
    with pytest.raises(ConfigError, match="open before it closes"):
        TradingCalendar(special_sessions=[SpecialSession(
            day=date(2026, 11, 8), open=time(19, 0), close=time(18, 0), reason="x")])


# -- years the exchange calendar does not cover --------------------------------------------------

def test_uncovered_year_uses_weekdays_and_overrides_with_a_warning() -> None:
    cal = TradingCalendar(holidays=[Holiday(day=date(2027, 1, 26), reason="Republic Day")])
    assert not cal.covers(date(2027, 1, 4))
    with pytest.warns(CalendarCoverageWarning, match="2027"):
        assert cal.is_trading_day(date(2027, 1, 4))  # a Monday
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalendarCoverageWarning)
        assert not cal.is_trading_day(date(2027, 1, 26))  # from the override list
        assert not cal.is_trading_day(date(2027, 1, 2))  # a Saturday
    gaps = cal.coverage_gaps(date(2026, 12, 1), date(2027, 2, 1))
    assert len(gaps) == 1 and "not 2027" in gaps[0]
    assert cal.coverage_gaps(date(2026, 1, 1), date(2026, 12, 31)) == []


def test_missing_library_falls_back_to_overrides_with_a_warning(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cal_module, "exchange_days", lambda name: None)
    cal = TradingCalendar(holidays=[Holiday(day=date(2026, 11, 24), reason="Guru Nanak")])
    with pytest.warns(CalendarCoverageWarning, match="not installed"):
        assert cal.is_trading_day(date(2026, 11, 23))
    assert not cal.is_trading_day(date(2026, 11, 24))


def test_no_exchange_calendar_means_weekdays_and_overrides_silently() -> None:
    cal = TradingCalendar(exchange_calendar=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cal.is_trading_day(date(2026, 11, 24))  # nobody said it is a holiday
        assert cal.coverage_gaps(date(2026, 1, 1), date(2027, 12, 31)) == []


# -- the schedule policy kind --------------------------------------------------------------------

def test_an_empty_schedule_gets_the_documented_defaults() -> None:
    doc = apply_defaults({"kind": "schedule", "version": 1}, "schedule")
    assert doc["timezone"] == "Asia/Kolkata" and doc["exchange_calendar"] == "XBOM"
    assert {n: j["at"] for n, j in doc["jobs"].items()} == {
        "pre_open_checks": "09:00", "session_start": "09:15", "square_off": "15:15",
        "close": "15:30", "end_of_day_report": "15:45"}
    partial = apply_defaults({"kind": "schedule", "version": 1,
                              "jobs": {"square_off": {"misfire_grace": "5m"}}}, "schedule")
    assert partial["jobs"]["square_off"] == {"at": "15:15", "misfire_grace": "5m",
                                             "coalesce": True}


def test_schedule_semantic_problems_are_located(tmp_path: Path) -> None:
    path = tmp_path / "schedule.yaml"
    path.write_text(
        "kind: schedule\nversion: 1\n"
        "holidays:\n"
        "  - {date: '2027-01-26', reason: a}\n"
        "  - {date: '2027-01-26', reason: b}\n"
        "special_sessions:\n"
        "  - {date: '2027-10-29', open: '19:00', close: '18:00', reason: Muhurat}\n"
        "jobs:\n"
        "  square_off: {at: '15:45'}\n", encoding="utf-8")
    docs, findings = read_documents([path])
    assert findings == []
    found = [(f.line, f.code) for f in check_schedule(docs[0])]
    assert found == [(5, "schedule-order"), (7, "schedule-order"), (9, "schedule-order")]
    assert "close at 15:30 must come after square_off at 15:45" in \
        check_schedule(docs[0])[-1].message
    with pytest.raises(ConfigError, match="listed twice"):
        TradingCalendar.from_policy(docs[0].data)


def test_shipped_policies_still_load_and_lint_clean(repo_root: Path) -> None:
    pset = load_policy_set([repo_root / "policies", repo_root / "strategies"])
    assert schedule_document(pset)["exchange_calendar"] == "XBOM"
    assert [d for d in pset.documents if d.kind == "schedule"]
    for doc in pset.documents:
        assert check_schedule(doc) == []
    lint = subprocess.run([sys.executable, "-m", "ruleengine", "lint", "policies", "strategies"],
                          cwd=repo_root, capture_output=True, text=True, timeout=120,
                          check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
