"""The market-hours runner: on each trading day, fire the daily jobs at their IST times.

Why APScheduler's triggers and not its schedulers: ``BackgroundScheduler`` and friends read
``datetime.now()`` and wait on threading events themselves, so a simulated clock cannot drive
them, their misfire handling is judged against real time, and jobs would run on pool threads
next to the tick loop. Here one APScheduler ``CronTrigger`` per job (daily, Asia/Kolkata)
computes the regular fire times, the :class:`~ruleengine.calendar.TradingCalendar` decides which
days have a session (weekends, holidays, special sessions), and this module executes the jobs
itself, one after another, against a
:class:`~ruleengine.clock.Clock`. A week runs in milliseconds on a ``SimulatedClock``, and the
same code waits for real on a ``WallClock``.

Why one thread: jobs never run while the tick loop is inside a tick. The tick loop is called
once per *window* of the session — open → square-off, square-off → close — and returns at the
window's end; the square-off then runs between ticks, exactly like a policy reload, so no job
needs a lock on engine state.

Fail safe, as in the engine: a day trades only if its pre-open checks ran and passed and its
session start ran. A failed, missing or crashed check keeps trading off for the day and raises
an alert; square-off, close and the end-of-day report still run, because exits and records are
never blocked by our own rules.

Misfires follow the schedule policy per job: a job found late (the process was down, or the job
before it overran) still runs when it is no later than its ``misfire_grace``, else it is
recorded as missed; with ``coalesce`` only the newest of several due runs of a job executes.
Every firing — and every day without a session — becomes a :class:`JobRecord`, kept in
:attr:`MarketScheduler.records` and handed to ``on_record`` (the audit store) as it happens.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Literal

from apscheduler.triggers.cron import CronTrigger

from .calendar import IST, JOB_NAMES, Session, SpecialSession, TradingCalendar, parse_time
from .calendar import schedule_document as _schedule_document
from .clock import Clock
from .functions import parse_duration

if TYPE_CHECKING:
    from .policyset import PolicySet

__all__ = [
    "CheckResult",
    "DayContext",
    "Firing",
    "JobName",
    "JobRecord",
    "JobSpec",
    "MarketJobs",
    "MarketScheduler",
    "Outcome",
    "ScheduleAlert",
    "TickWindow",
    "job_specs",
]

JobName = Literal["pre_open_checks", "session_start", "tick_loop", "square_off", "close",
                  "end_of_day_report", "no_session"]
Outcome = Literal["ran", "ran_late", "failed", "error", "missed", "coalesced", "skipped"]
Severity = Literal["warning", "critical"]

#: Order of jobs that share a time: the start before the first tick window, the square-off
#: before the window that follows it.
_RANK: dict[str, int] = {"no_session": 0, "pre_open_checks": 1, "session_start": 2,
                         "square_off": 3, "tick_loop": 4, "close": 5, "end_of_day_report": 6}
#: Jobs placed relative to the session's open; the others are placed relative to its close.
_OPEN_ANCHORED = frozenset({"pre_open_checks", "session_start"})


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSpec:
    """One daily job as the schedule policy declares it."""

    name: str
    at: time
    misfire_grace: timedelta
    coalesce: bool


def job_specs(schedule: Mapping[str, Any]) -> dict[str, JobSpec]:
    """The job timetable of one defaulted ``schedule`` document."""
    jobs = schedule["jobs"]
    return {name: JobSpec(name=name, at=parse_time(jobs[name]["at"]),
                          misfire_grace=timedelta(seconds=parse_duration(
                              jobs[name]["misfire_grace"])),
                          coalesce=bool(jobs[name]["coalesce"]))
            for name in JOB_NAMES}


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """What the pre-open checks found; ``reasons`` say why they failed (or what they saw)."""

    passed: bool
    reasons: tuple[str, ...] = ()

    @classmethod
    def ok(cls, *notes: str) -> CheckResult:
        return cls(passed=True, reasons=notes)

    @classmethod
    def fail(cls, *reasons: str) -> CheckResult:
        return cls(passed=False, reasons=reasons or ("pre-open checks failed",))


@dataclass(frozen=True, slots=True, kw_only=True)
class DayContext:
    """What a job is told about its day. ``trading`` is false once the day is off."""

    day: date
    session: Session
    special: SpecialSession | None
    scheduled: datetime
    trading: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class TickWindow:
    """One stretch of the session for the tick loop: process ticks in ``[start, end)``, then
    return, so the job at ``end`` runs between ticks. ``start`` is later than planned when the
    window was entered late."""

    day: date
    session: Session
    special: SpecialSession | None
    start: datetime
    end: datetime
    index: int
    last: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Firing:
    """One planned job run. Tick windows carry their ``end``."""

    day: date
    job: JobName
    at: datetime
    end: datetime | None = None
    index: int = 0
    last: bool = True
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRecord:
    """What happened to one planned firing: the audit trail of the scheduler."""

    day: date
    job: JobName
    scheduled: datetime
    actual: datetime | None
    finished: datetime | None
    outcome: Outcome
    late_s: float
    detail: str

    def as_dict(self) -> dict[str, Any]:
        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t is not None else None
        return {"day": self.day.isoformat(), "job": self.job, "scheduled": iso(self.scheduled),
                "actual": iso(self.actual), "finished": iso(self.finished),
                "outcome": self.outcome, "late_s": self.late_s, "detail": self.detail}


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleAlert:
    """Something a person must hear about; shaped for ``AlertRouter.route(severity, title,
    body, now=at)`` with ``key`` for its de-duplication."""

    day: date
    job: JobName
    at: datetime
    severity: Severity
    title: str
    body: str

    @property
    def key(self) -> str:
        return f"schedule:{self.job}:{self.day.isoformat()}"


def _nothing(ctx: DayContext) -> str | None:
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketJobs:
    """The callables the scheduler fires; the lead wires them to the engine and runner.

    A job may return a short text that is kept in its record (``"run 7: 22 fills"``). Checks
    and the tick loop have no default: a runner that forgot them must not trade.
    """

    pre_open_checks: Callable[[DayContext], CheckResult]
    tick_loop: Callable[[TickWindow], str | None]
    session_start: Callable[[DayContext], str | None] = _nothing
    square_off: Callable[[DayContext], str | None] = _nothing
    close: Callable[[DayContext], str | None] = _nothing
    end_of_day_report: Callable[[DayContext], str | None] = _nothing


@dataclass(slots=True)
class _Day:
    session: Session
    special: SpecialSession | None
    trading: bool = True
    reasons: list[str] = field(default_factory=list)

    def turn_off(self, reason: str) -> None:
        self.trading = False
        self.reasons.append(reason)


class MarketScheduler:
    """Fires the daily jobs of every trading day in a range, against an injected clock."""

    def __init__(self, calendar: TradingCalendar, specs: Mapping[str, JobSpec],
                 jobs: MarketJobs, clock: Clock, *,
                 on_record: Callable[[JobRecord], None] | None = None,
                 on_alert: Callable[[ScheduleAlert], None] | None = None,
                 late_tolerance: timedelta = timedelta(seconds=1)) -> None:
        missing = [n for n in JOB_NAMES if n not in specs]
        if missing:
            raise ValueError(f"no job spec for {', '.join(missing)}")
        self.calendar = calendar
        self.specs = dict(specs)
        self.jobs = jobs
        self.clock = clock
        self.on_record = on_record
        self.on_alert = on_alert
        self.late_tolerance = late_tolerance
        self.records: list[JobRecord] = []
        self.alerts: list[ScheduleAlert] = []
        self._stopped = False
        # daily, not mon-fri: which days trade is the calendar's call alone
        self._triggers = {name: CronTrigger(hour=spec.at.hour, minute=spec.at.minute,
                                            second=spec.at.second, timezone=IST)
                          for name, spec in self.specs.items()}

    @classmethod
    def from_policy_set(cls, policy: PolicySet, jobs: MarketJobs, clock: Clock,
                        **kwargs: Any) -> MarketScheduler:
        doc = _schedule_document(policy)
        return cls(TradingCalendar.from_policy(doc), job_specs(doc), jobs, clock, **kwargs)

    # -- the plan: pure, from the calendar and the timetable -----------------------------------
    def fire_time(self, job: str, session: Session, special: SpecialSession | None) -> datetime:
        """When ``job`` fires for a session.

        A regular day asks the job's cron trigger for its first fire time on that day. A
        special session keeps each job's distance from the open (pre-open checks, start) or
        the close (square-off, close, report) of the regular timetable, so a one-hour Muhurat
        session still gets its checks 15 minutes before and its square-off 15 minutes before
        the end; a square-off that would fall outside the session is held inside it.
        """
        spec = self.specs[job]
        day = session.day
        if special is None:
            midnight = datetime.combine(day, time(0), IST)
            fire: datetime = self._triggers[job].get_next_fire_time(None, midnight)
            if fire.date() != day:  # a daily trigger always fires on the day; guard it
                raise AssertionError(f"cron fire time {fire} is not on {day}")
            return fire
        regular = self.calendar
        if job in _OPEN_ANCHORED:
            offset = _seconds(spec.at) - _seconds(regular.regular_open)
            fire = session.open + timedelta(seconds=offset)
        else:
            offset = _seconds(spec.at) - _seconds(regular.regular_close)
            fire = session.close + timedelta(seconds=offset)
        if job == "square_off":
            fire = min(max(fire, session.open), session.close)
        return fire

    def plan(self, start: date, end: date) -> list[Firing]:
        """Every firing from ``start`` to ``end`` (both included), in the order it happens."""
        out: list[Firing] = []
        day = start
        while day <= end:
            session = self.calendar.session(day)
            if session is None:
                out.append(Firing(day=day, job="no_session",
                                  at=datetime.combine(day, time(0), IST),
                                  detail=self.calendar.closure_reason(day) or "closed"))
            else:
                out.extend(self._day_plan(session, self.calendar.special_session(day)))
            day += timedelta(days=1)
        out.sort(key=lambda f: (f.at, _RANK[f.job], f.index))
        return out

    def _day_plan(self, session: Session, special: SpecialSession | None) -> list[Firing]:
        day = session.day
        times = {name: self.fire_time(name, session, special) for name in JOB_NAMES}
        out = [Firing(day=day, job=name, at=times[name])  # type: ignore[arg-type]
               for name in JOB_NAMES]
        edges = [session.open]
        if session.open < times["square_off"] < session.close:
            edges.append(times["square_off"])
        edges.append(session.close)
        for i, (a, b) in enumerate(itertools.pairwise(edges)):
            out.append(Firing(day=day, job="tick_loop", at=a, end=b, index=i,
                              last=i == len(edges) - 2))
        return out

    # -- running it ------------------------------------------------------------------------------
    def stop(self) -> None:
        """Finish the job in hand, then return from :meth:`run` (safe from a signal handler)."""
        self._stopped = True
        wake = getattr(self.clock, "wake", None)
        if callable(wake):
            wake()

    def run(self, start: date, end: date) -> list[JobRecord]:
        """Fire every job from ``start`` to ``end``; returns the records of this run."""
        self._stopped = False
        first = len(self.records)
        for note in self.calendar.coverage_gaps(start, end):
            self._alert(start, "no_session", "warning", "trading calendar incomplete", note)
        plan = self.plan(start, end)
        days: dict[date, _Day] = {}
        for i, firing in enumerate(plan):
            if self._stopped:
                break
            if firing.job == "no_session":
                self._record(firing, None, None, "skipped", 0.0, firing.detail)
                continue
            self._wait(firing.at)
            if self._stopped:
                break
            state = days.get(firing.day)
            if state is None:
                state = days[firing.day] = _Day(
                    session=self._session_of(firing.day),
                    special=self.calendar.special_session(firing.day))
            if firing.job == "tick_loop":
                self._tick_window(firing, state)
            else:
                self._point_job(plan, i, firing, state)
        return self.records[first:]

    def _session_of(self, day: date) -> Session:
        session = self.calendar.session(day)
        assert session is not None  # the plan only holds jobs for session days
        return session

    def _wait(self, when: datetime) -> None:
        while not self._stopped and self.clock.now() < when:
            self.clock.sleep_until(when)

    def _point_job(self, plan: list[Firing], i: int, firing: Firing, state: _Day) -> None:
        job = firing.job
        spec = self.specs[job]
        now = self.clock.now()
        late = now - firing.at
        if late > spec.misfire_grace:
            self._missed(firing, state, late,
                         f"{_fmt(late)} late, beyond its misfire grace of "
                         f"{_fmt(spec.misfire_grace)}")
            return
        if spec.coalesce and late > self.late_tolerance:
            newer = _newer_due(plan, i, now, spec.misfire_grace)
            if newer is not None:
                self._missed(firing, state, late, f"coalesced into the run for {newer.day}",
                             outcome="coalesced")
                return
        if job == "session_start" and not state.trading:
            self._record(firing, None, None, "skipped", late.total_seconds(),
                         "trading off: " + "; ".join(state.reasons))
            return
        outcome: Outcome = "ran_late" if late > self.late_tolerance else "ran"
        ctx = DayContext(day=firing.day, session=state.session, special=state.special,
                         scheduled=firing.at, trading=state.trading,
                         reasons=tuple(state.reasons))
        try:
            if job == "pre_open_checks":
                result = self.jobs.pre_open_checks(ctx)
                detail = "; ".join(result.reasons)
                if not result.passed:
                    outcome = "failed"
                    state.turn_off("pre-open checks failed: " + detail)
                    self._alert(firing.day, job, "critical",
                                f"pre-open checks failed for {firing.day}; trading stays off",
                                detail)
            else:
                detail = getattr(self.jobs, job)(ctx) or ""
        except Exception as exc:  # a job's crash is recorded and alerted, never fatal here
            self._record(firing, now, self.clock.now(), "error", late.total_seconds(),
                         f"{type(exc).__name__}: {exc}")
            if job in _OPEN_ANCHORED:
                state.turn_off(f"{job} raised {type(exc).__name__}")
            self._alert(firing.day, job, "critical",
                        f"{job} for {firing.day} raised {type(exc).__name__}"
                        + ("; trading stays off" if job in _OPEN_ANCHORED else ""), str(exc))
            return
        self._record(firing, now, self.clock.now(), outcome, late.total_seconds(), detail)

    def _tick_window(self, firing: Firing, state: _Day) -> None:
        assert firing.end is not None
        now = self.clock.now()
        late = now - firing.at
        if not state.trading:
            self._record(firing, None, None, "skipped", max(0.0, late.total_seconds()),
                         "trading off: " + "; ".join(state.reasons))
            return
        if now >= firing.end:
            self._missed(firing, state, late, f"the window ended at {firing.end:%H:%M:%S}")
            return
        window = TickWindow(day=firing.day, session=state.session, special=state.special,
                            start=max(now, firing.at), end=firing.end, index=firing.index,
                            last=firing.last)
        try:
            detail = self.jobs.tick_loop(window) or ""
        except Exception as exc:  # the engine stops for the day; exits go to square-off
            state.turn_off(f"tick loop raised {type(exc).__name__}")
            self._record(firing, now, self.clock.now(), "error", late.total_seconds(),
                         f"{type(exc).__name__}: {exc}")
            self._alert(firing.day, "tick_loop", "critical",
                        f"tick loop for {firing.day} raised {type(exc).__name__}; trading "
                        "stays off", str(exc))
            return
        outcome: Outcome = "ran_late" if late > self.late_tolerance else "ran"
        self._record(firing, now, self.clock.now(), outcome, late.total_seconds(), detail)

    def _missed(self, firing: Firing, state: _Day, late: timedelta, why: str,
                outcome: Outcome = "missed") -> None:
        job = firing.job
        self._record(firing, None, None, outcome, late.total_seconds(), why)
        if job in _OPEN_ANCHORED:
            state.turn_off(f"{job} {outcome} ({why})")
        if outcome == "coalesced":
            return
        consequence = {"pre_open_checks": "; trading stays off",
                       "session_start": "; trading stays off",
                       "square_off": "; positions may still be open",
                       "tick_loop": "; no ticks were processed in that window"}.get(job, "")
        self._alert(firing.day, job, "critical" if job == "square_off" else "warning",
                    f"{job} for {firing.day} missed{consequence}", why)

    def _record(self, firing: Firing, actual: datetime | None, finished: datetime | None,
                outcome: Outcome, late_s: float, detail: str) -> None:
        record = JobRecord(day=firing.day, job=firing.job, scheduled=firing.at, actual=actual,
                           finished=finished, outcome=outcome, late_s=late_s, detail=detail)
        self.records.append(record)
        if self.on_record is not None:
            self.on_record(record)  # an audit failure must stop the runner, so no try here

    def _alert(self, day: date, job: JobName, severity: Severity, title: str,
               body: str) -> None:
        alert = ScheduleAlert(day=day, job=job, at=self.clock.now(), severity=severity,
                              title=title, body=body)
        self.alerts.append(alert)
        if self.on_alert is not None:
            self.on_alert(alert)


def _newer_due(plan: list[Firing], i: int, now: datetime, grace: timedelta) -> Firing | None:
    """The newest later firing of the same job that is also due now and within its grace."""
    job = plan[i].job
    found: Firing | None = None
    for later in plan[i + 1:]:
        if later.at > now:
            break
        if later.job == job and now - later.at <= grace:
            found = later
    return found


def _seconds(t: time) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second


def _fmt(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"
