"""Policy expressions: checked and compiled once at load, evaluated cheaply every tick.

The grammar is simpleeval's (comparisons, boolean logic, arithmetic, calls), narrowed further:
names must be dotted paths in the context registry, calls must name a function from
:mod:`ruleengine.functions`, and there is no attribute access on values, no subscripts, no
lambdas, comprehensions or f-strings. Because every node is checked against that whitelist, the
checked tree can be rebuilt into a plain Python lambda over a flat ``{name: value}`` mapping and
compiled once; ticks then pay for a function call, not for parsing or tree walking.

Safety comes from the whitelist, not from evaluating carefully: unsafe constructs are refused at
load. Values that could explode (``9**9**9``, ``'a' * 10**9``) are refused by type and bound
checks before any folding happens. At run time a missing value (the name is absent from the
mapping) or an arithmetic fault surfaces as :class:`~ruleengine.errors.EvaluationError`, which
the engine resolves to the safe side.

This is the only module that touches simpleeval: it supplies the grammar's operator table
(reused for constant folding) and serves as the reference evaluator in tests and benchmarks.
"""

from __future__ import annotations

import ast
import bisect
import copy
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import simpleeval

from .errors import EvaluationError, ExpressionError, Finding
from .functions import FUNCTIONS
from .names import Registry

MAX_SOURCE = 2000
MAX_EXPONENT = 64
MAX_LITERAL = 200

_ARITH = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)
_ORDER = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_OP_TEXT = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
            ast.Mod: "%", ast.Pow: "**", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
            ast.Eq: "==", ast.NotEq: "!=", ast.In: "in", ast.NotIn: "not in"}
_FN_TABLE = {name: f.fn for name, f in FUNCTIONS.items()}
_NO_VALUE = object()

#: What an English reader calls each refused construct (plural: "... are not allowed").
_FORBIDDEN = {
    "Lambda": "lambdas", "ListComp": "comprehensions", "SetComp": "comprehensions",
    "DictComp": "comprehensions", "GeneratorExp": "comprehensions",
    "Subscript": "subscripts (x[...])", "JoinedStr": "f-strings",
    "NamedExpr": "assignments (:=)", "Starred": "starred (*) arguments",
    "Dict": "dict literals", "Set": "set literals", "Await": "await expressions",
    "Yield": "yield expressions", "YieldFrom": "yield expressions", "Slice": "slices",
}


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an expression's first character sits in its file (1-based).

    ``segments`` maps a scalar that YAML folded from several lines (a plain or ``>`` scalar
    written over more than one line) back to the file: one ``(offset in the value, line, col)``
    per physical line. Without it, continuation lines start at ``cont_col``.
    """

    file: str
    line: int
    col: int
    cont_col: int = 1  # column of continuation lines (block scalars)
    segments: tuple[tuple[int, int, int], ...] = ()

    def at(self, source: str, offset: int) -> tuple[int, int]:
        """The file line and column of character ``offset`` of ``source``."""
        if self.segments:
            starts = [s[0] for s in self.segments]
            start, line, col = self.segments[max(bisect.bisect_right(starts, offset) - 1, 0)]
            return line, col + offset - start
        line_idx = source.count("\n", 0, offset)
        if line_idx == 0:
            return self.line, self.col + offset
        return self.line + line_idx, self.cont_col + offset - (source.rfind("\n", 0, offset) + 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class CompiledExpr:
    """A checked, compiled expression. ``verdict`` is "always"/"never" when it cannot vary."""

    source: str
    names: tuple[str, ...]
    type: str
    fn: Callable[[Mapping[str, Any]], Any] = field(repr=False, compare=False)
    verdict: str | None = None
    origin: Origin | None = field(default=None, compare=False)
    tree: ast.expr | None = field(default=None, repr=False, compare=False)  # checked body

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        """Evaluate against a flat ``{dotted.name: value}`` mapping; absent names are missing."""
        try:
            return self.fn(values)
        except KeyError as exc:
            raise EvaluationError(f"no value for {exc.args[0]!r}") from None
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise EvaluationError(f"{type(exc).__name__}: {exc}") from None

    def inputs(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The values this expression read, for decision records (absent ones as None)."""
        return {n: values.get(n) for n in self.names}


