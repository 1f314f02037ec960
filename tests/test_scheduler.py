"""The market-hours scheduler on a simulated clock: a week with an NSE holiday in seconds."""

from __future__ import annotations

import dataclasses
import json
import time as wall
from datetime import date, datetime, time, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ruleengine import runner
from ruleengine.calendar import IST, SpecialSession, TradingCalendar
from ruleengine.cli import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, main
from ruleengine.clock import Clock, SimulatedClock, WallClock
from ruleengine.policyset import load_policy_set
from ruleengine.scheduler import (
    CheckResult,
    DayContext,
    JobRecord,
    JobSpec,
    MarketJobs,
    MarketScheduler,
    ScheduleAlert,
    TickWindow,
    job_specs,
)

MON, TUE, WED, THU, FRI, SAT, SUN = (date(2026, 11, 23 + i) for i in range(7))
MUHURAT = date(2026, 11, 8)


def ist(day: date, hhmm: str) -> datetime:
    h, m = (int(x) for x in hhmm.split(":"))
    return datetime.combine(day, time(h, m), IST)


@pytest.fixture(scope="module")
def calendar(schedule: dict[str, Any]) -> TradingCalendar:
    return TradingCalendar.from_policy(schedule)


class Desk:
    """Injected jobs that note who ran when, by the clock the scheduler uses."""

    def __init__(self, clock: SimulatedClock, *, fail_on: frozenset[date] = frozenset(),
                 stall: dict[date, timedelta] | None = None) -> None:
        self.clock = clock
        self.fail_on = fail_on
        self.stall = stall or {}
        self.calls: list[tuple[str, date, datetime]] = []
        self.windows: list[TickWindow] = []
        self.contexts: list[DayContext] = []

    def _note(self, job: str, ctx: DayContext) -> str:
        self.calls.append((job, ctx.day, self.clock.now()))
        self.contexts.append(ctx)
        return f"{job} done"

    def checks(self, ctx: DayContext) -> CheckResult:
        self._note("pre_open_checks", ctx)
        if ctx.day in self.fail_on:
            return CheckResult.fail("broker login refused", "margin data missing")
        return CheckResult.ok("feed and broker up")

    def ticks(self, window: TickWindow) -> str:
        self.calls.append(("tick_loop", window.day, self.clock.now()))
        self.windows.append(window)
        stall = self.stall.get(window.day)
        if stall is not None and window.index == 0:
            self.clock.advance(stall)  # the process hangs: time passes without us
        return "ticked"

    def jobs(self) -> MarketJobs:
        return MarketJobs(
            pre_open_checks=self.checks, tick_loop=self.ticks,
            session_start=lambda c: self._note("session_start", c),
            square_off=lambda c: self._note("square_off", c),
            close=lambda c: self._note("close", c),
            end_of_day_report=lambda c: self._note("end_of_day_report", c))

    def days_of(self, job: str) -> list[date]:
        return [d for j, d, _ in self.calls if j == job]

    def times_of(self, job: str) -> dict[date, datetime]:
        return {d: t for j, d, t in self.calls if j == job}


def build(calendar: TradingCalendar, schedule: dict[str, Any], start: datetime,
          **desk_kwargs: Any) -> tuple[MarketScheduler, Desk, SimulatedClock,
                                       list[JobRecord], list[ScheduleAlert]]:
    clock = SimulatedClock(start)
    desk = Desk(clock, **desk_kwargs)
    seen: list[JobRecord] = []
    alerts: list[ScheduleAlert] = []
    sched = MarketScheduler(calendar, job_specs(schedule), desk.jobs(), clock,
                            on_record=seen.append, on_alert=alerts.append)
    return sched, desk, clock, seen, alerts


def by(records: list[JobRecord], job: str, day: date) -> list[JobRecord]:
    return [r for r in records if r.job == job and r.day == day]


# -- the holiday week -------------------------------------------------------------------------

