"""Incremental indicators agree with an independent polars computation of the same definition.

Each indicator is fed bar by bar and every intermediate value is compared (to 1e-9 relative) with
polars run over the whole series at once, on real NIFTY 5-minute bars when ``shared/data`` is
present and on a seeded generated series always.
"""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from ruleengine.indicators import (
    ATR,
    EMA,
    INDICATOR_TYPES,
    RSI,
    SESSION_OPEN_S,
    SMA,
    VWAP,
    Bar,
    Indicator,
    OpeningRange,
    make_indicator,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
REAL_FILES = (
    "NIFTY50_5min_2024-06-04_to_06.csv",
    "NIFTY50_5min_2025-04-04_to_08.csv",
)
BAR_S = 300
PERIODS = (1, 2, 5, 14, 50)
ORB_MINUTES = (5, 7, 15, 30, 60)


def generated_frame(days: int = 3) -> pl.DataFrame:
    """Five-minute bars on a 0.05 tick grid; volume is 0 on day one (like an index), then mixed."""
    rng = random.Random(7)
    rows: list[dict[str, object]] = []
    close = 22000.0
    for d in range(days):
        day = date(2024, 6, 10) + timedelta(days=d)
        close += rng.gauss(0, 80)  # overnight gap
        for i in range(75):
            ts = datetime(day.year, day.month, day.day, 9, 15) + timedelta(minutes=5 * i)
            o = round((close + rng.gauss(0, 3)) / 0.05) * 0.05
            close = round((o + rng.gauss(0, 15) * rng.choice((0, 1, 1, 1))) / 0.05) * 0.05
            hi = max(o, close) + round(abs(rng.gauss(0, 8)) / 0.05) * 0.05
            lo = min(o, close) - round(abs(rng.gauss(0, 8)) / 0.05) * 0.05
            vol = 0 if d == 0 or (d == 2 and i < 3) else rng.choice((0, rng.randint(1, 5000)))
            rows.append({"ts": ts, "open": o, "high": hi, "low": lo, "close": close,
                         "volume": float(vol)})
    return pl.DataFrame(rows)


def real_frame(name: str) -> pl.DataFrame:
    path = DATA / "intraday_5min" / name
    if not path.exists():
        pytest.skip(f"real-data fixture {path} is absent (shared/data is not part of a clone); "
                    "the generated series still covers every indicator")
    return pl.read_csv(path).select(
        pl.col("date").str.strptime(pl.Datetime, "%d-%m-%Y %H:%M").alias("ts"),
        *(pl.col(c).cast(pl.Float64) for c in ("open", "high", "low", "close", "volume")),
    )


@pytest.fixture(params=("generated", *REAL_FILES))
def frame(request: pytest.FixtureRequest) -> pl.DataFrame:
    name: str = request.param
    return generated_frame() if name == "generated" else real_frame(name)


def to_bars(df: pl.DataFrame) -> list[Bar]:
    return [Bar(ts=r["ts"], open=r["open"], high=r["high"], low=r["low"], close=r["close"],
                volume=r["volume"]) for r in df.iter_rows(named=True)]


def run(ind: Indicator, bars: list[Bar]) -> list[float | None]:
    out: list[float | None] = []
    for b in bars:
        v = ind.update(b)
        assert v == ind.value or (v is None and ind.value is None)
        out.append(v)
    return out


def expected(df: pl.DataFrame, expr: pl.Expr) -> list[float | None]:
    return df.select(expr.alias("x"))["x"].to_list()


def assert_same(got: list[float | None], want: list[float | None]) -> None:
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        if w is None:
            assert g is None, f"bar {i}: expected no value yet, got {g}"
        else:
            assert g is not None, f"bar {i}: expected {w}, got None"
            assert math.isclose(g, w, rel_tol=1e-9), f"bar {i}: got {g}, polars {w}"


close = pl.col("close")
day_of = pl.col("ts").dt.date()
start_s = (pl.col("ts").dt.hour().cast(pl.Int64) * 3600
           + pl.col("ts").dt.minute().cast(pl.Int64) * 60 + pl.col("ts").dt.second())


def wilder(x: pl.Expr, period: int) -> pl.Expr:
    return x.ewm_mean(alpha=1 / period, adjust=False, min_samples=period)


# --- each indicator against polars ------------------------------------------------------------


@pytest.mark.parametrize("period", PERIODS)
def test_ema_matches_polars(frame: pl.DataFrame, period: int) -> None:
    want = expected(frame, close.ewm_mean(span=period, adjust=False))
    assert_same(run(EMA(period), to_bars(frame)), want)
    assert want[0] == frame["close"][0]  # seeded with the first close, value from bar one


@pytest.mark.parametrize("period", PERIODS)
def test_sma_matches_polars(frame: pl.DataFrame, period: int) -> None:
    want = expected(frame, close.rolling_mean(window_size=period))
    assert_same(run(SMA(period), to_bars(frame)), want)
    assert want[period - 1] is not None and want[: period - 1] == [None] * (period - 1)


@pytest.mark.parametrize("period", PERIODS)
def test_rsi_matches_polars(frame: pl.DataFrame, period: int) -> None:
    change = close.diff()
    gain = wilder(change.clip(lower_bound=0), period)
    loss = wilder((-change).clip(lower_bound=0), period)
    rsi = pl.when(gain + loss == 0).then(50.0).otherwise(100 * gain / (gain + loss))
    want = expected(frame, rsi)
    assert_same(run(RSI(period), to_bars(frame)), want)
    assert want[period] is not None and all(v is None for v in want[:period])


@pytest.mark.parametrize("period", PERIODS)
def test_atr_matches_polars(frame: pl.DataFrame, period: int) -> None:
    prev = close.shift(1)
    hi, lo = pl.col("high"), pl.col("low")
    tr = pl.max_horizontal(hi - lo, (hi - prev).abs(), (lo - prev).abs())  # row 0: high - low
    want = expected(frame, wilder(tr, period))
    assert_same(run(ATR(period), to_bars(frame)), want)
    assert want[period - 1] is not None and all(v is None for v in want[: period - 1])


def test_vwap_matches_polars_and_resets_each_day(frame: pl.DataFrame) -> None:
    tp = (pl.col("high") + pl.col("low") + close) / 3
    vol = pl.col("volume")
    cum_v = vol.cum_sum().over(day_of)
    weighted = (tp * vol).cum_sum().over(day_of) / cum_v
    equal = tp.cum_sum().over(day_of) / (pl.int_range(pl.len()).over(day_of) + 1)
    want = expected(frame, pl.when(cum_v > 0).then(weighted).otherwise(equal))
    bars = to_bars(frame)
    got = run(VWAP(), bars)
    assert_same(got, want)
    for i, b in enumerate(bars):  # the first bar of every session starts afresh
        if i == 0 or b.ts.date() != bars[i - 1].ts.date():
            assert got[i] == pytest.approx((b.high + b.low + b.close) / 3, rel=1e-12)


@pytest.mark.parametrize("bar_seconds", (0, BAR_S))
@pytest.mark.parametrize("minutes", ORB_MINUTES)
def test_opening_range_matches_polars_per_day(
    frame: pl.DataFrame, minutes: int, bar_seconds: int
) -> None:
    end_s = SESSION_OPEN_S + minutes * 60
    ranges = (
        frame.filter((start_s >= SESSION_OPEN_S) & (start_s < end_s))
        .group_by(day_of.alias("day"))
        .agg(pl.col("high").max().alias("orb_high"), pl.col("low").min().alias("orb_low"))
    )
    joined = frame.with_columns(day_of.alias("day")).join(ranges, on="day", how="left")
    ready = start_s + bar_seconds >= end_s
    bars = to_bars(frame)
    for side in ("high", "low"):
        want = expected(joined, pl.when(ready).then(pl.col(f"orb_{side}")))
        got = run(make_indicator(f"orb_{side}", minutes, bar_seconds=bar_seconds), bars)
        assert_same(got, want)
    assert ranges.height == frame.select(day_of.n_unique()).item()


# --- behaviour polars does not express --------------------------------------------------------


def bar(ts: datetime, high: float, low: float, close: float | None = None,
        volume: float = 0.0) -> Bar:
    c = (high + low) / 2 if close is None else close
    return Bar(ts=ts, open=c, high=high, low=low, close=c, volume=volume)


def test_orb_completes_on_last_window_bar_only_when_bar_length_known() -> None:
    d = datetime(2024, 6, 4)
    bars = [bar(d.replace(hour=9, minute=15 + 5 * i), 100 + i, 90 - i) for i in range(4)]
    known = OpeningRange(15, "high", bar_seconds=300)
    unknown = OpeningRange(15, "high")
    assert run(known, bars) == [None, None, 102, 102]  # 09:25 bar closes at 09:30
    assert run(unknown, bars) == [None, None, None, 102]  # waits for the 09:30 bar


def test_orb_ignores_preopen_and_is_none_without_window_bars() -> None:
    d = datetime(2020, 3, 13)
    orb = OpeningRange(15, "low", bar_seconds=300)
    assert orb.update(bar(d.replace(hour=9, minute=8), 200, 50)) is None  # pre-open print
    for m in (15, 20, 25):
        orb.update(bar(d.replace(hour=9, minute=m), 110, 95 + m))
    assert orb.value == 110  # low of 09:15..09:25 only
    late = OpeningRange(15, "low", bar_seconds=300)
    late.update(bar(datetime(2020, 3, 23, 10, 0), 110, 100))  # session data starts after window
    assert late.value is None


def test_orb_reads_aware_timestamps_in_ist() -> None:
    orb = OpeningRange(5, "high", bar_seconds=300)
    assert orb.update(bar(datetime(2024, 6, 4, 3, 45, tzinfo=UTC), 120, 100)) == 120  # 09:15 IST


def test_orb_and_vwap_reset_on_new_day_and_on_reset() -> None:
    orb, vwap = OpeningRange(5, "high", bar_seconds=300), VWAP()
    orb.update(bar(datetime(2024, 6, 4, 9, 15), 120, 100))
    vwap.update(bar(datetime(2024, 6, 4, 9, 15), 120, 100, volume=10))
    assert orb.update(bar(datetime(2024, 6, 5, 9, 15), 130, 125)) == 130
    assert vwap.update(bar(datetime(2024, 6, 5, 9, 15), 130, 125, volume=10)) == 127.5
    vwap.reset()
    orb.reset()
    assert vwap.value is None and orb.value is None
    assert vwap.update(bar(datetime(2024, 6, 5, 9, 20), 140, 130, volume=0)) == 135


def test_vwap_weighs_by_volume_once_volume_is_seen() -> None:
    vwap = VWAP()
    d = datetime(2024, 6, 4, 9, 15)
    assert vwap.update(bar(d, 10, 10)) == 10  # no volume yet: equal weights
    assert vwap.update(bar(d, 20, 20)) == 15
    assert vwap.update(bar(d, 40, 40, volume=3)) == 40  # volume-weighted from here
    assert vwap.update(bar(d, 0, 0, volume=0)) == 40  # zero-volume bar weighs nothing
    assert vwap.update(bar(d, 20, 20, volume=1)) == 35
    with pytest.raises(ValueError, match="negative volume"):
        vwap.update(bar(d, 20, 20, volume=-1))


def test_rsi_edges() -> None:
    flat = RSI(3)
    assert [flat.add(100.0) for _ in range(5)] == [None, None, None, 50.0, 50.0]
    up = RSI(2)
    assert [up.add(x) for x in (1.0, 2.0, 3.0, 4.0)] == [None, None, 100.0, 100.0]


def test_sma_running_sum_does_not_drift_after_an_outlier() -> None:
    sma = SMA(5)
    values = [22000.05 + 0.05 * (i % 7) for i in range(10_000)]
    values[100] = 1e15  # a bad print enters and leaves the window
    for x in values:
        sma.add(x)
    assert sma.value == pytest.approx(math.fsum(values[-5:]) / 5, rel=1e-15)


# --- bounded state: per-update cost cannot grow with history ----------------------------------


def state(ind: Indicator) -> dict[str, object]:
    slots = [s for cls in type(ind).__mro__ for s in getattr(cls, "__slots__", ())]
    return {s: getattr(ind, s) for s in slots}


@pytest.mark.parametrize("kind", INDICATOR_TYPES)
def test_state_is_bounded_by_period(kind: str) -> None:
    period = 15
    ind = make_indicator(kind, period, bar_seconds=BAR_S)
    assert not hasattr(ind, "__dict__")  # nowhere to stash history outside the slots
    bars = to_bars(generated_frame(days=20))
    sizes = []
    for n, b in enumerate(bars, 1):
        ind.update(b)
        if n in (period, 100, len(bars)):
            sizes.append({k: len(v) for k, v in state(ind).items() if hasattr(v, "__len__")
                          and not isinstance(v, str)})
    assert sizes[0] == sizes[1] == sizes[2]
    assert all(n <= period for n in sizes[-1].values())
    assert all(isinstance(v, int | float | str | date | None) for k, v in state(ind).items()
               if k not in sizes[-1])
    if kind == "sma":
        assert isinstance(ind, SMA) and len(ind._buf) == period


# --- factory ----------------------------------------------------------------------------------


def test_factory_covers_exactly_the_schema_names() -> None:
    schema = json.loads((REPO / "ruleengine" / "schemas" / "strategy.schema.json").read_text())
    enum = schema["properties"]["indicators"]["additionalProperties"]["properties"]["type"]["enum"]
    assert set(INDICATOR_TYPES) == set(enum)


def test_factory_builds_the_named_indicator() -> None:
    ema = make_indicator("ema", 9)
    assert isinstance(ema, EMA) and ema.period == 9
    assert isinstance(make_indicator("sma", 20), SMA)
    assert isinstance(make_indicator("rsi", 14), RSI)
    assert isinstance(make_indicator("atr", 14), ATR)
    assert isinstance(make_indicator("vwap", 14), VWAP)
    hi, lo = make_indicator("orb_high", 15, bar_seconds=300), make_indicator("orb_low", 15)
    assert isinstance(hi, OpeningRange) and (hi.side, hi.minutes, hi.bar_seconds) == (
        "high", 15, 300)
    assert isinstance(lo, OpeningRange) and (lo.side, lo.bar_seconds) == ("low", 0)
    with pytest.raises(ValueError, match="unknown indicator type 'macd'"):
        make_indicator("macd", 14)
    with pytest.raises(ValueError, match="period must be at least 1"):
        make_indicator("ema", 0)