@dataclass(slots=True)
class _Out:
    node: ast.expr
    type: str
    value: Any = _NO_VALUE
    verdict: str | None = None

    @property
    def const(self) -> bool:
        return self.value is not _NO_VALUE


class _Compiler:
    def __init__(self, source: str, registry: Registry, origin: Origin) -> None:
        self.source = source
        self.registry = registry
        self.origin = origin
        self.names: list[str] = []

    # -- locations and failures -------------------------------------------------------------
    def where(self, node: ast.AST | None) -> tuple[int, int]:
        """File position of ``node``; its positions count the '(' that :meth:`compile` adds."""
        lineno = getattr(node, "lineno", 1)
        col = getattr(node, "col_offset", 1)
        lines = self.source.split("\n")
        lineno = min(lineno, len(lines))
        offset = sum(len(text) + 1 for text in lines[:lineno - 1])
        offset += max(col - 1, 0) if lineno == 1 else col
        return self.origin.at(self.source, offset)

    def at_offset(self, offset: int) -> ast.AST:
        """A location-only node at character ``offset`` of the source."""
        line_idx = self.source.count("\n", 0, offset)
        col = offset - (self.source.rfind("\n", 0, offset) + 1)
        return ast.Constant(value=None, lineno=line_idx + 1,
                            col_offset=col + 1 if line_idx == 0 else col)

    def after(self, node: ast.AST) -> ast.AST:
        """A location-only node at the first token after ``node`` (the operator that follows)."""
        lines = ("(" + self.source).split("\n")
        line = getattr(node, "end_lineno", None) or 1
        col = getattr(node, "end_col_offset", None) or 0
        while line <= len(lines):
            text = lines[line - 1]
            while col < len(text) and text[col] in " \t)":
                col += 1
            if col < len(text):
                return ast.Constant(value=None, lineno=line, col_offset=col)
            line, col = line + 1, 0
        return node

    def fail(self, node: ast.AST | None, code: str, message: str) -> NoReturn:
        line, col = self.where(node)
        raise ExpressionError(Finding(file=self.origin.file, line=line, col=col, code=code,
                                      message=message))

    # -- entry point ---------------------------------------------------------------------------
    def compile(self, expect: str | None) -> CompiledExpr:
        src = self.source
        if len(src) > MAX_SOURCE:
            self.fail(None, "expr-too-large", f"expression is {len(src)} characters; at most "
                      f"{MAX_SOURCE} are allowed")
        if not src.strip():
            self.fail(None, "expr-syntax", "expression is empty")
        extra = _unmatched_close(src)
        if extra is not None:  # the '(' added below would otherwise pair with it
            self.fail(self.at_offset(extra), "expr-syntax",
                      f"not a valid expression: unmatched {src[extra]!r}")
        try:
            # Parenthesised so expressions may span lines (block YAML scalars).
            tree = ast.parse("(" + src + "\n)", mode="eval")
        except SyntaxError as exc:
            line, col = exc.lineno or 1, exc.offset or 1
            if line > len(src.rstrip().split("\n")):  # at the ')' added above: src ended early
                self.fail(self.at_offset(len(src.rstrip())), "expr-syntax",
                          "not a valid expression: it ends before it is complete")
            fake = ast.Constant(value=None, lineno=line, col_offset=col - 1)
            self.fail(fake, "expr-syntax", f"not a valid expression: {exc.msg}")
        out = self.visit(tree.body)
        if expect is not None and out.type != expect:
            self.fail(tree.body, "type-mismatch",
                      f"this must give {_type_word(expect)}, but it gives {_type_word(out.type)}")
        verdict = out.verdict
        if out.const and out.type == "bool":
            verdict = "always" if out.value else "never"
        lam = ast.Expression(body=ast.Lambda(
            args=ast.arguments(posonlyargs=[], args=[ast.arg(arg="n")], vararg=None,
                               kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[]),
            body=out.node))
        ast.fix_missing_locations(lam)
        fn = eval(compile(lam, f"<{self.origin.file}>", "eval"),  # whitelisted AST only
                  {"__builtins__": {}, "_F": _FN_TABLE})
        return CompiledExpr(tree=out.node,
                            source=src, names=tuple(dict.fromkeys(self.names)), type=out.type,
                            fn=fn, verdict=verdict, origin=self.origin)

    # -- nodes -----------------------------------------------------------------------------------
    def visit(self, node: ast.expr) -> _Out:
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            what = _FORBIDDEN.get(type(node).__name__, type(node).__name__)
            where: ast.AST = node
            if isinstance(node, ast.Subscript):
                where = self.after(node.value)  # the '['
            elif isinstance(node, ast.NamedExpr):
                where = self.after(node.target)  # the ':='
            self.fail(where, "expr-forbidden", f"{what} are not allowed in policy expressions"
                      if not what[0].isupper() else f"{what} is not allowed in policy expressions")
        result: _Out = method(node)
        return result

    def visit_Constant(self, node: ast.Constant) -> _Out:
        v = node.value
        if isinstance(v, bool):
            return _Out(ast.Constant(value=v), "bool", v, "always" if v else "never")
        if isinstance(v, (int, float)) and not isinstance(v, complex):
            return _Out(ast.Constant(value=v), "number", v)
        if isinstance(v, str):
            if len(v) > MAX_LITERAL:
                self.fail(node, "expr-too-large", f"text literal longer than {MAX_LITERAL}")
            return _Out(ast.Constant(value=v), "str", v)
        self.fail(node, "expr-forbidden", f"literal {v!r} is not allowed; use numbers, text, "
                  "true or false")

    def _dotted(self, node: ast.expr) -> str:
        parts: list[str] = []
        cur: ast.expr = node
        while isinstance(cur, ast.Attribute):
            if cur.attr.startswith("_"):  # point at the attribute itself
                at = ast.Constant(value=None, lineno=cur.end_lineno or 1,
                                  col_offset=(cur.end_col_offset or 0) - len(cur.attr))
                self.fail(at, "expr-forbidden", "names starting with '_' are not allowed")
            parts.append(cur.attr)
            cur = cur.value
        if not isinstance(cur, ast.Name):
            self.fail(node, "expr-forbidden", "attribute access is only allowed on registry "
                      "names such as account.day_pnl_pct")
        parts.append(cur.id)
        if cur.id.startswith("_"):
            self.fail(cur, "expr-forbidden", "names starting with '_' are not allowed")
        return ".".join(reversed(parts))

    def visit_Name(self, node: ast.Name) -> _Out:
        return self._name(node)

    def visit_Attribute(self, node: ast.Attribute) -> _Out:
        return self._name(node)

    def _name(self, node: ast.expr) -> _Out:
        dotted = self._dotted(node)
        if dotted in ("true", "false"):
            value = dotted == "true"
            return _Out(ast.Constant(value=value), "bool", value, "always" if value else "never")
        info = self.registry.get(dotted)
        if info is None:
            hint = self.registry.suggest(dotted)
            extra = f" — did you mean {hint!r}?" if hint else " (see `ruleengine names`)"
            self.fail(node, "unknown-name", f"unknown name {dotted!r}{extra}")
        self.names.append(dotted)
        ref = ast.Subscript(value=ast.Name(id="n", ctx=ast.Load()),
                            slice=ast.Constant(value=dotted), ctx=ast.Load())
        return _Out(ref, info.type)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> _Out:
        inner = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            if inner.type != "bool":
                self.fail(node, "type-mismatch", f"'not' needs true/false, got "
                          f"{_type_word(inner.type)}")
            flip = {"always": "never", "never": "always"}.get(inner.verdict or "")
            return self._fold(ast.UnaryOp(op=ast.Not(), operand=inner.node), "bool", [inner],
                              flip)
        if not isinstance(node.op, (ast.USub, ast.UAdd)):
            self.fail(node, "expr-forbidden", "bitwise operators are not allowed")
        if inner.type != "number":
            self.fail(node, "type-mismatch", f"sign needs a number, got {_type_word(inner.type)}")
        return self._fold(ast.UnaryOp(op=node.op, operand=inner.node), "number", [inner])

    def visit_BinOp(self, node: ast.BinOp) -> _Out:
        if not isinstance(node.op, _ARITH):
            self.fail(self.after(node.left), "expr-forbidden", "bitwise operators are not "
                      "allowed; write 'and', 'or' and 'not' for true/false")
        left, right = self.visit(node.left), self.visit(node.right)
        sym = _OP_TEXT[type(node.op)]
        if left.type != "number" or right.type != "number":
            self.fail(node.left if left.type != "number" else node.right, "type-mismatch",
                      f"'{sym}' needs numbers on both sides, got "
                      f"{_type_word(left.type)} {sym} {_type_word(right.type)}")
        if isinstance(node.op, ast.Pow):
            if not right.const or abs(right.value) > MAX_EXPONENT:
                self.fail(node.right, "expr-too-large", "the exponent of '**' must be a number "
                          f"written in the policy, at most {MAX_EXPONENT}")
            if left.const and abs(left.value) > 1 and right.value > 0 and \
                    right.value * len(str(int(abs(left.value)))) > 300:
                self.fail(node, "expr-too-large", "this power is larger than any price or "
                          "limit could need")
        return self._fold(ast.BinOp(left=left.node, op=node.op, right=right.node), "number",
                          [left, right])

    def visit_BoolOp(self, node: ast.BoolOp) -> _Out:
        parts = [self.visit(v) for v in node.values]
        word = "and" if isinstance(node.op, ast.And) else "or"
        for p, src in zip(parts, node.values, strict=True):
            if p.type != "bool":
                self.fail(src, "type-mismatch", f"'{word}' needs true/false on each side, got "
                          f"{_type_word(p.type)}")
        verdicts = [p.verdict for p in parts]
        verdict: str | None = None
        if word == "and":
            verdict = "never" if "never" in verdicts else (
                "always" if all(v == "always" for v in verdicts) else None)
        else:
            verdict = "always" if "always" in verdicts else (
                "never" if all(v == "never" for v in verdicts) else None)
        return self._fold(ast.BoolOp(op=node.op, values=[p.node for p in parts]), "bool", parts,
                          verdict)

    def visit_Compare(self, node: ast.Compare) -> _Out:
        left = self.visit(node.left)
        outs = [left]
        comparators: list[ast.expr] = []
        cur = left
        prev: ast.expr = node.left
        for op, comp in zip(node.ops, node.comparators, strict=True):
            sym = _OP_TEXT.get(type(op))
            if sym is None:
                self.fail(self.after(prev), "expr-forbidden",
                          "'is' comparisons are not allowed; use ==")
            if isinstance(op, (ast.In, ast.NotIn)):
                right = self._choices(comp, cur.type)
            else:
                right = self.visit(comp)
                if isinstance(op, _ORDER) and (cur.type != "number" or right.type != "number"):
                    self.fail(prev if cur.type != "number" else comp, "type-mismatch",
                              f"'{sym}' compares numbers, got "
                              f"{_type_word(cur.type)} {sym} {_type_word(right.type)}")
                if cur.type != right.type:
                    self.fail(comp, "type-mismatch", f"'{sym}' compares {_type_word(cur.type)} "
                              f"with {_type_word(right.type)}; they can never be equal")
            outs.append(right)
            comparators.append(right.node)
            cur = right
            prev = comp
        verdict = None
        if len(node.ops) == 1:
            verdict = self._range_verdict(node, left, node.ops[0], outs[1])
        return self._fold(ast.Compare(left=left.node, ops=node.ops, comparators=comparators),
                          "bool", outs, verdict)

    def _choices(self, node: ast.expr, want: str) -> _Out:
        if not isinstance(node, (ast.Tuple, ast.List)):
            self.fail(node, "type-mismatch", "'in' needs a list of values written in the policy,"
                      " such as [\"CE\", \"PE\"]")
        items = [self.visit(e) for e in node.elts]
        for item, src in zip(items, node.elts, strict=True):
            if not item.const or item.type != want:
                self.fail(src, "type-mismatch", f"list items must be {_type_word(want)} literals")
        return _Out(ast.Tuple(elts=[i.node for i in items], ctx=ast.Load()), "list",
                    tuple(i.value for i in items))

    def _range_verdict(self, node: ast.Compare, left: _Out, op: ast.cmpop,
                       right: _Out) -> str | None:
        """Spot ``name OP constant`` that the name's documented range decides on its own."""
        if left.const and not right.const and right.type == "number":
            flipped = {ast.Lt: ast.Gt, ast.LtE: ast.GtE, ast.Gt: ast.Lt, ast.GtE: ast.LtE}
            if type(op) in flipped:
                return self._range_verdict(node, right, flipped[type(op)](), left)
            return None
        if left.const or not right.const or right.type != "number":
            return None
        ref = left.node
        name = ref.slice.value if isinstance(ref, ast.Subscript) and \
            isinstance(ref.slice, ast.Constant) and isinstance(ref.value, ast.Name) and \
            ref.value.id == "n" else None
        info = self.registry.get(name) if isinstance(name, str) else None
        if info is None:
            return None
        lo, hi, c = info.low, info.high, right.value
        if isinstance(op, ast.Lt):
            return _verdict(hi is not None and hi < c, lo is not None and lo >= c)
        if isinstance(op, ast.LtE):
            return _verdict(hi is not None and hi <= c, lo is not None and lo > c)
        if isinstance(op, ast.Gt):
            return _verdict(lo is not None and lo > c, hi is not None and hi <= c)
        if isinstance(op, ast.GtE):
            return _verdict(lo is not None and lo >= c, hi is not None and hi < c)
        outside = (lo is not None and c < lo) or (hi is not None and c > hi)
        if isinstance(op, ast.Eq):
            return "never" if outside else None
        if isinstance(op, ast.NotEq):
            return "always" if outside else None
        return None

    def visit_IfExp(self, node: ast.IfExp) -> _Out:
        test, body, other = self.visit(node.test), self.visit(node.body), self.visit(node.orelse)
        if test.type != "bool":
            self.fail(node.test, "type-mismatch", "the condition of 'if' must be true/false")
        if body.type != other.type:
            self.fail(node, "type-mismatch", f"both branches must give the same type, got "
                      f"{_type_word(body.type)} and {_type_word(other.type)}")
        return self._fold(ast.IfExp(test=test.node, body=body.node, orelse=other.node),
                          body.type, [test, body, other])

    def visit_Call(self, node: ast.Call) -> _Out:
        if not isinstance(node.func, ast.Name):
            self.fail(node, "expr-forbidden", "only library functions can be called, by name "
                      "(see `ruleengine names --functions`)")
        fname = node.func.id
        if fname.startswith("_"):
            self.fail(node, "expr-forbidden", "names starting with '_' are not allowed")
        spec = FUNCTIONS.get(fname)
        if spec is None:
            import difflib
            close = difflib.get_close_matches(fname, list(FUNCTIONS), n=1)
            hint = f" — did you mean {close[0]!r}?" if close else ""
            self.fail(node, "unknown-function", f"unknown function {fname!r}{hint}")
        if node.keywords:
            self.fail(node, "expr-forbidden", "keyword arguments are not allowed")
        args = [self.visit(a) for a in node.args]
        want = list(spec.args)
        if want and want[0].startswith("*"):
            if not args:
                self.fail(node, "type-mismatch", f"{fname}() needs at least one argument")
            want = [want[0][1:]] * len(args)
        if len(args) != len(want):
            self.fail(node, "type-mismatch", f"{fname}() takes {len(want)} argument(s), got "
                      f"{len(args)}")
        for a, w, src in zip(args, want, node.args, strict=True):
            if a.type != w:
                self.fail(src, "type-mismatch", f"{fname}() needs {_type_word(w)} here, got "
                          f"{_type_word(a.type)}")
            if spec.const_args and not a.const:
                self.fail(src, "type-mismatch", f"{fname}() takes a value written in the policy")
        call = ast.Call(func=ast.Subscript(value=ast.Name(id="_F", ctx=ast.Load()),
                                           slice=ast.Constant(value=fname), ctx=ast.Load()),
                        args=[a.node for a in args], keywords=[])
        if all(a.const for a in args):
            try:
                value = spec.fn(*(a.value for a in args))
            except (ValueError, ArithmeticError, TypeError) as exc:
                self.fail(node, "expr-syntax", f"{fname}(): {exc}")
            return _Out(ast.Constant(value=value), spec.returns, value)
        return _Out(call, spec.returns)

    def _fold(self, built: ast.expr, typ: str, parts: list[_Out],
              verdict: str | None = None) -> _Out:
        """Evaluate a subtree whose inputs are all literals, once, at load."""
        if not all(p.const for p in parts):
            return _Out(built, typ, verdict=verdict)
        try:
            value = _fold_eval(built)
        except (ArithmeticError, ValueError, TypeError) as exc:
            self.fail(None, "type-mismatch", f"this part can never be evaluated: {exc}")
        return _Out(ast.Constant(value=value), typ, value, verdict)


