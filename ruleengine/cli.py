"""The ``ruleengine`` command: parses arguments and calls library functions, nothing more.

Exit codes follow linters and test runners so CI can use them: 0 clean, 1 findings or failures,
2 a usage error (bad arguments, unknown kind).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ruleengine", description=__doc__.splitlines()[0]
                                     if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("lint", help="check policy and strategy YAML without running anything")
    p.add_argument("paths", nargs="+", help="policy files or folders")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--strict", action="store_true", help="treat warnings as errors")
    p.set_defaults(func=_cmd_lint)

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