def test_holiday_week_runs_each_trading_day_at_the_ist_times(
        calendar: TradingCalendar, schedule: dict[str, Any]) -> None:
    began = wall.perf_counter()
    sched, desk, clock, seen, alerts = build(calendar, schedule, ist(date(2026, 11, 22), "20:00"))
    records = sched.run(MON, SUN)
    assert wall.perf_counter() - began < 2.0  # a simulated week jumps, it does not wait

    trading = [MON, WED, THU, FRI]
    for job in ("pre_open_checks", "session_start", "square_off", "close", "end_of_day_report"):
        assert desk.days_of(job) == trading, job
    for day in trading:
        assert desk.times_of("pre_open_checks")[day] == ist(day, "09:00")
        assert desk.times_of("session_start")[day] == ist(day, "09:15")
        assert desk.times_of("square_off")[day] == ist(day, "15:15")
        assert desk.times_of("close")[day] == ist(day, "15:30")
        assert desk.times_of("end_of_day_report")[day] == ist(day, "15:45")
    assert [(w.day, w.start, w.end) for w in desk.windows if w.day == MON] == [
        (MON, ist(MON, "09:15"), ist(MON, "15:15")), (MON, ist(MON, "15:15"), ist(MON, "15:30"))]
    assert {call[1] for call in desk.calls}.isdisjoint({TUE, SAT, SUN})

    skipped = {r.day: r.detail for r in records if r.job == "no_session"}
    assert skipped == {TUE: "holiday: Prakash Gurpurb Sri Guru Nanak Dev",
                       SAT: "weekend (Saturday)", SUN: "weekend (Sunday)"}
    ran = [r for r in records if r.job != "no_session"]
    assert len(ran) == 4 * 7 and {r.outcome for r in ran} == {"ran"}
    assert all(r.actual == r.scheduled and r.late_s == 0 for r in ran)
    assert seen == records == sched.records and alerts == []
    assert clock.now() == ist(FRI, "15:45")


def test_records_are_ordered_and_serialisable(calendar: TradingCalendar,
                                              schedule: dict[str, Any]) -> None:
    sched, *_ = build(calendar, schedule, ist(MON, "00:00"))
    records = sched.run(MON, TUE)
    assert [r.scheduled for r in records] == sorted(r.scheduled for r in records)
    assert [r.job for r in by(records, "tick_loop", MON)] == ["tick_loop", "tick_loop"]
    row = json.loads(json.dumps(records[0].as_dict()))
    assert row == {"day": "2026-11-23", "job": "pre_open_checks",
                   "scheduled": "2026-11-23T09:00:00+05:30",
                   "actual": "2026-11-23T09:00:00+05:30",
                   "finished": "2026-11-23T09:00:00+05:30", "outcome": "ran", "late_s": 0.0,
                   "detail": "feed and broker up"}


# -- misfires ----------------------------------------------------------------------------------

def test_a_job_missed_within_its_grace_runs_late(calendar: TradingCalendar,
                                                 schedule: dict[str, Any]) -> None:
    sched, desk, _, _, alerts = build(calendar, schedule, ist(MON, "09:05"))  # up 5 min late
    records = sched.run(MON, MON)
    (pre,) = by(records, "pre_open_checks", MON)
    assert (pre.outcome, pre.late_s, pre.actual) == ("ran_late", 300.0, ist(MON, "09:05"))
    assert desk.days_of("session_start") == [MON]  # the day trades normally
    assert by(records, "session_start", MON)[0].outcome == "ran"
    assert alerts == []


def test_a_job_missed_beyond_its_grace_is_skipped_and_recorded(
        calendar: TradingCalendar, schedule: dict[str, Any]) -> None:
    # The tick loop hangs from 09:15 until 15:50: square-off (15:15, grace 15m) and close
    # (15:30, grace 15m) are too late to run; the report (15:45, grace 12h) still runs.
    sched, desk, _, _, alerts = build(calendar, schedule, ist(MON, "08:00"),
                                      stall={MON: timedelta(hours=6, minutes=35)})
    records = sched.run(MON, MON)
    outcome = {r.job: r.outcome for r in records}
    assert outcome["square_off"] == "missed" and outcome["close"] == "missed"
    assert desk.days_of("square_off") == [] and desk.days_of("close") == []
    (sq,) = by(records, "square_off", MON)
    assert sq.actual is None and sq.late_s == 35 * 60
    assert "beyond its misfire grace of 15m00s" in sq.detail
    assert [r.outcome for r in by(records, "tick_loop", MON)] == ["ran", "missed"]
    (eod,) = by(records, "end_of_day_report", MON)
    assert (eod.outcome, eod.actual) == ("ran_late", ist(MON, "15:50"))
    severities = {a.job: a.severity for a in alerts}
    assert severities == {"square_off": "critical", "tick_loop": "warning", "close": "warning"}