def compile_batch(exprs: Sequence[CompiledExpr], *,
                  truth: bool = False) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """One callable that evaluates several already-checked expressions into a tuple.

    A tick evaluates every guard rule of a scope; one call instead of one per rule removes
    most of the interpreter overhead. If any expression fails, the whole call raises, and the
    caller falls back to evaluating one by one so each failure is attributed to its rule.
    With ``truth`` each result is its truth value, so a whole tuple compares equal to the last
    tick's outcomes only when no rule changed.
    """
    bodies = [e.tree for e in exprs if e.tree is not None]
    if len(bodies) != len(exprs):
        fns = [e.fn for e in exprs]
        if truth:
            return lambda n: tuple(bool(f(n)) for f in fns)
        return lambda n: tuple(f(n) for f in fns)
    if truth:  # `not not x`: the truth value without a call
        bodies = [ast.UnaryOp(op=ast.Not(), operand=ast.UnaryOp(op=ast.Not(), operand=b))
                  for b in bodies]
    lam = ast.Expression(body=ast.Lambda(
        args=ast.arguments(posonlyargs=[], args=[ast.arg(arg="n")], vararg=None, kwonlyargs=[],
                           kw_defaults=[], kwarg=None, defaults=[]),
        body=ast.Tuple(elts=[copy.deepcopy(b) for b in bodies], ctx=ast.Load())))
    ast.fix_missing_locations(lam)
    fn: Callable[[Mapping[str, Any]], tuple[Any, ...]] = eval(  # whitelisted AST only
        compile(lam, "<rules>", "eval"), {"__builtins__": {}, "_F": _FN_TABLE})
    return fn


