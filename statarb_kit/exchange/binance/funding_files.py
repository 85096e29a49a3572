"""Binance's monthly funding dumps, read into ``funding.FundingRates``.

``data/futures/um/monthly/fundingRate/SYMBOL/SYMBOL-fundingRate-YYYY-MM.zip`` holds one CSV with
the header ``calc_time,funding_interval_hours,last_funding_rate``: the settlement time (ms UTC,
a few ms after the hour), the interval in hours and the rate.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import InvalidParameter, StatarbError
from ...funding import FundingRates
from ...ticks import normalize_symbol
from .dumps import dump_bytes

#: Header of Binance's funding dumps.
DUMP_COLUMNS = ("calc_time", "funding_interval_hours", "last_funding_rate")

class FundingFileError(StatarbError):
    """A funding dump that cannot be read (its path and what is wrong)."""


def funding_dump_name(symbol: str, year: int, month: int) -> tuple[str, str]:
    """(URL path, file name) of a monthly USD-M funding dump."""
    name = f"{symbol}-fundingRate-{year:04d}-{month:02d}.zip"
    return f"/data/futures/um/monthly/fundingRate/{symbol}/{name}", name


def read_funding_file(path: str | Path, symbol: str | None = None) -> FundingRates:
    """One funding dump (zip or CSV, see the module doc). ``symbol`` defaults to the file name's
    prefix. A missing column, a bad row or times out of order raise FundingFileError."""
    path = Path(path)
    sym = normalize_symbol(symbol or path.name.split("-")[0])
    try:
        frame = pd.read_csv(io.BytesIO(dump_bytes(path, FundingFileError)), dtype=str)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise FundingFileError(f"{path}: cannot read: {exc}") from None
    missing = [c for c in DUMP_COLUMNS if c not in frame.columns]
    if missing:
        raise FundingFileError(f"{path}: columns {list(frame.columns)} lack {missing}; a funding dump has "
                               f"{', '.join(DUMP_COLUMNS)}")
    t = pd.to_numeric(frame["calc_time"], errors="coerce")
    r = pd.to_numeric(frame["last_funding_rate"], errors="coerce")
    bad = np.flatnonzero(t.isna().to_numpy() | r.isna().to_numpy() | ~np.isfinite(r.to_numpy(dtype=float, na_value=np.nan)))
    if len(bad):
        raise FundingFileError(f"{path}: line {bad[0] + 2} is not a settlement: {frame.iloc[bad[0]].tolist()}")
    t = t.to_numpy(dtype=np.int64)
    order = np.argsort(t, kind="stable")
    try:
        return FundingRates(sym, t[order], r.to_numpy(dtype=np.float64)[order], "dump")
    except InvalidParameter as exc:
        raise FundingFileError(f"{path}: {exc}") from None


def read_funding_files(paths: list[str | Path]) -> dict[str, FundingRates]:
    """Funding dumps of one or more symbols, merged per symbol."""
    parts: dict[str, list[FundingRates]] = {}
    for p in paths:
        f = read_funding_file(p)
        parts.setdefault(f.symbol, []).append(f)
    return {s: FundingRates.concat(v) for s, v in parts.items()}
