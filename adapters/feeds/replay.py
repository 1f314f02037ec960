"""Replay recorded index bars (CSV, Parquet or Kite JSON) as the events a live feed would send.

A backtest is only as honest as its clock, so each bar becomes what the engine would have seen
live: the close (or, with ``intrabar=True``, the path open → extremes → close) as IndexTicks, then
the finished Bar at its end, and Timer events through gaps so that a halt looks like silence
rather than a jump.

The feed delivers every row the file holds, in file order: pre-open prints, call-auction
indicative values and post-close prints included. Deciding which of those are tradable is the
engine's data-quality stage's job; a feed that filtered them would hide exactly the days
(13 and 23 Mar 2020) that a safety layer has to be tested on.

A row that cannot be a bar (an unparsable time, a missing or non-positive price, a high below the
open or close, a time earlier than the row before) stops the load with a
:class:`ReplayRowError` naming the file and the row. Skipping it would make the engine see a
market that never existed, and a replay is a record that has to be trusted as a whole.

``docs/replay-formats.md`` describes each file format with a sample.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any, Final, Literal

import polars as pl

from ruleengine.errors import FeedError
from ruleengine.events import Bar, Event, IndexTick, PreviousClose, Timer, VixTick

__all__ = ["FORMATS", "ReplayFeed", "ReplayRowError", "detect_format", "read_bars"]

#: Format names accepted by ``format=``; ``docs/replay-formats.md`` has one section per name.
FORMATS: Final[tuple[str, ...]] = ("gdfl", "kite5", "kite", "yfinance", "nse_daily", "bars")

BAR_COLUMNS: Final[tuple[str, ...]] = ("start", "end", "open", "high", "low", "close", "volume")

_DAILY_FORMATS: Final = frozenset({"yfinance", "nse_daily"})
#: Used only when a file has no two bars on one day to measure the bar length from.
_DEFAULT_INTERVAL: Final[dict[str, timedelta]] = {
    "gdfl": timedelta(minutes=1),
    "kite5": timedelta(minutes=5),
    "kite": timedelta(minutes=1),
}
_REQUIRED: Final[dict[str, tuple[str, ...]]] = {
    "gdfl": ("date", "time", "open", "high", "low", "close"),
    "bars": ("start", "end", "open", "high", "low", "close"),
    "kite5": ("date", "open", "high", "low", "close"),
    "kite": ("date", "open", "high", "low", "close"),
    "yfinance": ("date", "open", "high", "low", "close"),
    "nse_daily": ("date", "open", "high", "low", "close"),
}
#: Other spellings seen in exports (GDFL's own header, yfinance intraday), used only when the
#: canonical name is absent.
_ALIASES: Final[dict[str, str]] = {
    "ticker": "symbol",
    "datetime": "date",
    "timestamp": "date",
    "open interest": "oi",
}
_STAMP_HINT: Final[dict[str, str]] = {
    "gdfl": "date YYYYMMDD and time HH:MM",
    "kite5": "DD-MM-YYYY HH:MM",
    "kite": "ISO-8601 such as 2017-12-15T09:15:00+05:30",
    "yfinance": "YYYY-MM-DD",
    "nse_daily": "DD-MON-YYYY",
    "bars": "ISO-8601 start and end",
}
#: First-value patterns that tell the date-column formats apart (they share one header).
_SNIFF: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (re.compile(r"\d{1,2}-\d{1,2}-\d{4}([ T]\d{1,2}:\d{2}(:\d{2})?)?"), "kite5"),
    (re.compile(r"\d{4}-\d{2}-\d{2}"), "yfinance"),
    (re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{1,2}:\d{2}.*"), "kite"),
    (re.compile(r"\d{1,2}-[A-Za-z]{3}-\d{4}"), "nse_daily"),
)
_ISO_AWARE: Final = ("%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M%z")
_ISO_NAIVE: Final = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M")
_KITE5: Final = ("%d-%m-%Y %H:%M", "%d-%m-%Y %H:%M:%S", "%d-%m-%Y")

IST_OFFSET: Final = timedelta(hours=5, minutes=30)
#: A daily bar stands for the regular session: it starts at the open and is known at the close.
DAILY_START: Final = time(9, 15)
DAILY_END: Final = time(15, 30)
#: PreviousClose is stamped no later than this, so it precedes a 09:00 pre-open session.
PREVIOUS_CLOSE_AT: Final = time(9, 0)
#: Underlying names whose ticks are India VIX, which the engine keeps apart from index prices.
VIX_NAMES: Final = frozenset({"INDIAVIX", "VIX"})

_PRICES: Final = ("open", "high", "low", "close")
_Kind = Literal["csv", "parquet", "json"]


class ReplayRowError(FeedError):
    """One row cannot be a bar. Carries the place so a person can open the file right there.

    ``row`` counts data rows from 1 (the header is not a row; for Kite JSON it is the candle
    number). ``line`` is the CSV line, header = line 1; None for Parquet and JSON.
    """

    def __init__(
        self, path: Path, row: int, reason: str, *, line: int | None = None,
        unit: str = "row", more: int = 0,
    ) -> None:
        self.path = path
        self.row = row
        self.line = line
        self.reason = reason
        where = f"{unit} {row}" + (f" (line {line})" if line is not None else "")
        tail = f" ({more} more bad rows after it)" if more else ""
        super().__init__(f"{path}: {where}: {reason}{tail}")


@dataclass(frozen=True, slots=True)
class _Raw:
    path: Path
    kind: _Kind
    frame: pl.DataFrame  # normalised column names plus "_row", blank rows dropped
    columns: tuple[str, ...]  # the file's columns, normalised, without "_row"

    def fail(self, row: int, reason: str, more: int = 0) -> ReplayRowError:
        line = row + 1 if self.kind == "csv" else None
        unit = "candle" if self.kind == "json" else "row"
        return ReplayRowError(self.path, row, reason, line=line, unit=unit, more=more)


@dataclass(frozen=True, slots=True)
class _Loaded:
    format: str
    interval: timedelta | None  # None for daily bars
    frame: pl.DataFrame  # BAR_COLUMNS + "symbol"


# -- public API -------------------------------------------------------------------------------


def read_bars(
    path: str | Path, format: str | None = None, *, interval: timedelta | None = None
) -> pl.DataFrame:
    """Load a bar file into one shape, so analysis and the feed agree on what a file says.

    Columns ``start, end, open, high, low, close, volume``; times are naive IST datetimes. Rows
    stay in file order. ``interval`` overrides the bar length measured from the file (intraday
    formats only).
    """
    return _load(Path(path), format, interval).frame.select(BAR_COLUMNS)


def detect_format(path: str | Path) -> str:
    """The format ``read_bars`` would use, for a CLI or a person checking a file before a run."""
    raw = _read_raw(Path(path))
    return _detect(raw)


class ReplayFeed:
    """A :class:`~ruleengine.contracts.Feed` over one recorded file.

    Per bar, in this order: IndexTick(s), then the Bar at the bar's end, so that anything that
    acts on a finished bar already sees its close as the current price. ``intrabar=True`` sends
    four ticks at start, +1/3, +2/3 and end of the bar: O-L-H-C when close > open, otherwise
    O-H-L-C (the usual assumption that the extreme nearer the close came last), so that stops
    inside a bar are exercised. When ``underlying`` names India VIX (``INDIAVIX`` or ``VIX``) the
    ticks are VixTicks, because the engine keeps VIX apart from index prices.

    Between two bars of the same date whose times do not touch, Timer events every
    ``timer_every_s`` seconds (``None`` turns them off) fill the gap, strictly after the earlier
    bar's end and strictly before the later bar's start: the engine sees a halt as time passing
    with no data. Nights and weekends get none; they are not silence in a session.

    ``underlying=None`` takes the file's ``symbol`` column when it has one, else ``"NIFTY"``; a
    given name always wins, so a file can be replayed as another index. ``prev_close`` sends a
    PreviousClose first, at 09:00 of the first bar's day (or the first bar's start, if earlier).

    The file is read and checked here, in the constructor, so that a bad file fails when a run is
    set up rather than part-way through it; :meth:`events` can be iterated any number of times.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        underlying: str | None = None,
        format: str | None = None,
        prev_close: float | None = None,
        intrabar: bool = False,
        timer_every_s: float | None = 60,
        interval: timedelta | None = None,
    ) -> None:
        if timer_every_s is not None and not (math.isfinite(timer_every_s) and timer_every_s > 0):
            raise ValueError(f"timer_every_s must be a positive number or None: {timer_every_s}")
        if prev_close is not None and not (math.isfinite(prev_close) and prev_close > 0):
            raise ValueError(f"prev_close must be a positive price: {prev_close}")
        self.path = Path(path)
        self.name = f"replay:{self.path.name}"
        loaded = _load(self.path, format, interval)
        self.format: str = loaded.format
        self.interval: timedelta | None = loaded.interval
        self.underlying = underlying
        self.prev_close = prev_close
        self.intrabar = intrabar
        self.timer_every = None if timer_every_s is None else timedelta(seconds=timer_every_s)
        self._frame = loaded.frame

    def __len__(self) -> int:
        """Number of bars (not events)."""
        return self._frame.height

    def bars(self) -> pl.DataFrame:
        """The bars this feed replays, in the ``read_bars`` shape."""
        return self._frame.select(BAR_COLUMNS)

    def events(self) -> Iterator[Event]:
        source = self.name
        rows = self._frame.select((*BAR_COLUMNS, "symbol")).iter_rows()
        vix: dict[str, bool] = {}
        prev_end: datetime | None = None
        for start, end, open_, high, low, close, volume, symbol in rows:
            name = self.underlying or symbol or "NIFTY"
            is_vix = vix.get(name)
            if is_vix is None:
                is_vix = vix[name] = _is_vix(name)
            if prev_end is None:
                if self.prev_close is not None:
                    at = min(start, datetime.combine(start.date(), PREVIOUS_CLOSE_AT))
                    yield _previous_close(at, source, name, self.prev_close, is_vix)
            else:
                yield from self._timers(prev_end, start, source)
            if self.intrabar:
                path = (open_, low, high, close) if close > open_ else (open_, high, low, close)
                third = (end - start) / 3
                for k, value in enumerate(path):
                    at = end if k == 3 else start + third * k
                    if prev_end is not None and at < prev_end:
                        at = prev_end  # overlapping bars (a repeated row): never step back
                    yield _tick(at, source, name, value, is_vix)
            else:
                yield _tick(end, source, name, close, is_vix)
            yield Bar(
                ts=end, source=source, underlying=name, open=open_, high=high, low=low,
                close=close, volume=volume, start=start,
            )
            prev_end = end if prev_end is None else max(prev_end, end)

    def _timers(self, prev_end: datetime, start: datetime, source: str) -> Iterator[Timer]:
        if self.timer_every is None or prev_end.date() != start.date():
            return
        at = prev_end + self.timer_every
        while at < start:
            yield Timer(ts=at, source=source)
            at += self.timer_every

    def __repr__(self) -> str:
        return f"ReplayFeed({str(self.path)!r}, format={self.format!r}, bars={len(self)})"