def _fold_eval(node: ast.expr) -> Any:
    evaluator = simpleeval.EvalWithCompoundTypes(functions={}, names={})
    return evaluator._eval(ast.fix_missing_locations(node))


def _unmatched_close(src: str) -> int | None:
    """Offset of the first ')', ']' or '}' that closes nothing (outside string literals)."""
    depth = 0
    quote = ""
    escaped = False
    for i, ch in enumerate(src):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                return i
    return None


def _verdict(always: bool, never: bool) -> str | None:
    return "always" if always else "never" if never else None


def _type_word(t: str) -> str:
    return {"number": "a number", "bool": "true/false", "str": "text",
            "list": "a list"}.get(t, t)


def compile_expr(source: str, registry: Registry, origin: Origin | None = None, *,
                 expect: str | None = "bool") -> CompiledExpr:
    """Check and compile one expression; raises :class:`ExpressionError` with its location."""
    return _Compiler(str(source), registry, origin or Origin("<expr>", 1, 1)).compile(expect)


# -- message templates -------------------------------------------------------------------------

_SAMPLES: dict[str, Any] = {"number": 1.5, "bool": True, "str": "text"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Template:
    """A checked message template: ``"day P&L {account.day_pnl_pct:.2f}%"``."""

    source: str
    parts: tuple[tuple[str, str | None, str], ...]
    names: tuple[str, ...]

    def render(self, values: Mapping[str, Any]) -> str:
        """Never fails: a missing or unformattable value renders as ``n/a``."""
        out: list[str] = []
        for literal, name, spec in self.parts:
            out.append(literal)
            if name is None:
                continue
            value = values.get(name)
            try:
                out.append("n/a" if value is None else format(value, spec))
            except (ValueError, TypeError):
                out.append(str(value))
        return "".join(out)


def compile_template(source: str, registry: Registry, origin: Origin | None = None) -> Template:
    """Check a message template's names and format specs against the registry."""
    origin = origin or Origin("<message>", 1, 1)

    def fail(offset: int, code: str, message: str) -> NoReturn:
        line, col = origin.at(source, offset)
        raise ExpressionError(Finding(file=origin.file, line=line, col=col, code=code,
                                      message=message))

    parts: list[tuple[str, str | None, str]] = []
    pos = 0
    try:
        parsed = list(string.Formatter().parse(source))
    except ValueError as exc:
        fail(_stray_brace(source), "template-error", f"message template is malformed: {exc} "
             "(write {{{{ for a literal brace)")
    for literal, name, spec, conversion in parsed:
        if name is None:
            parts.append((literal, None, ""))
            continue
        offset = source.find("{" + name, pos)
        pos = max(offset, 0) + 1
        if conversion:
            fail(offset, "template-error", f"conversion '!{conversion}' is not allowed")
        if not name:
            fail(offset, "template-error", "empty {} in message; name a value such as "
                 "{account.day_pnl_pct:.2f}")
        info = registry.get(name)
        if info is None:
            hint = registry.suggest(name)
            fail(offset + 1, "unknown-name", f"unknown name {name!r} in message"
                 + (f" — did you mean {hint!r}?" if hint else ""))
        spec = spec or ""
        if "{" in spec:
            fail(offset, "template-error", "nested fields in a format spec are not allowed")
        try:
            format(_SAMPLES[info.type], spec)
        except ValueError as exc:
            fail(offset, "template-error", f"format ':{spec}' does not fit {name} "
                 f"({_type_word(info.type)}): {exc}")
        parts.append((literal, name, spec))
    return Template(source=source, parts=tuple(parts),
                    names=tuple(dict.fromkeys(p[1] for p in parts if p[1])))


def _stray_brace(source: str) -> int:
    """Offset of the brace that makes a template malformed (0 when it cannot be told)."""
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch in "{}" and i + 1 < n and source[i + 1] == ch:
            i += 2  # '{{' or '}}': a literal brace
            continue
        if ch == "}":
            return i
        if ch == "{":
            close = source.find("}", i)
            if close < 0:
                return i
            i = close
        i += 1
    return 0


def reference_eval(source: str, values: Mapping[str, Any]) -> Any:
    """Evaluate with simpleeval directly, re-parsing each time (for tests and benchmarks)."""
    tree: dict[str, Any] = {}
    for dotted, value in values.items():
        node = tree
        *heads, last = dotted.split(".")
        for h in heads:
            node = node.setdefault(h, {})
        node[last] = value
    funcs = {name: f.fn for name, f in FUNCTIONS.items()}
    evaluator = simpleeval.EvalWithCompoundTypes(functions=funcs, names=tree)
    evaluator.ATTR_INDEX_FALLBACK = True
    return evaluator.eval(source)
