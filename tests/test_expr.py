"""Compiled expressions agree with simpleeval, fail safely at run time, and check at load."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ruleengine.errors import EvaluationError, ExpressionError
from ruleengine.expr import Origin, compile_expr, compile_template, reference_eval
from ruleengine.functions import parse_hhmm
from ruleengine.names import Registry

VALUES: dict[str, Any] = {
    "account.day_pnl_pct": -3.25, "account.day_pnl": -32_500.0, "account.trades_today": 7,
    "account.orders_today": 19, "market.vix": 21.4, "market.spot": 24_812.35,
    "market.prev_close": 24_650.0, "market.open": 24_700.5, "market.fut": 24_880.0,
    "market.day_high": 24_901.0, "market.day_low": 24_610.25, "market.change_pct": 0.66,
    "market.vix_change_pct": 12.0, "market.move_5m_pct": 0.31, "market.move_15m_pct": -0.4,
    "market.move_30m_pct": -0.9, "feed.age_s": 1.5, "feed.healthy": True,
    "feed.source": "primary", "session.time": 33_900, "session.weekday": 3,
    "strategy.in_position": False, "account.open_orders": 1950,
}

#: (expression, type it gives): each is checked against simpleeval on VALUES.
CASES = [
    ("account.day_pnl_pct <= -3 and market.vix > 20 and feed.age_s < 5", "bool"),
    ("abs(market.change_pct) < 1 and market.vix < 22", "bool"),
    ("market.spot > market.prev_close * 1.01 or market.vix_change_pct >= 15", "bool"),
    ("(market.day_high - market.day_low) / market.prev_close * 100", "number"),
    ("pct_change(market.spot, market.open)", "number"),
    ("clamp(market.vix, 10, 30) * 2 - market.spot % 7", "number"),
    ("between(session.time, t('09:20'), t('15:00')) and not strategy.in_position", "bool"),
    ("max(market.move_5m_pct, market.move_15m_pct, -market.move_30m_pct) >= 0.5", "bool"),
    ("min(market.spot, market.fut) + 0.5", "number"),
    ("feed.source in ['primary', 'backup'] and feed.healthy", "bool"),
    ("feed.source not in ['stale']", "bool"),
    ("feed.source == 'primary' and account.open_orders > 1800", "bool"),
    ("market.vix if feed.healthy else 0", "number"),
    ("round(account.day_pnl / 1000, 1)", "number"),
    ("floor(market.spot / 50) * 50", "number"),
    ("ceil(market.spot / 100) * 100 - market.spot", "number"),
    ("1 < market.vix < 30", "bool"),
    ("-market.change_pct ** 2 + 3", "number"),
    ("account.trades_today // 3 + account.orders_today % 4", "number"),
    ("sqrt(market.vix) > 4 or session.weekday == 3", "bool"),
    ("market.spot != market.fut", "bool"),
    ("not (feed.healthy and market.vix < 15)", "bool"),
    ("2 ** 10 * market.vix", "number"),
]


@pytest.mark.parametrize(("source", "typ"), CASES, ids=[c[0] for c in CASES])
def test_compiled_matches_simpleeval(source: str, typ: str, registry: Registry) -> None:
    compiled = compile_expr(source, registry, expect=None)
    assert compiled.type == typ
    expected = reference_eval(source, VALUES)
    got = compiled.evaluate(VALUES)
    assert got == expected
    assert type(got) is type(expected)


def test_names_and_inputs(registry: Registry) -> None:
    compiled = compile_expr("market.vix > 20 and market.vix < 30 and feed.healthy", registry)
    assert compiled.names == ("market.vix", "feed.healthy")
    assert compiled.inputs({"market.vix": 22.0}) == {"market.vix": 22.0, "feed.healthy": None}


# -- property: random numbers ------------------------------------------------------------------

numbers = st.one_of(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
    st.integers(min_value=-10**6, max_value=10**6),
    st.sampled_from([0, 0.0, -0.0, 1, -1]),
)

PROPERTY_CASES = [
    "account.day_pnl_pct <= -3 and market.vix > 20 and feed.age_s < 5",
    "(market.day_high - market.day_low) / market.prev_close * 100",
    "clamp(market.vix, 10, 30) * 2 - market.spot % 7",
    "max(market.move_5m_pct, market.move_15m_pct, -market.move_30m_pct) >= 0.5",
    "account.trades_today // 3 + account.orders_today % 4 > market.vix",
    "abs(market.change_pct) < 1 or market.day_high - market.spot <= market.day_low",
    "pct_change(market.spot, market.prev_close) if market.vix > 0 else -market.vix",
]


@pytest.mark.parametrize("source", PROPERTY_CASES)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_compiled_matches_simpleeval_on_random_numbers(source: str, data: st.DataObject,
                                                        registry: Registry) -> None:
    compiled = compile_expr(source, registry, expect=None)
    values = {name: data.draw(numbers, label=name) for name in compiled.names}
    try:
        expected = reference_eval(source, values)
    except ArithmeticError:
        with pytest.raises(EvaluationError):
            compiled.evaluate(values)
        return
    got = compiled.evaluate(values)
    assert got == expected or (isinstance(got, float) and math.isnan(got)
                               and math.isnan(expected))


# -- run-time failures ---------------------------------------------------------------------------

def test_missing_value_is_an_evaluation_error(registry: Registry) -> None:
    compiled = compile_expr("market.vix > 20 and feed.age_s < 5", registry)
    with pytest.raises(EvaluationError, match=r"market\.vix"):
        compiled.evaluate({"feed.age_s": 1.0})
    with pytest.raises(EvaluationError, match=r"feed\.age_s"):
        compiled.evaluate({"market.vix": 25.0})
    # Short-circuit: the second name is not needed when the first comparison is false.
    assert compiled.evaluate({"market.vix": 10.0}) is False


@pytest.mark.parametrize("source", [
    "market.spot / market.prev_close > 1",
    "market.spot // market.prev_close > 1",
    "market.spot % market.prev_close > 1",
    "pct_change(market.spot, market.prev_close) > 1",
])
def test_division_by_zero_is_an_evaluation_error(source: str, registry: Registry) -> None:
    compiled = compile_expr(source, registry)
    with pytest.raises(EvaluationError, match="ZeroDivisionError"):
        compiled.evaluate({"market.spot": 100.0, "market.prev_close": 0})


@pytest.mark.parametrize(("source", "values"), [
    ("sqrt(account.day_pnl) > 1", {"account.day_pnl": -4.0}),
    ("market.vix > 20", {"market.vix": None}),
    ("market.vix > 20", {"market.vix": "high"}),
])
def test_bad_values_are_evaluation_errors(source: str, values: dict[str, Any],
                                          registry: Registry) -> None:
    with pytest.raises(EvaluationError):
        compile_expr(source, registry).evaluate(values)


# -- load-time checks --------------------------------------------------------------------------

@pytest.mark.parametrize(("source", "code"), [
    ("market.vix", "type-mismatch"),
    ("market.vix and feed.healthy", "type-mismatch"),
    ("feed.source > 3", "type-mismatch"),
    ("feed.source == 3", "type-mismatch"),
    ("market.vix in [1, feed.source]", "type-mismatch"),
    ("market.vix in feed.source", "type-mismatch"),
    ("abs(market.vix, 2) > 1", "type-mismatch"),
    ("max() > 1", "type-mismatch"),
    ("1 / 0 > market.vix", "type-mismatch"),
    ("t('9:20') < session.time", "expr-syntax"),
    ("t('24:00') < session.time", "expr-syntax"),
    ("market.vix >", "expr-syntax"),
    ("market.vix > 20)", "expr-syntax"),
    ("", "expr-syntax"),
    ("market.vix is None", "expr-forbidden"),
    ("market.vix > 20 | feed.healthy", "expr-forbidden"),
    ("~market.vix > 0", "expr-forbidden"),
    ("max(market.vix, key=abs) > 1", "expr-forbidden"),
    ("market.vix > {1, 2}", "expr-forbidden"),
    ("market.vix > 1j", "expr-forbidden"),
    ("market.vix > 2 ** market.vix", "expr-too-large"),
    ("market.vix > 999999 ** 64", "expr-too-large"),
    ("feed.source == '" + "x" * 300 + "'", "expr-too-large"),
    ("market.vix > 1 or " * 200 + "true", "expr-too-large"),
])
def test_refused_at_load(source: str, code: str, registry: Registry) -> None:
    with pytest.raises(ExpressionError) as err:
        compile_expr(source, registry)
    assert err.value.finding.code == code


def test_did_you_mean(registry: Registry) -> None:
    with pytest.raises(ExpressionError) as err:
        compile_expr("account.day_pnl_pc <= -3", registry)
    assert "did you mean 'account.day_pnl_pct'" in err.value.finding.message
    with pytest.raises(ExpressionError) as err:
        compile_expr("maxx(market.vix, 1) > 3", registry)
    assert err.value.finding.code == "unknown-function"
    assert "did you mean 'max'" in err.value.finding.message
    with pytest.raises(ExpressionError) as err:
        compile_expr("zzzz > 3", registry)
    assert "ruleengine names" in err.value.finding.message


def test_indicator_names_come_from_an_extended_registry(registry: Registry) -> None:
    from ruleengine.names import NameInfo

    local = registry.extend({"ind.fast": NameInfo(name="ind.fast", type="number", unit="",
                                                  description="test")})
    assert compile_expr("ind.fast > market.spot", local).evaluate(
        {"ind.fast": 2.0, "market.spot": 1.0}) is True
    with pytest.raises(ExpressionError):
        compile_expr("ind.fast > market.spot", registry)


# -- constant conditions -----------------------------------------------------------------------

@pytest.mark.parametrize(("source", "verdict"), [
    ("market.vix < 0", "never"),
    ("market.vix >= 0", "always"),
    ("market.vix > 200", "never"),
    ("market.vix <= 200", "always"),
    ("0 > market.vix", "never"),
    ("200 >= market.vix", "always"),
    ("session.weekday == 7", "never"),
    ("session.weekday != 9", "always"),
    ("account.drawdown_pct > 100", "never"),
    ("market.vix < 0 and feed.healthy", "never"),
    ("market.vix >= 0 or feed.healthy", "always"),
    ("not market.vix < 0", "always"),
    ("true", "always"),
    ("false", "never"),
    ("t('09:20') < t('15:00')", "always"),
    ("market.vix < 20", None),
    ("market.vix > 0", None),
    ("account.day_pnl < -1000000000", None),
    ("session.weekday == 3", None),
    ("market.vix < 0 or feed.healthy", None),
])
def test_constant_condition_verdict(source: str, verdict: str | None,
                                    registry: Registry) -> None:
    assert compile_expr(source, registry).verdict == verdict


# -- t() -----------------------------------------------------------------------------------------

def test_t_is_folded_at_load(registry: Registry) -> None:
    assert compile_expr("t('09:20')", registry, expect="number").evaluate({}) == 9 * 3600 + 1200
    assert compile_expr("t('09:20:30') + 60", registry, expect="number").evaluate({}) == 33_690
    rule = compile_expr("session.time >= t(\"09:20\")", registry)
    assert rule.names == ("session.time",)
    assert rule.evaluate({"session.time": parse_hhmm("09:20")}) is True
    assert rule.evaluate({"session.time": parse_hhmm("09:19:59")}) is False


def test_t_needs_a_written_time(registry: Registry) -> None:
    with pytest.raises(ExpressionError) as err:
        compile_expr("session.time >= t(feed.source)", registry)
    assert err.value.finding.code == "type-mismatch"


# -- locations -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("source", "origin", "where"), [
    ("market.vix > 3 and feed.healty", Origin("f", 10, 7), (10, 26)),
    ("market.vix > 3 and\nfeed.healty", Origin("f", 10, 7, 5), (11, 5)),
    ("market.vix > 3 and feed.healty", Origin("f", 10, 7, 7, ((0, 10, 7), (19, 11, 9))),
     (11, 9)),
])
def test_unknown_name_location(source: str, origin: Origin, where: tuple[int, int],
                               registry: Registry) -> None:
    with pytest.raises(ExpressionError) as err:
        compile_expr(source, registry, origin)
    f = err.value.finding
    assert (f.file, f.line, f.col, f.code) == ("f", *where, "unknown-name")


@pytest.mark.parametrize(("source", "col"), [
    ("market.vix >", 13),        # one past the end: the expression stops early
    ("market.vix > 3)", 15),     # the unmatched ')'
    ("market.vix =< 3", 12),     # the '='
    ("(market.vix > 3", 1),      # the '(' never closed
    ("feed.healthy is true", 14),
    ("feed.healthy & true", 14),
    ("account.__class__", 9),
    ("feed.source[0] == 'x'", 12),
])
def test_error_columns(source: str, col: int, registry: Registry) -> None:
    with pytest.raises(ExpressionError) as err:
        compile_expr(source, registry, Origin("f", 1, 1))
    assert (err.value.finding.line, err.value.finding.col) == (1, col)


# -- message templates ---------------------------------------------------------------------------

def test_template_renders(registry: Registry) -> None:
    tpl = compile_template("day P&L {account.day_pnl_pct:.2f}% on {feed.source} {{ok}}",
                           registry)
    assert tpl.names == ("account.day_pnl_pct", "feed.source")
    assert tpl.render({"account.day_pnl_pct": -3.14159, "feed.source": "primary"}) == \
        "day P&L -3.14% on primary {ok}"
    assert tpl.render({}) == "day P&L n/a% on n/a {ok}"
    assert tpl.render({"account.day_pnl_pct": "bad", "feed.source": "x"}) == \
        "day P&L bad% on x {ok}"
    assert compile_template("{account.day_pnl:,.0f} INR", registry).render(
        {"account.day_pnl": -32500.4}) == "-32,500 INR"
    assert compile_template("", registry).render({}) == ""


@pytest.mark.parametrize(("source", "code", "col"), [
    ("VIX {market.vx:.1f}", "unknown-name", 6),
    ("VIX {market.vix:.1q}", "template-error", 5),
    ("VIX {}", "template-error", 5),
    ("VIX {market.vix!r}", "template-error", 5),
    ("VIX {market.vix", "template-error", 5),
    ("VIX } high", "template-error", 5),
    ("VIX {market.vix:{x}}", "template-error", 5),
    ("{feed.source:.2f}", "template-error", 1),
    ("{feed.healthy:s}", "template-error", 1),
])
def test_template_rejects(source: str, code: str, col: int, registry: Registry) -> None:
    with pytest.raises(ExpressionError) as err:
        compile_template(source, registry, Origin("f", 3, 1))
    f = err.value.finding
    assert (f.code, f.line, f.col) == (code, 3, col)