def _tick(ts: datetime, source: str, underlying: str, value: float, is_vix: bool) -> Event:
    if is_vix:
        return VixTick(ts=ts, source=source, value=value)
    return IndexTick(ts=ts, source=source, underlying=underlying, value=value)


def _previous_close(
    ts: datetime, source: str, underlying: str, close: float, is_vix: bool
) -> PreviousClose:
    vix = close if is_vix else None
    return PreviousClose(ts=ts, source=source, underlying=underlying, close=close, vix_close=vix)


def _is_vix(name: str) -> bool:
    return re.sub(r"[^A-Z]", "", name.upper()) in VIX_NAMES


# -- reading ----------------------------------------------------------------------------------


def _read_raw(path: Path) -> _Raw:
    try:
        with path.open("rb") as fh:
            head = fh.read(64)
    except OSError as exc:
        raise FeedError(f"{path}: cannot open: {exc}") from exc
    kind: _Kind
    if head.startswith(b"PAR1"):
        kind = "parquet"
        try:
            frame = pl.read_parquet(path)
        except pl.exceptions.PolarsError as exc:
            raise FeedError(f"{path}: cannot read as Parquet: {exc}") from exc
    elif path.suffix.lower() == ".json" or head.lstrip().startswith(b"{"):
        kind = "json"
        frame = _read_kite_json(path)
    else:
        kind = "csv"
        frame = _read_csv(path)
    frame = _normalise_names(frame, path)
    columns = tuple(frame.columns)
    text = [c for c, t in frame.schema.items() if t == pl.String]
    if text:
        frame = frame.with_columns(
            pl.col(c).str.strip_chars().replace("", None) for c in text
        )
    frame = frame.with_row_index("_row", offset=1)
    if columns:
        frame = frame.filter(~pl.all_horizontal(pl.col(c).is_null() for c in columns))
    return _Raw(path=path, kind=kind, frame=frame, columns=columns)


