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
    return EXIT_FINDINGS if errors else EXIT_OK


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


def _cmd_run(args: argparse.Namespace) -> int:
    from .audit import AuditStore
    from .runner import RunConfig, run
    from .summary import summarize

    feed = args.feed or f"synthetic:{args.scenario}"
    config = RunConfig(policies=tuple(args.policies), strategies=tuple(args.strategies),
                       feed=feed, db=args.db, seed=args.seed, data_seed=args.data_seed,
                       pace_s=args.pace,
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ruleengine", description=__doc__.splitlines()[0]
                                     if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("lint", help="check policy and strategy YAML without running anything")
    p.add_argument("paths", nargs="+", help="policy files or folders")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--strict", action="store_true", help="treat warnings as errors")
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
    p.add_argument("--pace", type=float, default=0.0, help="seconds to wait per tick")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_run)

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