def test_starting_after_the_pre_open_grace_keeps_trading_off(
        calendar: TradingCalendar, schedule: dict[str, Any]) -> None:
    sched, desk, _, _, alerts = build(calendar, schedule, ist(MON, "09:20"))
    records = sched.run(MON, WED)
    assert by(records, "pre_open_checks", MON)[0].outcome == "missed"
    assert by(records, "session_start", MON)[0].outcome == "skipped"
    assert {r.outcome for r in by(records, "tick_loop", MON)} == {"skipped"}
    assert desk.days_of("square_off") == [MON, WED]  # exits still run on a day off
    assert [c.trading for c in desk.contexts if c.day == MON] == [False, False, False]
    assert all(c.trading for c in desk.contexts if c.day == WED)
    assert desk.days_of("session_start") == [WED]
    assert [a.job for a in alerts] == ["pre_open_checks"]
    assert "trading stays off" in alerts[0].title


@pytest.mark.parametrize(("coalesce", "expected"), [
    (True, ["coalesced", "ran_late", "ran"]),
    (False, ["ran_late", "ran_late", "ran"]),
])
def test_coalesce_runs_only_the_newest_of_several_due_runs(
        calendar: TradingCalendar, schedule: dict[str, Any], coalesce: bool,
        expected: list[str]) -> None:
    specs = job_specs(schedule)
    specs["end_of_day_report"] = dataclasses.replace(
        specs["end_of_day_report"], misfire_grace=timedelta(hours=48), coalesce=coalesce)
    clock = SimulatedClock(ist(FRI, "10:00"))  # down since Wednesday morning
    desk = Desk(clock)
    records = MarketScheduler(calendar, specs, desk.jobs(), clock).run(WED, FRI)
    reports = [r for r in records if r.job == "end_of_day_report"]
    assert [r.day for r in reports] == [WED, THU, FRI]
    assert [r.outcome for r in reports] == expected
    if coalesce:
        assert reports[0].detail == "coalesced into the run for 2026-11-26"
    assert {r.outcome for r in records if r.job == "pre_open_checks"} == {"missed"}


# -- pre-open checks ---------------------------------------------------------------------------

def test_failed_pre_open_check_keeps_trading_off_that_day_and_alerts(
        calendar: TradingCalendar, schedule: dict[str, Any]) -> None:
    sched, desk, _, _, alerts = build(calendar, schedule, ist(MON, "00:00"),
                                      fail_on=frozenset({WED}))
    records = sched.run(MON, FRI)
    (pre,) = by(records, "pre_open_checks", WED)
    assert pre.outcome == "failed" and pre.detail == "broker login refused; margin data missing"
    assert WED not in desk.days_of("session_start")
    assert WED not in [w.day for w in desk.windows]
    assert {r.outcome for r in by(records, "tick_loop", WED)} == {"skipped"}
    assert [r.outcome for r in by(records, "session_start", WED)] == ["skipped"]
    assert desk.days_of("session_start") == [MON, THU, FRI]  # the next day trades again
    assert WED in desk.days_of("square_off") and WED in desk.days_of("end_of_day_report")
    wed_report = [c for c in desk.contexts if c.day == WED][-1]
    assert not wed_report.trading
    assert wed_report.reasons == ("pre-open checks failed: broker login refused; margin data "
                                  "missing",)
    (alert,) = alerts
    assert (alert.day, alert.severity, alert.job) == (WED, "critical", "pre_open_checks")
    assert alert.body == "broker login refused; margin data missing"
    assert alert.at == ist(WED, "09:00") and alert.key == "schedule:pre_open_checks:2026-11-25"


