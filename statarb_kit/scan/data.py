"""The closes a scan reads (a wide table: UTC index, one column per symbol) and where its results go."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ..archive import is_archive, read_closes
from ..backtest.data import utc_ms
from ..bars import traded
from ..errors import InvalidParameter
from ..results import write_frame
from ..store import TickStore
from ..ticks import normalize_symbol

RESULTS_TABLE = "scan_results"


def closes_from_store(db: str | Path, timeframe: str = "1m", symbols: list[str] | None = None,
                      start: str | None = None, end: str | None = None) -> pd.DataFrame:
    """Closes of the stored final bars of ``symbols`` (None: every symbol in the file) on
    ``timeframe``, from UTC ``start`` (inclusive) to ``end`` (exclusive); the file is opened
    read-only, and ``db`` may also be an archive folder (``archive``). A bar time where a symbol
    did not trade is NaN (the scan carries it, bounded)."""
    bounds = [None if b is None else utc_ms(b) for b in (start, end)]
    names = [normalize_symbol(s) for s in symbols] if symbols else None
    if is_archive(db):
        return read_closes(db, timeframe, names, *bounds)
    store = TickStore(db, read_only=True)  # names a file that does not exist
    try:
        rows = store.closes(timeframe, names, *bounds)
    finally:
        store.close()
    if rows.empty:
        raise InvalidParameter(f"{db} has no {timeframe} bars of {', '.join(names) if names else 'any symbol'} "
                               "in that range")
    missing = sorted(set(names or []) - set(rows["symbol"]))
    if missing:
        raise InvalidParameter(f"{db} has no {timeframe} bars of {', '.join(missing)}")
    wide = rows.pivot_table(index="start", columns="symbol", values="close", aggfunc="last").sort_index()
    wide.index = pd.DatetimeIndex(pd.to_datetime(wide.index.to_numpy(np.int64), unit="ms", utc=True), name="time")
    wide.columns.name = None
    return wide


#: Columns a klines file must have (long format, one row per symbol and bar; ``trades`` optional).
KLINE_FILE_COLUMNS = ("symbol", "open_time", "close", "volume")


def closes_from_klines(path: str | Path, symbols: list[str] | None = None, start: str | None = None,
                       end: str | None = None) -> pd.DataFrame:
    """Closes of a klines file (Parquet or CSV, long format: ``symbol, open_time`` (ms UTC),
    ``open, high, low, close, volume`` and optionally ``trades``, as Binance's REST returns them)
    as a wide frame, UTC index, from ``start`` (inclusive) to ``end`` (exclusive). A bar in which
    nothing traded (``bars.traded``: volume 0, or a count of 0 where one is given) is NaN: a settled
    contract's flat klines are no price, so the symbol ends at its last traded bar."""
    path = Path(path)
    if not path.is_file():
        raise InvalidParameter(f"no klines file {path}")
    try:
        k = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise InvalidParameter(f"{path} is not a readable klines file ({type(exc).__name__}: {exc})") from None
    missing = [c for c in KLINE_FILE_COLUMNS if c not in k.columns]
    if missing:
        raise InvalidParameter(f"{path} lacks column(s) {', '.join(missing)}: need {', '.join(KLINE_FILE_COLUMNS)} "
                               "(long format, open_time in ms UTC)")
    k = k.assign(symbol=k["symbol"].astype(str))
    if symbols:
        names = [normalize_symbol(s) for s in symbols]
        absent = sorted(set(names) - set(k["symbol"]))
        if absent:
            raise InvalidParameter(f"{path} has no klines of {', '.join(absent)}")
        k = k[k["symbol"].isin(names)]
    lo, hi = (None if b is None else utc_ms(b) for b in (start, end))
    keep = traded(k["volume"].to_numpy(), k["trades"].to_numpy() if "trades" in k.columns else None)
    keep &= (k["open_time"] >= lo).to_numpy() if lo is not None else True
    keep &= (k["open_time"] < hi).to_numpy() if hi is not None else True
    k = k[keep]
    if k.empty:
        raise InvalidParameter(f"{path} has no traded bars{' of those symbols' if symbols else ''} in that range")
    wide = k.pivot_table(index="open_time", columns="symbol", values="close", aggfunc="last", observed=True)
    wide.index = pd.DatetimeIndex(pd.to_datetime(wide.index.to_numpy(np.int64), unit="ms", utc=True), name="time")
    wide.columns = [str(c) for c in wide.columns]
    return wide.sort_index()


def half_spreads_from_klines(path: str | Path, method: str, window: int = 720, start: str | None = None,
                             end: str | None = None) -> pd.DataFrame:
    """Half the bid-ask spread each symbol of a klines file paid per traded bar, estimated by
    ``method`` (``analytics.spread_estimators``: "abdi_ranaldo" or "corwin_schultz") over the
    trailing ``window`` bars of its own history (bars before ``start`` warm it up), wide as
    ``closes_from_klines`` (NaN where it did not trade). Where a symbol's window has too few
    terms yet (a new listing), the median of the other symbols' estimates at that bar stands in."""
    from ..analytics.spread_estimators import rolling_spread

    closes_from_klines(path, None, start, end)  # the same checks and refusals
    k = pd.read_parquet(path) if Path(path).suffix == ".parquet" else pd.read_csv(path)
    k = k.assign(symbol=k["symbol"].astype(str)).sort_values(["symbol", "open_time"])
    ok = traded(k["volume"].to_numpy(), k["trades"].to_numpy() if "trades" in k.columns else None)
    half = np.empty(len(k))
    for _, rows in k.groupby("symbol", sort=False).indices.items():
        half[rows] = rolling_spread(k["high"].to_numpy()[rows], k["low"].to_numpy()[rows], k["close"].to_numpy()[rows],
                                    method, window, traded=ok[rows]) / 2.0
    lo, hi = (None if b is None else utc_ms(b) for b in (start, end))
    keep = ok & ((k["open_time"] >= lo).to_numpy() if lo is not None else True)
    keep &= (k["open_time"] < hi).to_numpy() if hi is not None else True
    k = k.assign(half=half)[keep]
    wide = k.pivot_table(index="open_time", columns="symbol", values="half", aggfunc="last", observed=True,
                         dropna=False)
    wide.index = pd.DatetimeIndex(pd.to_datetime(wide.index.to_numpy(np.int64), unit="ms", utc=True), name="time")
    wide.columns = [str(c) for c in wide.columns]
    present = k.pivot_table(index="open_time", columns="symbol", values="close", aggfunc="last", observed=True)
    median = wide.median(axis=1)
    filled = wide.apply(lambda col: col.fillna(median))
    return filled.where(present.notna().to_numpy()).sort_index()


def closes_from_files(files: list[str | Path], timeframe: str = "1m", skip_bad: bool = False) -> pd.DataFrame:
    """Closes of Binance dump files (trades or aggTrades, any symbols), built by the pipeline
    (Session -> ticks -> bars) in a temporary DuckDB file: the bars a recording would store."""
    from ..recording import recorded
    from ..sources import Replay

    with recorded(lambda: Replay(files, skip_bad=skip_bad, progress=False), timeframe) as db:
        return closes_from_store(db, timeframe)


def write_scan(results: pd.DataFrame, path: str | Path, origin: str, timeframe: str) -> tuple[Path, str]:
    """Write a scan's rows with a run id, its UTC time, the data origin, timeframe and parameters
    (JSON). ``.duckdb``: appended to table ``scan_results`` (runs accumulate); ``.parquet``,
    ``.csv``, ``.json``: the file is replaced. Returns the path and the run id."""
    run_id = uuid.uuid4().hex[:12]
    out = results.copy()
    out["survives"] = out["survives"].astype("object").where(out["survives"].notna(), None)
    meta = {"run_id": run_id, "run_at": pd.Timestamp(dt.datetime.now(dt.UTC)), "data": origin,
            "timeframe": timeframe, "params": json.dumps(results.attrs.get("params", {}), sort_keys=True)}
    for i, (name, value) in enumerate(meta.items()):
        out.insert(i, name, value)
    return write_frame(out, path, RESULTS_TABLE), run_id


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[object | None]:
    """A ``distributed.Client`` for the block: of the scheduler at ``scheduler`` (e.g.
    tcp://10.0.0.5:8786), or of a local cluster of ``workers`` processes on 127.0.0.1 (closed
    after); None when neither is given (the work runs in this process)."""
    if scheduler and workers:
        raise InvalidParameter("give either a scheduler address or a number of local workers, not both")
    if not scheduler and not workers:
        yield None
        return
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    if workers < 1:
        raise InvalidParameter(f"workers must be >= 1, got {workers}")
    quiet = logging.getLogger("distributed")
    if quiet.getEffectiveLevel() < logging.WARNING:  # dask's own config logs every start at INFO
        quiet.setLevel(logging.WARNING)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        try:
            with Client(cluster) as client:
                yield client
        finally:
            level = quiet.level
            quiet.setLevel(logging.CRITICAL)  # workers closing mid-heartbeat log tracebacks: not errors
            try:
                cluster.close()
            finally:
                quiet.setLevel(level)
