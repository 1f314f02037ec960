"""The ``ruleengine`` command: parses arguments and calls library functions, nothing more.

Exit codes follow linters and test runners so CI can use them: 0 clean, 1 findings or failures,
2 a usage error (bad arguments, unknown kind).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from .errors import RuleEngineError
from .functions import FUNCTIONS
from .names import default_registry
from .policyset import lint
from .schema import kinds, schema_text

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


def _cmd_lint(args: argparse.Namespace) -> int:
    usage = _dry_run_usage(args)
    if usage:
        print(f"ruleengine lint: {usage}", file=sys.stderr)
        return EXIT_USAGE
    findings = lint(args.paths, strict=args.strict)
    errors = [f for f in findings if f.severity == "error"]
    if args.format == "json":
        print(json.dumps([f.as_dict() for f in findings], indent=2, ensure_ascii=False))
    else:
        for f in findings:
            print(f)
        warnings = len(findings) - len(errors)
        if findings:
            print(f"{len(errors)} error(s), {warnings} warning(s)", file=sys.stderr)
        else:
            print("no problems found", file=sys.stderr)
    if errors or args.dry_run is None:
        return EXIT_FINDINGS if errors else EXIT_OK
    return _cmd_dry_run(args)


# -- dry run: lint --dry-run DATA [--compare OTHER] (operating it) ------------------------------
def _dry_run_usage(args: argparse.Namespace) -> str:
    if args.dry_run is None and (args.compare or args.prev_close is not None):
        return "--compare and --prev-close go with --dry-run DATA"
    if args.dry_run is not None and args.format == "json":
        return "--dry-run prints a text timeline; drop --format json"
    return ""


def _cmd_dry_run(args: argparse.Namespace) -> int:
    """Replay DATA through the linted policies (paper broker, throwaway audit database) and
    print the timeline, or with --compare how another policy folder would have differed."""
    from .dryrun import compare, compare_paths, dry_run
    from .errors import ConfigError, FeedError

    try:
        first = dry_run(args.dry_run, args.paths, prev_close=args.prev_close)
        if args.compare is None:
            print(first.render())
            return EXIT_OK
        other = dry_run(args.dry_run, compare_paths(args.paths, args.compare),
                        prev_close=first.prev_close)
    except (ConfigError, FeedError, ValueError) as exc:  # no such file, or not a bar file
        print(f"ruleengine lint --dry-run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RuleEngineError as exc:
        print(f"ruleengine lint --dry-run: {exc}", file=sys.stderr)
        return EXIT_FINDINGS
    print(compare(first, other).render())
    return EXIT_OK
# -- end dry run ----------------------------------------------------------------------------------


def _cmd_schema(args: argparse.Namespace) -> int:
    if args.kind is None:
        print("\n".join(kinds()))
        return EXIT_OK
    if args.kind not in (*kinds(), "common"):
        print(f"unknown kind {args.kind!r}; one of: {', '.join(kinds())}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(schema_text(args.kind))
    return EXIT_OK


def _cmd_names(args: argparse.Namespace) -> int:
    if args.functions:
        for name, fn in FUNCTIONS.items():
            print(f"{name}({', '.join(fn.args)}) -> {fn.returns}: {fn.doc}")
        return EXIT_OK
    reg = default_registry()
    if args.format == "json":
        print(json.dumps({n: {"type": i.type, "unit": i.unit, "description": i.description,
                              "range": [i.low, i.high]} for n, i in reg.items()}, indent=2))
        return EXIT_OK
    width = max(len(n) for n in reg)
    for name, info in reg.items():
        unit = f" [{info.unit}]" if info.unit else ""
        print(f"{name:<{width}}  {info.type:<6}{unit}  {info.description}")
    return EXIT_OK


def _cmd_docs(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .reference import REGENERATE, render_reference

    text = render_reference()
    path = Path(args.output)
    if args.check:
        try:
            current = path.read_text(encoding="utf-8")
        except OSError:
            current = None
        if current != text:
            state = "is missing" if current is None else "is out of date"
            print(f"{path} {state}; regenerate it with: {REGENERATE}", file=sys.stderr)
            return EXIT_FINDINGS
        print(f"{path} is up to date", file=sys.stderr)
        return EXIT_OK
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")
    print(f"wrote {path}", file=sys.stderr)
    return EXIT_OK


# -- test: policy regression tests (operating it, item 3) -------------------------------------
def _cmd_test(args: argparse.Namespace) -> int:
    """``test [PATH ...] [--coverage]``: run the ``*_test.yaml`` policy tests under the paths
    against the policy set loaded from the same folders, like a test runner."""
    from pathlib import Path

    from .policytest import DEFAULT_PATHS, run_tests

    paths = args.paths or [p for p in DEFAULT_PATHS if Path(p).exists()]
    missing = [p for p in paths if not Path(p).exists()]
    if not paths or missing:
        print(f"ruleengine test: no such file or folder: {', '.join(missing or DEFAULT_PATHS)}",
              file=sys.stderr)
        return EXIT_USAGE
    report = run_tests(paths, on_output=lambda text: print(text, flush=True))
    if not report.files:
        print(f"ruleengine test: no policy tests (*_test.yaml) under {' '.join(paths)}",
              file=sys.stderr)
        return EXIT_USAGE
    print(report.summary())
    if args.coverage and report.coverage is not None:
        print(report.coverage.render())
    return EXIT_OK if report.ok(need_coverage=args.coverage) else EXIT_FINDINGS
# -- end test -----------------------------------------------------------------------------------


def _cmd_run(args: argparse.Namespace) -> int:
    if args.schedule is not None:
        return _cmd_run_scheduled(args)
    from .audit import AuditStore
    from .runner import RunConfig, run
    from .summary import summarize

    feed = args.feed or f"synthetic:{args.scenario}"
    config = RunConfig(policies=tuple(args.policies), strategies=tuple(args.strategies),
                       feed=feed, db=args.db, seed=args.seed, data_seed=args.data_seed,
                       pace_s=args.pace, reload=args.reload,
                       allow_loosening=args.allow_loosening, prev_close=args.run_prev_close,
                       faults=args.faults,
                       progress=not args.no_progress and sys.stderr.isatty())
    try:
        outcome = run(config)
    except RuleEngineError as exc:
        print(f"ruleengine run: {exc}", file=sys.stderr)
        return EXIT_FINDINGS
    engine = outcome.engine
    pf = engine.state.portfolio
    marks = engine.state.market.mark_price
    per_strategy = {sid: book.realized + pf.unrealized(marks, pf.open_legs(sid))
                    for sid, book in pf.books.items()}
    store = AuditStore(args.db)
    try:
        summary = summarize(store, outcome.run_id, slippage_vs_ltp=outcome.slippage_vs_ltp,
                            gross=pf.realized + pf.unrealized(marks), charges=pf.charges,
                            per_strategy_gross=per_strategy, open_positions=len(pf.open_legs()))
    finally:
        store.close()
    print(summary.render())
    print(f"\nAudit trail: {args.db} (run {outcome.run_id}); "
          f"explain a decision with: ruleengine explain DECISION_ID")
    return EXIT_OK


def _cmd_run_scheduled(args: argparse.Namespace) -> int:
    """``run --schedule``: the schedule policy's daily jobs, each session's tick loop being that
    day's synthetic session through :func:`ruleengine.runner.run`.

    Without dates it works today on the wall clock, waiting for the market's times; with
    ``FROM[..TO]`` it rehearses those days on a simulated clock, back to back.
    """
    from datetime import date, datetime, time

    from .calendar import IST
    from .clock import Clock, SimulatedClock, WallClock
    from .policyset import PolicySet, load_policy_set
    from .runner import RunConfig, RunOutcome, run
    from .scheduler import (
        CheckResult,
        DayContext,
        JobRecord,
        MarketJobs,
        MarketScheduler,
        ScheduleAlert,
        TickWindow,
    )

    if args.feed:
        print("ruleengine run: --schedule runs each day's synthetic session; drop --feed",
              file=sys.stderr)
        return EXIT_USAGE
    clock: Clock
    try:
        if args.schedule == "today":
            clock = WallClock()
            start = end = clock.now().date()
        else:
            first, _, last = args.schedule.partition("..")
            start, end = date.fromisoformat(first), date.fromisoformat(last or first)
            clock = SimulatedClock(datetime.combine(start, time(0), IST))
    except ValueError as exc:
        print(f"ruleengine run: --schedule takes FROM[..TO] as YYYY-MM-DD: {exc}",
              file=sys.stderr)
        return EXIT_USAGE
    paths = [*args.policies, *args.strategies]
    policies: dict[date, PolicySet] = {}
    outcomes: dict[date, RunOutcome] = {}

    def checks(ctx: DayContext) -> CheckResult:
        # the day trades on the YAML as it is on disk now, so that set must load cleanly
        try:
            policies[ctx.day] = load_policy_set(paths)
        except RuleEngineError as exc:
            return CheckResult.fail(*str(exc).splitlines()[:5])
        if ctx.special is not None:
            return CheckResult.fail(f"the synthetic feed has no {ctx.special.reason} session")
        return CheckResult.ok(f"policy set {policies[ctx.day].revision[:12]} loads")

    def ticks(window: TickWindow) -> str:
        if window.index > 0:
            return "the synthetic session already ran whole in the first window"
        config = RunConfig(policies=tuple(args.policies), strategies=tuple(args.strategies),
                           feed=f"synthetic:{args.scenario}", db=args.db, seed=args.seed,
                           data_seed=args.data_seed, day=window.day)
        outcome = outcomes[window.day] = run(config, policy=policies[window.day])
        return f"run {outcome.run_id}: {outcome.ticks} ticks"

    def report(ctx: DayContext) -> str:
        outcome = outcomes.get(ctx.day)
        if outcome is None:
            return "no trading today"
        pf = outcome.engine.state.portfolio
        gross = pf.realized + pf.unrealized(outcome.engine.state.market.mark_price)
        return (f"run {outcome.run_id}: gross {gross:,.2f}, charges {pf.charges:,.2f}, "
                f"open positions {len(pf.open_legs())}")

    def show(r: JobRecord) -> None:
        at = f"{r.actual:%H:%M:%S}" if r.actual else "--:--:--"
        print(f"{r.day} {r.job:<17} {r.scheduled:%H:%M:%S} {at} {r.outcome:<9} {r.detail}",
              flush=True)

    def alert(a: ScheduleAlert) -> None:
        print(f"ALERT {a.severity}: {a.title}" + (f" — {a.body}" if a.body else ""),
              file=sys.stderr, flush=True)

    try:
        scheduler = MarketScheduler.from_policy_set(
            load_policy_set(paths), MarketJobs(pre_open_checks=checks, tick_loop=ticks,
                                               end_of_day_report=report),
            clock, on_record=show, on_alert=alert)
    except RuleEngineError as exc:
        print(f"ruleengine run: {exc}", file=sys.stderr)
        return EXIT_FINDINGS
    records = scheduler.run(start, end)
    bad = [r for r in records if r.outcome in ("failed", "error", "missed")]
    return EXIT_FINDINGS if bad else EXIT_OK


def _cmd_explain(args: argparse.Namespace) -> int:
    from .audit import AuditStore
    from .explain import explain

    store = AuditStore(args.db)
    try:
        print(explain(store, args.decision_id, args.run))
    except RuleEngineError as exc:
        print(f"ruleengine explain: {exc}", file=sys.stderr)
        return EXIT_FINDINGS
    finally:
        store.close()
    return EXIT_OK


def _cmd_command(args: argparse.Namespace) -> int:
    """kill, rearm, override, clear-override: queued in the audit store for the runner, which
    takes them on its next tick (a crash of either side loses nothing)."""
    import getpass
    from datetime import datetime

    from .audit import AuditStore

    command = args.command.replace("-", "_")
    rule_id = getattr(args, "rule_id", "") or ""
    until = getattr(args, "until", "") or ""
    store = AuditStore(args.db)
    try:
        if command in ("override", "clear_override"):
            from .policyset import load_policy_set

            try:
                policy = load_policy_set([*args.policies, *args.strategies])
                rule = policy.rule(rule_id)
            except KeyError:
                print(f"no rule {rule_id!r} in the policy set", file=sys.stderr)
                return EXIT_USAGE
            if command == "override" and not rule.overridable:
                print(f"rule {rule_id!r} is marked overridable: false ({rule.location})",
                      file=sys.stderr)
                return EXIT_FINDINGS
        ident = store.add_command(command, args.reason, who=args.who or getpass.getuser(),
                                  created=datetime.now().isoformat(timespec="seconds"),
                                  rule_id=rule_id, until=until)
    finally:
        store.close()
    print(f"{command} queued as command {ident}; the running engine takes it on its next tick")
    return EXIT_OK


def _cmd_status(args: argparse.Namespace) -> int:
    from .audit import AuditStore
    from .status import read_status

    store = AuditStore(args.db)
    try:
        print(read_status(store, args.run).render())
    finally:
        store.close()
    return EXIT_OK


# -- orders: the review queue (pre-trade checks issue) ---------------------------------------
def _cmd_orders(args: argparse.Namespace) -> int:
    """``orders pending|approve ID|reject ID``: the review queue in the audit database, which
    the running engine reads on its next tick (approved orders are sent, rejected refused)."""
    import getpass
    from datetime import datetime

    from .review import ReviewError, ReviewQueue

    queue = ReviewQueue(args.db)
    try:
        if args.orders_action == "pending":
            items = queue.pending()
            for item in items:
                print(f"{item.id:>5}  held {item.created_ts:%H:%M:%S}  expires "
                      f"{item.expires_ts:%H:%M:%S}  {item.describe()}  — {item.reason}")
            if not items:
                print("no orders waiting for review", file=sys.stderr)
            return EXIT_OK
        decide = queue.approve if args.orders_action == "approve" else queue.reject
        try:
            item = decide(args.id, who=args.who or getpass.getuser(),
                          at=datetime.now().isoformat(timespec="seconds"), note=args.reason)
        except ReviewError as exc:
            print(f"ruleengine orders: {exc}", file=sys.stderr)
            return EXIT_FINDINGS
        print(f"review item {item.id} {item.status}: {item.describe()}; the running engine "
              "takes it on its next tick")
        return EXIT_OK
    finally:
        queue.close()
# -- end orders ---------------------------------------------------------------------------------


# -- reload approve: let a held, loosening policy change go live (operating it) -----------------
def _cmd_reload(args: argparse.Namespace) -> int:
    """``reload approve REVISION``: queued in the audit store's commands table; a run started
    with ``--reload`` takes it on its next tick and swaps that revision in if it is held."""
    import getpass
    import re
    from datetime import datetime

    from .audit import AuditStore
    from .reload import APPROVE_COMMAND

    revision = args.revision.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{8,64}", revision):
        print("ruleengine reload approve: REVISION is the policy revision (at least 8 hex "
              "digits) from the held-change alert", file=sys.stderr)
        return EXIT_USAGE
    store = AuditStore(args.db)
    try:
        ident = store.add_command(APPROVE_COMMAND, args.reason, who=args.who or getpass.getuser(),
                                  created=datetime.now().isoformat(timespec="seconds"),
                                  rule_id=revision)
    finally:
        store.close()
    print(f"approval of policy {revision[:12]} queued as command {ident}; the running engine "
          "takes it on its next tick")
    return EXIT_OK
# -- end reload approve ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ruleengine", description=__doc__.splitlines()[0]
                                     if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("lint", help="check policy and strategy YAML without running anything")
    p.add_argument("paths", nargs="+", help="policy files or folders")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--strict", action="store_true", help="treat warnings as errors")
    p.add_argument("--dry-run", metavar="DATA", help="then replay a recorded file (replay "
                   "formats) through these policies with the paper broker and print what "
                   "would have fired and which orders would have gone out")
    p.add_argument("--compare", metavar="OTHER_POLICY_DIR", help="with --dry-run: also run "
                   "another policy folder (with these strategies unless it has its own) and "
                   "print where the two decided differently")
    p.add_argument("--prev-close", type=float, metavar="PRICE", help="with --dry-run: the "
                   "previous session's close (default: the first bar's open)")
    p.set_defaults(func=_cmd_lint)

    p = sub.add_parser("run", help="run a trading day: synthetic data and the paper broker by "
                       "default")
    p.add_argument("--scenario", default="calm", help="synthetic scenario (calm, trend-up, "
                   "gap-down-3pct, flash-crash, vix-spike, lower-circuit)")
    p.add_argument("--feed", help="feed spec, e.g. replay:PATH (overrides --scenario)")
    p.add_argument("--policies", nargs="+", default=["policies"])
    p.add_argument("--strategies", nargs="+", default=["strategies"])
    p.add_argument("--db", default="ruleengine.db", help="SQLite audit store")
    p.add_argument("--seed", type=int, default=1, help="seed of the paper broker's fills")
    p.add_argument("--data-seed", type=int, default=1, help="seed of the synthetic market")
    p.add_argument("--faults", default="", metavar="SPEC",
                   help="rehearse a bad day: inject broker faults, e.g. "
                        "ratelimit=0.1,timeout=0.05,reject=0.02,dup=0.05,reorder=0.05")
    p.add_argument("--prev-close", type=float, dest="run_prev_close", metavar="PRICE",
                   help="the previous session's close, for replays (market.change_pct needs it)")
    p.add_argument("--pace", type=float, default=0.0, help="seconds to wait per tick")
    p.add_argument("--reload", action="store_true", help="watch the policy and strategy "
                   "folders; a valid edit is swapped in between two ticks, an invalid one "
                   "raises an alert and changes nothing")
    p.add_argument("--allow-loosening", action="store_true", help="with --reload: apply edits "
                   "that loosen a hard limit during market hours without `reload approve`")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--schedule", nargs="?", const="today", metavar="FROM[..TO]",
                   help="run the schedule policy's daily jobs: today on the wall clock, or "
                   "rehearse the given dates (YYYY-MM-DD) on a simulated clock")
    p.set_defaults(func=_cmd_run)

    for name, text in (("kill", "stop everything now: halt, cancel pending, square off"),
                       ("rearm", "resume trading after a kill or a manual halt")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--reason", required=True, help="why; recorded in the audit trail")
        p.add_argument("--who", default="", help="who is acting (default: the login name)")
        p.add_argument("--db", default="ruleengine.db")
        p.set_defaults(func=_cmd_command)
    for name, text in (("override", "suspend one rule until a time, with a reason"),
                       ("clear-override", "end an override early")):
        p = sub.add_parser(name, help=text)
        p.add_argument("rule_id")
        if name == "override":
            p.add_argument("--until", required=True, help="HH:MM (today, exchange time) or an "
                           "ISO date-time")
        p.add_argument("--reason", required=True)
        p.add_argument("--who", default="")
        p.add_argument("--db", default="ruleengine.db")
        p.add_argument("--policies", nargs="+", default=["policies"])
        p.add_argument("--strategies", nargs="+", default=["strategies"])
        p.set_defaults(func=_cmd_command)

    # -- orders: the review queue (pre-trade checks issue) -----------------------------------
    p = sub.add_parser("orders", help="orders held for confirmation: pending, approve, reject")
    osub = p.add_subparsers(dest="orders_action", required=True)
    o = osub.add_parser("pending", help="list orders waiting for a person")
    o.add_argument("--db", default="ruleengine.db")
    for name in ("approve", "reject"):
        o = osub.add_parser(name, help=f"{name} one held order (all its slices)")
        o.add_argument("id", type=int, help="review item id from `ruleengine orders pending`")
        o.add_argument("--reason", default="", help="recorded with the decision")
        o.add_argument("--who", default="", help="who decides (default: the login name)")
        o.add_argument("--db", default="ruleengine.db")
    p.set_defaults(func=_cmd_orders)
    # -- end orders ---------------------------------------------------------------------------

    # -- reload approve (operating it) ----------------------------------------------------------
    p = sub.add_parser("reload", help="hot reload: approve a held policy change")
    rsub = p.add_subparsers(dest="reload_action", required=True)
    r = rsub.add_parser("approve", help="apply a held change that loosens a hard limit")
    r.add_argument("revision", help="the policy revision (or its first 8+ hex digits) named in "
                   "the held-change alert")
    r.add_argument("--reason", default="", help="why; recorded in the audit trail")
    r.add_argument("--who", default="", help="who approves (default: the login name)")
    r.add_argument("--db", default="ruleengine.db")
    p.set_defaults(func=_cmd_reload)
    # -- end reload approve ---------------------------------------------------------------------

    # -- test: policy regression tests (operating it, item 3) ---------------------------------
    p = sub.add_parser("test", help="run the policy tests (*_test.yaml) beside the policies")
    p.add_argument("paths", nargs="*", help="test files or folders; the policy set is loaded "
                   "from the same folders (default: policies strategies)")
    p.add_argument("--coverage", action="store_true", help="list guard rules no case makes fire "
                   "or shows not firing; any such rule fails the run")
    p.set_defaults(func=_cmd_test)
    # -- end test -----------------------------------------------------------------------------

    p = sub.add_parser("status", help="trading state per scope, overrides, why each halt happened")
    p.add_argument("--db", default="ruleengine.db")
    p.add_argument("--run", type=int, default=None)
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("explain", help="explain one decision from the audit store")
    p.add_argument("decision_id")
    p.add_argument("--db", default="ruleengine.db")
    p.add_argument("--run", type=int, default=None, help="run id (default: the latest)")
    p.set_defaults(func=_cmd_explain)

    p = sub.add_parser("schema", help="print the JSON Schema of a policy kind")
    p.add_argument("kind", nargs="?", help="policy kind; omit to list the kinds")
    p.set_defaults(func=_cmd_schema)

    p = sub.add_parser("names", help="list the names expressions may read")
    p.add_argument("--functions", action="store_true", help="list the function library")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=_cmd_names)

    p = sub.add_parser("docs", help="write the policy reference (docs/reference.md) from the "
                       "schemas, names, functions and finding codes")
    p.add_argument("--output", default="docs/reference.md", help="file to write or check")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if the file differs from what would be written")
    p.set_defaults(func=_cmd_docs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
