"""Replay feed: the real circuit-breaker and shock days from ../shared/data, then small files.

The real files are the point: 13 and 23 Mar 2020 have a pre-open print, a halt, auction values and
post-close prints, which are exactly what a feed must deliver untouched and in time order. The
tmp_path tests pin each format and failure mode without the shared folder.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.feeds.replay import (
    FORMATS,
    ReplayFeed,
    ReplayRowError,
    detect_format,
    read_bars,
)
from ruleengine.contracts import Feed
from ruleengine.errors import FeedError
from ruleengine.events import Bar, Event, IndexTick, PreviousClose, Timer, VixTick

# tests/adapters/test_replay.py -> parents[2] is the repository; shared/ sits beside it.
DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
GDFL_13 = DATA / "intraday_1min_gdfl" / "NIFTY_1min_2020-03-13.csv"
GDFL_23 = DATA / "intraday_1min_gdfl" / "NIFTY_1min_2020-03-23.csv"
FIVE_2024 = DATA / "intraday_5min" / "NIFTY50_5min_2024-06-04_to_06.csv"
FIVE_2025 = DATA / "intraday_5min" / "NIFTY50_5min_2025-04-04_to_08.csv"
KITE_JSON = DATA / "broker_formats" / "kiteconnect_mocks" / "historical_minute.json"
KITE_OI_JSON = DATA / "broker_formats" / "kiteconnect_mocks" / "historical_oi.json"
NIFTY_DAILY = DATA / "daily" / "NIFTY50_daily_2007-2024_yfinance.csv"
VIX_DAILY = DATA / "daily" / "INDIAVIX_daily_2019-2024_yfinance.csv"
VIX_NSE = DATA / "daily" / "INDIAVIX_daily_2024-08-05_to_2025-08-04_nse.csv"


def need(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"shared test data not found at {path} (../shared/data is absent here)")
    return path


def dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


def of(kind: type[Event], events: Iterable[Event]) -> list[Event]:
    return [e for e in events if isinstance(e, kind)]


def bars_of(events: Iterable[Event]) -> list[Bar]:
    return [e for e in events if isinstance(e, Bar)]


def assert_time_ordered(events: Sequence[Event]) -> None:
    for before, after in itertools.pairwise(events):
        assert before.ts <= after.ts, (before, after)


def unsourced(events: Iterable[Event]) -> list[Event]:
    return [dataclasses.replace(e, source="") for e in events]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- real files: 13 and 23 Mar 2020 (GDFL 1-minute) --------------------------------------------


def test_13mar2020_delivers_every_row_starting_with_the_preopen_print() -> None:
    feed = ReplayFeed(need(GDFL_13))
    events = list(feed.events())
    bars = bars_of(events)
    assert feed.format == "gdfl"
    assert feed.interval == timedelta(minutes=1)
    assert len(feed) == len(bars) == 328
    first = bars[0]
    assert first.ts == dt("2020-03-13 09:08") and first.start == dt("2020-03-13 09:07")
    assert (first.open, first.high, first.low, first.close) == (9107.60,) * 4
    assert first.underlying == "NIFTY"  # from the file's symbol column
    assert isinstance(events[0], IndexTick) and events[0].value == 9107.60
    assert events[0].ts == dt("2020-03-13 09:08")
    # The first regular bar is labelled 09:16: it covers 09:15-09:16.
    assert (bars[1].start, bars[1].ts) == (dt("2020-03-13 09:15"), dt("2020-03-13 09:16"))


def test_13mar2020_halt_is_silence_with_timers() -> None:
    events = list(ReplayFeed(need(GDFL_13)).events())
    lo, hi = dt("2020-03-13 09:22"), dt("2020-03-13 10:07")
    inside = [e for e in events if lo < e.ts < hi]
    assert inside, "no events inside the halt"
    assert all(isinstance(e, Timer) for e in inside)
    # 09:23 ... 10:05, one a minute; the 10:07 bar starts at 10:06.
    assert [e.ts for e in inside] == [lo + timedelta(minutes=k) for k in range(1, 44)]
    assert_time_ordered(events)


def test_13mar2020_auction_and_post_close_rows_are_not_filtered() -> None:
    bars = bars_of(ReplayFeed(need(GDFL_13)).events())
    ends = [b.ts for b in bars]
    auction = [b for b in bars if dt("2020-03-13 10:07") <= b.ts <= dt("2020-03-13 10:14")]
    assert len(auction) == 8
    assert min(b.low for b in auction) == 8476.15  # below the official day low: not trades
    assert ends[-3:] == [dt("2020-03-13 15:31"), dt("2020-03-13 15:35"), dt("2020-03-13 17:01")]
    assert bars[-2].close == 9955.20  # the official close arrives post-close
    assert dt("2020-03-13 10:22") in ends and dt("2020-03-13 10:21") not in ends


def test_23mar2020_halt_timers_and_counts() -> None:
    events = list(ReplayFeed(need(GDFL_23)).events())
    bars = bars_of(events)
    assert len(bars) == 329
    assert bars[0].ts == dt("2020-03-23 09:08") and bars[0].close == 7945.70
    halt = [e for e in events if dt("2020-03-23 09:59") < e.ts < dt("2020-03-23 10:43")]
    assert halt and all(isinstance(e, Timer) for e in halt)
    assert [b.ts.strftime("%H:%M") for b in bars[-2:]] == ["15:34", "16:37"]
    assert_time_ordered(events)


# -- real files: 5-minute Kite/Kaggle export ----------------------------------------------------


@pytest.mark.parametrize("path", [FIVE_2024, FIVE_2025], ids=["2024-06", "2025-04"])
def test_five_minute_files_are_bar_start_labelled(path: Path) -> None:
    feed = ReplayFeed(need(path))
    events = list(feed.events())
    bars = bars_of(events)
    assert feed.format == "kite5" and feed.interval == timedelta(minutes=5)
    assert len(bars) == 225
    per_day = Counter(b.ts.date() for b in bars)
    assert len(per_day) == 3 and set(per_day.values()) == {75}
    assert bars[0].start is not None and bars[0].start.strftime("%H:%M") == "09:15"
    assert bars[0].ts.strftime("%H:%M") == "09:20"
    assert bars[-1].ts.strftime("%H:%M") == "15:30"
    assert not of(Timer, events)  # no gaps inside a day, and nights get no timers
    assert_time_ordered(events)


def test_tariff_crash_day_open_high_low() -> None:
    df = read_bars(need(FIVE_2025))
    day = df.filter(pl.col("start").dt.date() == datetime(2025, 4, 7).date())
    assert day.height == 75
    assert day["open"][0] == 21758.40
    assert day["high"].max() == 22254.00 and day["low"].min() == 21743.65


# -- real files: Kite historical JSON ---------------------------------------------------------


def test_kite_historical_json_converts_offset_to_naive_ist() -> None:
    feed = ReplayFeed(need(KITE_JSON), underlying="INFY")
    bars = bars_of(feed.events())
    assert feed.format == "kite" and len(bars) == 6
    first = bars[0]
    assert first.start == dt("2017-12-15 09:15") and first.start.tzinfo is None
    assert first.ts == dt("2017-12-15 09:16") and first.ts.tzinfo is None
    assert (first.open, first.high, first.low, first.close, first.volume) == (
        1704.5, 1705.0, 1699.25, 1702.8, 2499.0,
    )
    assert first.underlying == "INFY"


def test_kite_historical_json_with_oi_column() -> None:
    df = read_bars(need(KITE_OI_JSON))
    assert df.columns == ["start", "end", "open", "high", "low", "close", "volume"]
    assert df["start"][0] == dt("2019-12-04 09:15") and df["volume"][0] == 163275.0


# -- real files: daily ------------------------------------------------------------------------


def test_yfinance_nifty_daily() -> None:
    feed = ReplayFeed(need(NIFTY_DAILY))
    bars = bars_of(feed.events())
    assert feed.format == "yfinance" and feed.interval is None
    assert len(bars) == 4238
    day = next(b for b in bars if b.ts.date() == datetime(2020, 3, 13).date())
    assert day.ts == dt("2020-03-13 15:30") and day.start == dt("2020-03-13 09:15")
    assert day.high == pytest.approx(10159.40, abs=0.01)
    assert day.low == pytest.approx(8555.15, abs=0.01)
    assert day.close == pytest.approx(9955.20, abs=0.01)


def test_yfinance_vix_daily_sends_vix_ticks() -> None:
    events = list(ReplayFeed(need(VIX_DAILY), underlying="INDIAVIX", prev_close=40.0).events())
    assert not of(IndexTick, events)
    ticks = [e for e in events if isinstance(e, VixTick)]
    assert len(ticks) == 1465
    close_13 = next(t for t in ticks if t.ts == dt("2020-03-13 15:30"))
    assert close_13.value == pytest.approx(51.47, abs=0.01)
    first = events[0]
    assert isinstance(first, PreviousClose) and first.vix_close == 40.0


def test_nse_vix_daily_download() -> None:
    feed = ReplayFeed(need(VIX_NSE), underlying="INDIAVIX")
    bars = bars_of(feed.events())
    assert feed.format == "nse_daily" and len(bars) == 250
    day = next(b for b in bars if b.ts == dt("2025-04-07 15:30"))
    assert (day.open, day.high, day.close) == (13.755, 23.1875, 22.79)


# -- real files: round trips, errors and ordering ---------------------------------------------


@pytest.mark.parametrize("path", [GDFL_13, FIVE_2024, NIFTY_DAILY], ids=["gdfl", "kite5", "yf"])
def test_parquet_with_the_file_columns_gives_the_same_events(path: Path, tmp_path: Path) -> None:
    need(path)
    parquet = tmp_path / "bars.parquet"
    pl.read_csv(path).write_parquet(parquet)  # typed columns: date as int, prices as floats
    csv_feed, pq_feed = ReplayFeed(path, intrabar=True), ReplayFeed(parquet, intrabar=True)
    assert pq_feed.format == csv_feed.format
    assert unsourced(pq_feed.events()) == unsourced(csv_feed.events())
    assert {e.source for e in pq_feed.events()} == {"replay:bars.parquet"}


def test_parquet_of_read_bars_gives_the_same_events(tmp_path: Path) -> None:
    parquet = tmp_path / "normalised.parquet"
    read_bars(need(GDFL_13)).write_parquet(parquet)
    assert detect_format(parquet) == "bars"
    csv_events = unsourced(ReplayFeed(GDFL_13, prev_close=9590.15).events())
    pq_events = unsourced(ReplayFeed(parquet, underlying="NIFTY", prev_close=9590.15).events())
    assert pq_events == csv_events


def test_corrupted_real_file_names_file_and_row(tmp_path: Path) -> None:
    lines = need(GDFL_13).read_text(encoding="utf-8").splitlines()
    # Line 5 is data row 4 (09:18): make its high lower than its open.
    assert lines[4].startswith("NIFTY,20200313,09:18,8846.95,8865.20,")
    lines[4] = lines[4].replace("8846.95,8865.20", "8846.95,8840.00", 1)
    bad = write(tmp_path, "NIFTY_bad.csv", "\n".join(lines) + "\n")
    with pytest.raises(FeedError) as info:
        ReplayFeed(bad)
    message = str(info.value)
    assert "NIFTY_bad.csv" in message and "row 4 (line 5)" in message and "high" in message
    assert isinstance(info.value, ReplayRowError) and info.value.row == 4


@pytest.mark.parametrize("intrabar", [False, True], ids=["close", "intrabar"])
@pytest.mark.parametrize(
    "path",
    [GDFL_13, GDFL_23, FIVE_2024, FIVE_2025, KITE_JSON, NIFTY_DAILY, VIX_NSE],
    ids=["gdfl13", "gdfl23", "5m24", "5m25", "json", "daily", "nse"],
)
def test_real_files_are_time_ordered_and_sourced(path: Path, intrabar: bool) -> None:
    events = list(ReplayFeed(need(path), intrabar=intrabar, prev_close=100.0).events())
    assert_time_ordered(events)
    assert isinstance(events[0], PreviousClose)
    assert {e.source for e in events} == {f"replay:{path.name}"}


# -- small files, one per format (no shared folder needed) ------------------------------------

GDFL = """symbol,date,time,open,high,low,close,volume,oi
NIFTY,20200313,09:08,100,100,100,100,0,0
NIFTY,20200313,09:16,101,103,99,102,0,0
NIFTY,20200313,09:17,102,102,98,99,0,0
"""
KITE5 = """date,open,high,low,close,volume
04-06-2024 09:15,100,105,99,104,0
04-06-2024 09:20,104,106,101,102,10
"""
KITE_CSV = """date,open,high,low,close,volume,oi
2017-12-15T09:15:00+05:30,100,105,99,104,7,1
2017-12-15 09:16:00+05:30,104,106,101,102,8,1
2017-12-15T09:17:00+0530,102,103,100,101,9,1
"""
YF = """date,close,high,low,open,volume
2020-03-12,9590.15,9910.0,9508.0,9910.0,0
2020-03-13,9955.2,10159.4,8555.15,9107.6,0
"""
YF_VIX = """Date,Close,High,Low,Open,Volume
2020-03-12,41.0,43.0,30.0,30.0,0
2020-03-13,51.47,58.0,41.0,41.0,0
"""
NSE = (  # the trailing spaces in the header are verbatim from NSE's download
    "Date ,Open ,High ,Low ,Close ,Prev. Close ,Change ,% Change \n"
    "07-APR-2025,13.755,23.1875,13.755,22.79,13.755,9.04,65.69\n"
)
BARS = """start,end,open,high,low,close,volume
2020-03-13T09:15:00,2020-03-13T09:16:00,101,103,99,102,0
"""


@pytest.mark.parametrize(
    ("name", "text", "fmt", "first_start", "first_end"),
    [
        ("g.csv", GDFL, "gdfl", "2020-03-13 09:07", "2020-03-13 09:08"),
        ("k5.csv", KITE5, "kite5", "2024-06-04 09:15", "2024-06-04 09:20"),
        ("k.csv", KITE_CSV, "kite", "2017-12-15 09:15", "2017-12-15 09:16"),
        ("yf.csv", YF, "yfinance", "2020-03-12 09:15", "2020-03-12 15:30"),
        ("vix.csv", YF_VIX, "yfinance", "2020-03-12 09:15", "2020-03-12 15:30"),
        ("nse.csv", NSE, "nse_daily", "2025-04-07 09:15", "2025-04-07 15:30"),
        ("b.csv", BARS, "bars", "2020-03-13 09:15", "2020-03-13 09:16"),
    ],
)
def test_each_format_is_detected_and_normalised(
    tmp_path: Path, name: str, text: str, fmt: str, first_start: str, first_end: str
) -> None:
    path = write(tmp_path, name, text)
    assert detect_format(path) == fmt
    df = read_bars(path)
    assert df.columns == ["start", "end", "open", "high", "low", "close", "volume"]
    assert df.schema["start"] == pl.Datetime("us") and df.schema["end"] == pl.Datetime("us")
    assert (df["start"][0], df["end"][0]) == (dt(first_start), dt(first_end))
    # The explicit name reads the same file the same way.
    assert read_bars(path, format=fmt).equals(df)
    assert set(FORMATS) >= {fmt}


def test_kite_csv_offsets_in_every_spelling(tmp_path: Path) -> None:
    df = read_bars(write(tmp_path, "k.csv", KITE_CSV))
    assert df["start"].to_list() == [dt("2017-12-15 09:15"), dt("2017-12-15 09:16"),
                                     dt("2017-12-15 09:17")]
    assert df["volume"].to_list() == [7.0, 8.0, 9.0]


def test_kite_csv_in_utc_is_converted_to_ist(tmp_path: Path) -> None:
    path = write(tmp_path, "utc.csv", "date,open,high,low,close\n2024-06-04T03:45:00Z,1,1,1,1\n")
    assert read_bars(path)["start"][0] == dt("2024-06-04 09:15")


def test_kite_day_candles_become_daily_bars(tmp_path: Path) -> None:
    text = (
        "date,open,high,low,close,volume\n"
        "2019-12-04T00:00:00+0530,100,110,90,105,0\n"
        "2019-12-05T00:00:00+0530,105,111,95,100,0\n"
    )
    feed = ReplayFeed(write(tmp_path, "day.csv", text))
    assert feed.interval is None
    assert read_bars(feed.path)["end"].to_list() == [dt("2019-12-04 15:30"), dt("2019-12-05 15:30")]


def test_parquet_with_aware_datetimes(tmp_path: Path) -> None:
    ist = timezone(timedelta(hours=5, minutes=30))
    frame = pl.DataFrame(
        {
            "date": [datetime(2024, 6, 4, 9, m, tzinfo=ist) for m in (15, 16)],
            "open": [1.0, 2.0], "high": [2.0, 3.0], "low": [1.0, 2.0], "close": [2.0, 3.0],
            "volume": [0, 0],
        }
    )
    path = tmp_path / "aware.parquet"
    frame.write_parquet(path)
    assert detect_format(path) == "kite"
    assert read_bars(path)["start"].to_list() == [dt("2024-06-04 09:15"), dt("2024-06-04 09:16")]


def test_kite_json_small(tmp_path: Path) -> None:
    doc = {"status": "success", "data": {"candles": [
        ["2024-06-04T09:15:00+0530", 100, 105, 99, 104, 12],
        ["2024-06-04T09:16:00+0530", 104, 106, 101, 102, 13, 900],
    ]}}
    path = write(tmp_path, "hist.json", json.dumps(doc))
    bars = bars_of(ReplayFeed(path).events())
    assert [b.ts for b in bars] == [dt("2024-06-04 09:16"), dt("2024-06-04 09:17")]
    assert [b.volume for b in bars] == [12.0, 13.0]


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ({"status": "error", "message": "Token expired"}, "Token expired"),
        ({"status": "success", "data": {}}, "candles"),
        ({"status": "success", "data": {"candles": [["2024-06-04T09:15:00+0530", 1, 1]]}},
         "candle 1"),
        ({"data": {"candles": [["2024-06-04T09:15:00+0530", 1, "x", 1, 1, 0]]}},
         "candle 1: high 'x' is not a number"),
    ],
)
def test_kite_json_errors(tmp_path: Path, doc: object, needle: str) -> None:
    path = write(tmp_path, "bad.json", json.dumps(doc))
    with pytest.raises(FeedError, match=r"bad\.json") as info:
        ReplayFeed(path)
    assert needle in str(info.value)


# -- events -----------------------------------------------------------------------------------


def test_each_bar_sends_its_close_tick_then_the_bar(tmp_path: Path) -> None:
    events = list(ReplayFeed(write(tmp_path, "k5.csv", KITE5)).events())
    assert [type(e) for e in events] == [IndexTick, Bar, IndexTick, Bar]
    tick, bar = events[0], events[1]
    assert isinstance(tick, IndexTick) and isinstance(bar, Bar)
    assert tick.ts == bar.ts == dt("2024-06-04 09:20") and tick.value == bar.close == 104.0
    assert bar.start == dt("2024-06-04 09:15") and bar.underlying == "NIFTY"
    assert {e.source for e in events} == {"replay:k5.csv"}


def test_intrabar_paths_follow_the_bar_direction(tmp_path: Path) -> None:
    text = (
        "date,open,high,low,close\n"
        "04-06-2024 09:15,100,105,99,104\n"  # up bar: O-L-H-C
        "04-06-2024 09:18,104,106,101,102\n"  # down bar: O-H-L-C
        "04-06-2024 09:21,102,103,101,102\n"  # doji: O-H-L-C
    )
    feed = ReplayFeed(write(tmp_path, "ib.csv", text), intrabar=True, interval=timedelta(minutes=3))
    events = list(feed.events())
    ticks = [e for e in events if isinstance(e, IndexTick)]
    assert [t.value for t in ticks] == [100, 99, 105, 104, 104, 106, 101, 102, 102, 103, 101, 102]
    assert [t.ts for t in ticks[:4]] == [
        dt("2024-06-04 09:15"), dt("2024-06-04 09:16"), dt("2024-06-04 09:17"),
        dt("2024-06-04 09:18"),
    ]
    assert [type(e) for e in events[:5]] == [IndexTick] * 4 + [Bar]
    assert_time_ordered(events)


def test_timers_fill_gaps_within_a_day_only(tmp_path: Path) -> None:
    text = (
        "date,open,high,low,close\n"
        "04-06-2024 09:15,1,1,1,1\n"
        "04-06-2024 09:16,1,1,1,1\n"
        "04-06-2024 09:20,1,1,1,1\n"  # 09:17-09:20 has no bars
        "05-06-2024 09:15,1,1,1,1\n"  # overnight: no timers
    )
    path = write(tmp_path, "gap.csv", text)
    events = list(ReplayFeed(path).events())
    timers = of(Timer, events)
    assert [t.ts for t in timers] == [dt("2024-06-04 09:18"), dt("2024-06-04 09:19")]
    assert {t.source for t in timers} == {"replay:gap.csv"}
    assert_time_ordered(events)
    slow = of(Timer, ReplayFeed(path, timer_every_s=120).events())
    assert [t.ts for t in slow] == [dt("2024-06-04 09:19")]
    assert not of(Timer, ReplayFeed(path, timer_every_s=None).events())


def test_previous_close_comes_first(tmp_path: Path) -> None:
    events = list(ReplayFeed(write(tmp_path, "g.csv", GDFL), prev_close=99.5).events())
    first = events[0]
    assert isinstance(first, PreviousClose)
    assert (first.ts, first.underlying, first.close, first.vix_close) == (
        dt("2020-03-13 09:00"), "NIFTY", 99.5, None,
    )
    assert len(of(PreviousClose, events)) == 1


def test_underlying_from_parameter_symbol_column_or_default(tmp_path: Path) -> None:
    g = write(tmp_path, "g.csv", GDFL.replace("NIFTY,", "BANKNIFTY,"))
    assert {b.underlying for b in bars_of(ReplayFeed(g).events())} == {"BANKNIFTY"}
    assert {b.underlying for b in bars_of(ReplayFeed(g, underlying="X").events())} == {"X"}
    k = write(tmp_path, "k5.csv", KITE5)
    assert {b.underlying for b in bars_of(ReplayFeed(k).events())} == {"NIFTY"}
    vix = list(ReplayFeed(write(tmp_path, "v.csv", YF_VIX), underlying="INDIAVIX").events())
    assert [type(e) for e in vix] == [VixTick, Bar, VixTick, Bar]


def test_feed_protocol_and_reiteration(tmp_path: Path) -> None:
    feed = ReplayFeed(write(tmp_path, "g.csv", GDFL))
    assert isinstance(feed, Feed)
    assert feed.name == "replay:g.csv"
    assert list(feed.events()) == list(feed.events())
    assert feed.bars().equals(read_bars(feed.path))


def test_duplicate_rows_are_delivered_in_order(tmp_path: Path) -> None:
    text = KITE5 + "04-06-2024 09:20,104,106,101,102,10\n"
    events = list(ReplayFeed(write(tmp_path, "dup.csv", text), intrabar=True).events())
    assert len(bars_of(events)) == 3
    assert_time_ordered(events)


def test_interval_default_for_a_single_bar(tmp_path: Path) -> None:
    one = write(tmp_path, "one.csv", "date,open,high,low,close\n04-06-2024 09:15,1,1,1,1\n")
    assert ReplayFeed(one).interval == timedelta(minutes=5)
    assert ReplayFeed(one, interval=timedelta(minutes=15)).interval == timedelta(minutes=15)


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "row", "needle"),
    [
        ("04-06-2024 09:15,100,99,98,100\n", 1, "high 99.0 is below max(open, close)"),
        ("04-06-2024 09:15,100,101,100.5,100\n", 1, "low 100.5 is above min(open, close)"),
        ("04-06-2024 9h15,100,101,99,100\n", 1, "cannot parse time '04-06-2024 9h15'"),
        ("04-06-2024 09:15,abc,101,99,100\n", 1, "open 'abc' is not a number"),
        ("04-06-2024 09:15,,101,99,100\n", 1, "open is missing"),
        ("04-06-2024 09:15,0,0,0,0\n", 1, "not a positive price"),
        ("04-06-2024 09:15,1,1,1,1\n04-06-2024 09:10,1,1,1,1\n", 2, "time goes backwards"),
    ],
)
def test_bad_rows_raise_with_file_and_row(tmp_path: Path, body: str, row: int, needle: str) -> None:
    path = write(tmp_path, "bad.csv", "date,open,high,low,close\n" + body)
    with pytest.raises(ReplayRowError) as info:
        read_bars(path, format="kite5")
    err = info.value
    assert isinstance(err, FeedError)
    assert (err.path, err.row, err.line) == (path, row, row + 1)
    assert str(path) in str(err) and f"row {row} (line {row + 1})" in str(err)
    assert needle in str(err)


def test_blank_lines_are_skipped_and_line_numbers_stay_true(tmp_path: Path) -> None:
    text = "date,open,high,low,close\n04-06-2024 09:15,1,1,1,1\n\n04-06-2024 09:20,2,1,1,1\n\n"
    with pytest.raises(ReplayRowError, match=r"row 3 \(line 4\)"):
        read_bars(write(tmp_path, "blank.csv", text))
    ok = "date,open,high,low,close\n\n04-06-2024 09:15,1,1,1,1\n\n"
    assert read_bars(write(tmp_path, "ok.csv", ok)).height == 1


def test_counts_further_bad_rows(tmp_path: Path) -> None:
    text = "date,open,high,low,close\n" + "04-06-2024 09:15,2,1,1,1\n" * 3
    with pytest.raises(ReplayRowError, match="2 more bad rows"):
        read_bars(write(tmp_path, "many.csv", text))


def test_ragged_row_is_located(tmp_path: Path) -> None:
    text = "date,open,high,low,close\n04-06-2024 09:15,1,1,1,1\n04-06-2024 09:20,1,1,1,1,9\n"
    with pytest.raises(ReplayRowError, match=r"row 2 \(line 3\): 6 fields"):
        read_bars(write(tmp_path, "ragged.csv", text))


def test_negative_or_garbage_volume(tmp_path: Path) -> None:
    path = write(tmp_path, "v.csv", "date,open,high,low,close,volume\n04-06-2024 09:15,1,1,1,1,x\n")
    with pytest.raises(ReplayRowError, match="volume 'x' is not a number"):
        read_bars(path)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty"),
        ("date,open,high,low,close\n", "no bars"),
        ("when,price\n1,2\n", "cannot tell the format"),
        ("date,open,high,low,close\n2024/06/04,1,1,1,1\n", "pass format="),
    ],
)
def test_unusable_files(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(FeedError, match=r"x\.csv") as info:
        ReplayFeed(write(tmp_path, "x.csv", text))
    assert needle in str(info.value)


def test_explicit_format_needs_its_columns(tmp_path: Path) -> None:
    with pytest.raises(FeedError, match=r"needs columns \['time'\]"):
        read_bars(write(tmp_path, "k5.csv", KITE5), format="gdfl")
    with pytest.raises(ValueError, match="unknown replay format"):
        read_bars(write(tmp_path, "k5b.csv", KITE5), format="csv")


def test_missing_file_and_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(FeedError, match="cannot open"):
        ReplayFeed(tmp_path / "absent.csv")
    path = write(tmp_path, "k5.csv", KITE5)
    with pytest.raises(ValueError, match="timer_every_s"):
        ReplayFeed(path, timer_every_s=0)
    with pytest.raises(ValueError, match="prev_close"):
        ReplayFeed(path, prev_close=-1.0)


# -- property: any valid file replays in time order ---------------------------------------------

bar_rows = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=30),  # minutes after the previous bar (0 = duplicate)
        st.floats(min_value=1, max_value=1000),
        st.floats(min_value=1, max_value=1000),
        st.floats(min_value=0, max_value=50),
        st.floats(min_value=0, max_value=50),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(rows=bar_rows, intrabar=st.booleans())
def test_any_valid_file_replays_in_time_order(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[tuple[int, float, float, float, float]],
    intrabar: bool,
) -> None:
    at = datetime(2024, 6, 4, 9, 15)
    lines = ["date,open,high,low,close"]
    for step, open_, close, up, down in rows:
        at += timedelta(minutes=step)
        high, low = max(open_, close) + up, max(min(open_, close) - down, 0.5)
        lines.append(f"{at:%d-%m-%Y %H:%M},{open_!r},{high!r},{low!r},{close!r}")
    path = tmp_path_factory.mktemp("prop") / "p.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    events = list(ReplayFeed(path, intrabar=intrabar, prev_close=1.0).events())
    assert_time_ordered(events)
    assert len(bars_of(events)) == len(rows)


def test_parquet_with_date_and_time_types(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "ticker": ["NIFTY", "NIFTY"],
            "date": [datetime(2020, 3, 13).date()] * 2,
            "time": [dt("2020-03-13 09:16").time(), dt("2020-03-13 09:17").time()],
            "open": [1.0, 2.0], "high": [2.0, 3.0], "low": [0.5, 1.0], "close": [1.0, 0.5],
        }
    )
    path = tmp_path / "typed.parquet"
    frame.write_parquet(path)
    assert detect_format(path) == "gdfl"  # "ticker" is GDFL's own name for the symbol
    with pytest.raises(ReplayRowError, match=r"typed\.parquet: row 2: low 1\.0 is above") as info:
        read_bars(path)
    assert info.value.line is None
    frame.with_columns(low=pl.Series([0.5, 0.5])).write_parquet(path)
    assert read_bars(path)["end"].to_list() == [dt("2020-03-13 09:16"), dt("2020-03-13 09:17")]