def _read_csv(path: Path) -> pl.DataFrame:
    try:
        return pl.read_csv(path, infer_schema=False)
    except pl.exceptions.NoDataError as exc:
        raise FeedError(f"{path}: the file is empty") from exc
    except pl.exceptions.PolarsError as exc:
        ragged = _find_ragged_row(path)
        if ragged is not None:
            row, line, got, want = ragged
            raise ReplayRowError(
                path, row, f"{got} fields where the header has {want}", line=line
            ) from exc
        raise FeedError(f"{path}: cannot read as CSV: {exc}") from exc


def _find_ragged_row(path: Path) -> tuple[int, int, int, int] | None:
    """Polars reports a row with too many fields without saying which; find it for the person."""
    try:
        with path.open(newline="", encoding="utf-8", errors="replace") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                return None
            for row, fields in enumerate(reader, start=1):
                if len(fields) > len(header):
                    return row, reader.line_num, len(fields), len(header)
    except (OSError, csv.Error):
        return None
    return None


def _read_kite_json(path: Path) -> pl.DataFrame:
    """Kite's historical-candles response. Checked candle by candle, since JSON has no schema."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FeedError(f"{path}: cannot read as JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise FeedError(f"{path}: expected a Kite historical response object")
    if doc.get("status", "success") != "success":
        raise FeedError(f"{path}: Kite response status {doc.get('status')!r}: {doc.get('message')}")
    data = doc.get("data", doc)
    candles = data.get("candles") if isinstance(data, dict) else None
    if not isinstance(candles, list):
        raise FeedError(f"{path}: no data.candles list (expected Kite historical candles)")
    names = ("date", "open", "high", "low", "close", "volume", "oi")
    columns: dict[str, list[Any]] = {n: [] for n in names}
    for number, candle in enumerate(candles, start=1):
        if not isinstance(candle, list) or len(candle) not in (6, 7):
            reason = "expected [time, open, high, low, close, volume(, oi)]"
            raise ReplayRowError(path, number, reason, unit="candle")
        if not isinstance(candle[0], str):
            reason = f"time {candle[0]!r} is not a string"
            raise ReplayRowError(path, number, reason, unit="candle")
        for name, value in zip(names[1:], candle[1:], strict=False):
            if isinstance(value, bool) or not isinstance(value, int | float):
                reason = f"{name} {value!r} is not a number"
                raise ReplayRowError(path, number, reason, unit="candle")
        padded = [*candle, None] if len(candle) == 6 else candle
        for name, value in zip(names, padded, strict=True):
            columns[name].append(value if name == "date" or value is None else float(value))
    schema: dict[str, pl.DataType] = {n: pl.Float64() for n in names}
    schema["date"] = pl.String()
    return pl.DataFrame(columns, schema=schema)


def _normalise_names(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    names = [c.replace("\ufeff", "").strip().lower() for c in frame.columns]
    present = set(names)
    for i, name in enumerate(names):
        alias = _ALIASES.get(name)
        if alias is not None and alias not in present:
            names[i] = alias
            present.add(alias)
    if len(set(names)) != len(names):
        raise FeedError(f"{path}: repeated column names in header {frame.columns}")
    return frame.rename(dict(zip(frame.columns, names, strict=True)))


def _detect(raw: _Raw) -> str:
    cols = set(raw.columns)
    if {"start", "end"} <= cols:
        return "bars"
    if {"date", "time"} <= cols:
        return "gdfl"
    if "date" not in cols:
        raise FeedError(
            f"{raw.path}: cannot tell the format from header {list(raw.columns)}; expected a "
            "date (or start/end) column and open, high, low, close (see docs/replay-formats.md)"
        )
    dtype = raw.frame.schema["date"]
    if isinstance(dtype, pl.Datetime):
        return "kite" if dtype.time_zone else "kite5"
    if dtype == pl.Date:
        return "yfinance"
    first = raw.frame.select("_row", pl.col("date").cast(pl.String)).drop_nulls().head(1)
    if first.is_empty():
        raise FeedError(f"{raw.path}: no bars")
    row, value = first.row(0)
    for pattern, name in _SNIFF:
        if pattern.fullmatch(value):
            return name
    raise raw.fail(
        row, f"cannot tell the format from date {value!r}; pass format= (one of {FORMATS})"
    )


# -- parsing ----------------------------------------------------------------------------------


def _load(path: Path, fmt: str | None, interval: timedelta | None) -> _Loaded:
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"unknown replay format {fmt!r}; known: {', '.join(FORMATS)}")
    if interval is not None and interval <= timedelta(0):
        raise ValueError(f"interval must be positive: {interval}")
    raw = _read_raw(path)
    fmt = fmt or _detect(raw)
    missing = [c for c in _REQUIRED[fmt] if c not in raw.columns]
    if missing:
        raise FeedError(
            f"{path}: format {fmt!r} needs columns {missing}; the header has {list(raw.columns)}"
        )
    if raw.frame.is_empty():
        raise FeedError(f"{path}: no bars")
    df = raw.frame
    parsed = df.with_columns(
        *(_number(df, c).alias(f"_{c}") for c in _PRICES),
        (_number(df, "volume") if "volume" in df.columns else pl.lit(None, pl.Float64))
        .alias("_volume"),
        (_text(df, "symbol") if "symbol" in df.columns else pl.lit(None, pl.String))
        .alias("symbol"),
    )
    daily = fmt in _DAILY_FORMATS
    bar_len: timedelta | None = None
    if fmt == "bars":
        parsed = parsed.with_columns(
            _stamp(df, "start", "kite").alias("_start"), _stamp(df, "end", "kite").alias("_end")
        )
    else:
        parsed = parsed.with_columns(_label(df, fmt).alias("_label"))
        labels = parsed.get_column("_label").drop_nulls()
        if fmt in ("kite", "kite5") and not labels.is_empty():
            daily = bool((labels.dt.time() == time(0)).all())
        if daily:
            day = pl.col("_label").dt.date()
            parsed = parsed.with_columns(
                day.dt.combine(DAILY_START).alias("_start"),
                day.dt.combine(DAILY_END).alias("_end"),
            )
        else:
            bar_len = interval or _measure_interval(labels) or _DEFAULT_INTERVAL[fmt]
            label = pl.col("_label")
            if fmt == "gdfl":  # labelled by the bar's end
                parsed = parsed.with_columns((label - bar_len).alias("_start"), label.alias("_end"))
            else:
                parsed = parsed.with_columns(label.alias("_start"), (label + bar_len).alias("_end"))
    parsed = parsed.with_columns(pl.col("_end").shift(1).alias("_prev_end"))
    _check(raw, fmt, parsed)
    frame = parsed.select(
        pl.col("_start").alias("start"),
        pl.col("_end").alias("end"),
        *(pl.col(f"_{c}").alias(c) for c in _PRICES),
        pl.col("_volume").fill_null(0.0).alias("volume"),
        pl.col("symbol"),
    )
    return _Loaded(format=fmt, interval=bar_len, frame=frame)


def _check(raw: _Raw, fmt: str, parsed: pl.DataFrame) -> None:
    """Find every bad row in one vectorised pass, then explain the first in words."""
    o, h, lo, c = (pl.col(f"_{p}") for p in _PRICES)
    volume = pl.col("_volume")
    has_volume = "volume" in raw.columns
    ok = pl.all_horizontal(
        pl.col("_start").is_not_null(),
        pl.col("_end").is_not_null(),
        *(p.is_not_null() & p.is_finite() & (p > 0) for p in (o, h, lo, c)),
        h >= pl.max_horizontal(o, c),
        lo <= pl.min_horizontal(o, c),
        (pl.col("volume").is_null() | (volume.is_finite() & (volume >= 0))) if has_volume
        else pl.lit(True),
        ~(pl.col("_end") < pl.col("_prev_end")).fill_null(False),
    ).fill_null(False)
    bad = parsed.filter(~ok)
    if bad.is_empty():
        return
    row = bad.row(0, named=True)
    raise raw.fail(row["_row"], _reason(row, fmt, has_volume), more=bad.height - 1)


def _reason(row: dict[str, Any], fmt: str, has_volume: bool) -> str:
    if row["_start"] is None or row["_end"] is None:
        stamp_cols = {"gdfl": ("date", "time"), "bars": ("start", "end")}.get(fmt, ("date",))
        given = " ".join(str(row[k]) for k in stamp_cols if row[k] is not None)
        if not given:
            return "missing timestamp"
        return f"cannot parse time {given!r} as {fmt} ({_STAMP_HINT[fmt]})"
    for name in _PRICES:
        value = row[f"_{name}"]
        if value is None:
            if row[name] is None:
                return f"{name} is missing"
            return f"{name} {row[name]!r} is not a number"
        if not (math.isfinite(value) and value > 0):
            return f"{name} {value} is not a positive price"
    o, h, lo, c = (row[f"_{p}"] for p in _PRICES)
    if h < max(o, c):
        return f"high {h} is below max(open, close) = {max(o, c)}"
    if lo > min(o, c):
        return f"low {lo} is above min(open, close) = {min(o, c)}"
    if has_volume and row["volume"] is not None:
        v = row["_volume"]
        if v is None:
            return f"volume {row['volume']!r} is not a number"
        if not (math.isfinite(v) and v >= 0):
            return f"volume {v} is negative or not finite"
    if row["_prev_end"] is not None and row["_end"] < row["_prev_end"]:
        end, before = row["_end"], row["_prev_end"]
        return f"time goes backwards: a bar ending {end} comes after one ending {before}"
    return "inconsistent bar"


def _measure_interval(labels: pl.Series) -> timedelta | None:
    """The commonest gap between two bars of one day; halts and missing bars are rarer."""
    frame = labels.to_frame("t").select(
        pl.col("t").diff().alias("gap"),
        (pl.col("t").dt.date() == pl.col("t").shift(1).dt.date()).alias("same_day"),
    )
    gaps = frame.filter(pl.col("same_day") & (pl.col("gap") > timedelta(0))).get_column("gap")
    if gaps.is_empty():
        return None
    commonest: list[timedelta] = gaps.mode().to_list()
    return min(commonest)


def _number(df: pl.DataFrame, name: str) -> pl.Expr:
    col = pl.col(name)
    if df.schema[name] == pl.String:
        col = col.str.replace_all(",", "", literal=True)
    return col.cast(pl.Float64, strict=False)


def _text(df: pl.DataFrame, name: str) -> pl.Expr:
    col = pl.col(name).cast(pl.String)
    return col.str.strip_chars().replace("", None)


def _label(df: pl.DataFrame, fmt: str) -> pl.Expr:
    """The one time a row carries, as naive IST: bar end for gdfl, start (or day) for others."""
    if fmt == "gdfl":
        return _date(df, "date", ("%Y%m%d", "%Y-%m-%d")).dt.combine(_time(df, "time"))
    if fmt == "yfinance":  # also accepts a midnight time with offset (pandas with a tz)
        return _date(df, "date", ("%Y-%m-%d",), iso=True).cast(pl.Datetime("us"))
    if fmt == "nse_daily":
        return _date(df, "date", ("%d-%b-%Y",)).cast(pl.Datetime("us"))
    return _stamp(df, "date", fmt)


def _stamp(df: pl.DataFrame, name: str, fmt: str) -> pl.Expr:
    dtype = df.schema[name]
    col = pl.col(name)
    if isinstance(dtype, pl.Datetime):
        return _to_ist(col.cast(pl.Datetime("us", dtype.time_zone))) if dtype.time_zone else (
            col.cast(pl.Datetime("us"))
        )
    if dtype == pl.Date:
        return col.cast(pl.Datetime("us"))
    text = col.cast(pl.String)
    if fmt == "kite5":
        return _coalesce(text.str.strptime(pl.Datetime("us"), f, strict=False) for f in _KITE5)
    iso = text.str.replace(" ", "T", literal=True).str.replace(r"Z$", "+00:00")
    aware = (_to_ist(iso.str.strptime(pl.Datetime("us"), f, strict=False)) for f in _ISO_AWARE)
    naive = (iso.str.strptime(pl.Datetime("us"), f, strict=False) for f in _ISO_NAIVE)
    return _coalesce((*aware, *naive))


def _date(df: pl.DataFrame, name: str, formats: Sequence[str], *, iso: bool = False) -> pl.Expr:
    dtype = df.schema[name]
    col = pl.col(name)
    if dtype == pl.Date:
        return col
    if isinstance(dtype, pl.Datetime):
        return _stamp(df, name, "kite").dt.date()
    text = col.cast(pl.String)
    parsed = [text.str.strptime(pl.Date, f, strict=False) for f in formats]
    if iso:
        parsed.append(_stamp(df, name, "kite").dt.date())
    return _coalesce(parsed)


def _time(df: pl.DataFrame, name: str) -> pl.Expr:
    dtype = df.schema[name]
    col = pl.col(name)
    if dtype == pl.Time:
        return col
    if isinstance(dtype, pl.Datetime):
        return col.dt.time()
    text = col.cast(pl.String)
    return _coalesce(text.str.strptime(pl.Time, f, strict=False) for f in ("%H:%M", "%H:%M:%S"))


def _to_ist(aware: pl.Expr) -> pl.Expr:
    """Any offset to naive IST. IST has had one fixed offset since 1945, so no tz database."""
    return aware.dt.convert_time_zone("UTC").dt.replace_time_zone(None) + IST_OFFSET


def _coalesce(exprs: Iterator[pl.Expr] | Sequence[pl.Expr]) -> pl.Expr:
    items = list(exprs)
    return items[0] if len(items) == 1 else pl.coalesce(items)