def test_a_crashing_job_is_recorded_and_alerted(calendar: TradingCalendar,
                                                schedule: dict[str, Any]) -> None:
    def broken(ctx: DayContext) -> CheckResult:
        raise ConnectionError("broker API unreachable")

    def ticks(window: TickWindow) -> None:
        raise AssertionError("no tick loop on a day whose checks crashed")

    clock = SimulatedClock(ist(MON, "00:00"))
    alerts: list[ScheduleAlert] = []
    sched = MarketScheduler(calendar, job_specs(schedule),
                            MarketJobs(pre_open_checks=broken, tick_loop=ticks), clock,
                            on_alert=alerts.append)
    records = sched.run(MON, MON)
    assert by(records, "pre_open_checks", MON)[0].outcome == "error"
    assert "ConnectionError: broker API unreachable" in by(records, "pre_open_checks",
                                                           MON)[0].detail
    assert by(records, "close", MON)[0].outcome == "ran"
    assert [a.severity for a in alerts] == ["critical"]


# -- special sessions ---------------------------------------------------------------------------

def test_muhurat_session_runs_on_sunday_with_jobs_kept_around_its_hours(
        calendar: TradingCalendar, schedule: dict[str, Any]) -> None:
    sched, desk, *_ = build(calendar, schedule, ist(date(2026, 11, 2), "00:00"))
    records = sched.run(date(2026, 11, 2), MUHURAT)
    assert desk.days_of("session_start")[-1] == MUHURAT
    times = {job: desk.times_of(job)[MUHURAT] for job in
             ("pre_open_checks", "session_start", "square_off", "close", "end_of_day_report")}
    assert times == {"pre_open_checks": ist(MUHURAT, "17:45"),
                     "session_start": ist(MUHURAT, "18:00"),
                     "square_off": ist(MUHURAT, "18:45"), "close": ist(MUHURAT, "19:00"),
                     "end_of_day_report": ist(MUHURAT, "19:15")}
    muhurat_windows = [(w.start, w.end) for w in desk.windows if w.day == MUHURAT]
    assert muhurat_windows == [(ist(MUHURAT, "18:00"), ist(MUHURAT, "18:45")),
                               (ist(MUHURAT, "18:45"), ist(MUHURAT, "19:00"))]
    assert all(w.special is not None for w in desk.windows if w.day == MUHURAT)
    assert [r.day for r in records if r.job == "no_session"] == [date(2026, 11, 7)]


def test_a_square_off_falling_outside_a_short_session_is_held_inside_it(
        calendar: TradingCalendar, schedule: dict[str, Any]) -> None:
    short = TradingCalendar(special_sessions=[SpecialSession(
        day=MUHURAT, open=time(18, 0), close=time(18, 10), reason="short")])
    clock = SimulatedClock(ist(MUHURAT, "00:00"))
    sched = MarketScheduler(short, job_specs(schedule), Desk(clock).jobs(), clock)
    plan = {f.job: f.at for f in sched.plan(MUHURAT, MUHURAT)}
    assert plan["square_off"] == ist(MUHURAT, "18:00")
    assert [(f.at, f.end) for f in sched.plan(MUHURAT, MUHURAT) if f.job == "tick_loop"] == [
        (ist(MUHURAT, "18:00"), ist(MUHURAT, "18:10"))]


# -- wiring -------------------------------------------------------------------------------------

def test_from_the_shipped_policy_set(repo_root: Path) -> None:
    pset = load_policy_set([repo_root / "policies", repo_root / "strategies"])
    clock = SimulatedClock(ist(MON, "00:00"))
    desk = Desk(clock)
    sched = MarketScheduler.from_policy_set(pset, desk.jobs(), clock)
    sched.run(MON, WED)
    assert desk.days_of("session_start") == [MON, WED]


def test_stop_ends_the_run_after_the_job_in_hand(calendar: TradingCalendar,
                                                 schedule: dict[str, Any]) -> None:
    clock = SimulatedClock(ist(MON, "00:00"))
    holder: list[MarketScheduler] = []

    def stop_at_square_off(ctx: DayContext) -> str:
        holder[0].stop()
        return "stopping"

    jobs = MarketJobs(pre_open_checks=lambda c: CheckResult.ok(), tick_loop=lambda w: None,
                      square_off=stop_at_square_off)
    holder.append(MarketScheduler(calendar, job_specs(schedule), jobs, clock))
    records = holder[0].run(MON, FRI)
    assert records[-1].job == "square_off" and records[-1].day == MON


def test_clocks_speak_aware_ist() -> None:
    clocks: list[Clock] = [WallClock(), SimulatedClock(ist(MON, "09:00"))]
    for clock in clocks:
        assert isinstance(clock, Clock)
        assert clock.now().utcoffset() == timedelta(hours=5, minutes=30)
    sim = SimulatedClock(ist(MON, "09:00"))
    sim.sleep_until(ist(MON, "08:00"))  # never backwards
    assert sim.now() == ist(MON, "09:00")
    with pytest.raises(ValueError, match="time zone"):
        sim.sleep_until(datetime(2026, 11, 23, 10, 0))
    real = WallClock()
    began = wall.perf_counter()
    real.sleep_until(real.now() - timedelta(seconds=1))  # already past: returns at once
    assert wall.perf_counter() - began < 0.5


def test_job_specs_come_from_the_policy(schedule: dict[str, Any]) -> None:
    specs = job_specs(schedule)
    assert specs["square_off"] == JobSpec(name="square_off", at=time(15, 15),
                                          misfire_grace=timedelta(minutes=15), coalesce=True)
    assert specs["end_of_day_report"].coalesce is False


# -- the CLI flag ------------------------------------------------------------------------------

def test_cli_schedule_on_a_holiday_runs_nothing(tmp_path: Path, repo_root: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(repo_root)
    db = str(tmp_path / "a.db")
    assert main(["run", "--schedule", "2026-11-24", "--db", db]) == EXIT_OK
    out = capsys.readouterr().out
    assert "no_session" in out and "Guru Nanak" in out
    assert not Path(db).exists()
    assert main(["run", "--schedule", "24-11-2026"]) == EXIT_USAGE
    assert main(["run", "--schedule", "2026-11-23", "--feed", "replay:x.csv"]) == EXIT_USAGE


def test_cli_schedule_runs_each_session_through_the_runner(
        tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(repo_root)
    configs: list[runner.RunConfig] = []

    def fake_run(config: runner.RunConfig, **kwargs: Any) -> Any:
        configs.append(config)
        portfolio = SimpleNamespace(realized=100.0, charges=40.0,
                                    unrealized=lambda marks, legs=None: 0.0,
                                    open_legs=lambda sid=None: [])
        state = SimpleNamespace(portfolio=portfolio, market=SimpleNamespace(mark_price={}))
        return SimpleNamespace(run_id=len(configs), ticks=22502,
                               engine=SimpleNamespace(state=state))

    monkeypatch.setattr(runner, "run", fake_run)
    code = main(["run", "--schedule", "2026-11-23..2026-11-25", "--db", str(tmp_path / "s.db"),
                 "--scenario", "trend-up"])
    out = capsys.readouterr().out
    assert code == EXIT_OK, out
    assert [(c.day, c.feed) for c in configs] == [(MON, "synthetic:trend-up"),
                                                  (WED, "synthetic:trend-up")]
    assert "run 2: gross 100.00, charges 40.00, open positions 0" in out


def test_cli_schedule_muhurat_fails_its_checks_on_the_synthetic_feed(
        repo_root: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(repo_root)
    monkeypatch.setattr(runner, "run", _no_run)
    assert main(["run", "--schedule", "2026-11-08"]) == EXIT_FINDINGS
    captured = capsys.readouterr()
    assert "synthetic feed has no Diwali Muhurat trading session" in captured.out
    assert "ALERT critical" in captured.err


def _no_run(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the runner must not run")

