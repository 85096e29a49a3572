"""Binance's public history dumps: read, name and download them.

USD-M futures files (``data/futures/um/{daily,monthly}/{trades,aggTrades}/SYMBOL/``), zipped CSV,
with or without a header row (older files have none):
- ``SYMBOL-trades-YYYY-MM-DD.zip``: id, price, qty, quote_qty, time, is_buyer_maker
- ``SYMBOL-aggTrades-YYYY-MM-DD.zip``: agg_trade_id, price, quantity, first_trade_id,
  last_trade_id, transact_time, is_buyer_maker
Spot files (``data/spot/...``) have no header and one more last column, ``is_best_match``
(True/False); they are read too (``download(..., market="spot")`` fetches them).
Times are milliseconds, or microseconds in newer files: detected by magnitude. Each file has a
``.CHECKSUM`` beside it: ``<sha256>  <file name>``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ...errors import InvalidParameter, NetworkError, StatarbError
from ...ticks import TickBatch, normalize_symbol, now_ms
from .dumps import dump_bytes
from .endpoints import DATA_URL
from .funding_files import funding_dump_name

COLUMNS = {
    "trades": ["id", "price", "qty", "quote_qty", "time", "is_buyer_maker"],
    "aggTrades": ["agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "transact_time",
                  "is_buyer_maker"],
}
#: The last day of Binance's USD-M bookTicker dumps.
BOOK_TICKER_LAST = dt.date(2024, 3, 31)
_NAME = re.compile(r"^(?P<symbol>[A-Z0-9]+)-(?P<kind>trades|aggTrades|bookTicker)-(?P<date>\d{4}-\d{2}(-\d{2})?)\.(csv|zip)$")
_FLOATS = ("price", "qty", "quote_qty", "quantity")  # the other columns are ids, times and the side
_US_THRESHOLD = 10**14  # ms timestamps are ~1.7e12, microsecond ones ~1.7e15


class HistoryFileError(StatarbError):
    """A history file is corrupt or not in Binance's format; the message names file and line."""


@dataclass(frozen=True)
class HistoryFile:
    """What a dump file name says: symbol, kind and date (``YYYY-MM-DD`` or ``YYYY-MM``)."""

    path: Path
    symbol: str
    kind: str
    date: str

    @classmethod
    def of(cls, path: str | Path, symbol: str | None = None, kind: str | None = None) -> HistoryFile:
        p = Path(path)
        m = _NAME.match(p.name)
        if m is None and (symbol is None or kind is None):
            raise InvalidParameter(f"{p.name}: not a Binance dump name (SYMBOL-trades-YYYY-MM-DD.zip, "
                                   "SYMBOL-aggTrades-YYYY-MM-DD.zip, zipped or not): the name says the symbol and "
                                   "kind, so rename the file so (or, in Python, HistoryFile.of(path, symbol=, kind=))")
        kind = kind or m["kind"]
        if kind not in (*COLUMNS, "bookTicker"):
            raise InvalidParameter(f"kind must be 'trades', 'aggTrades' or 'bookTicker', got {kind!r}")
        return cls(p, normalize_symbol(symbol or m["symbol"]), kind, m["date"] if m else "")


def dump_files(files: list[str | Path]) -> list[HistoryFile]:
    """The dump files named by ``files``; InvalidParameter names those that do not exist."""
    missing = [str(f) for f in files if not Path(f).is_file()]
    if missing:
        raise InvalidParameter(f"no such file: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    return [HistoryFile.of(f) for f in files]


@dataclass
class ReadResult:
    """Trades of one file (sorted by trade id) and the count of skipped corrupt lines."""

    frame: pd.DataFrame  # trade_id, ts, price, qty, is_buyer_maker
    skipped: int = 0


def zip_text(path: Path) -> str:
    """The text of a dump (see ``dumps.dump_bytes``); HistoryFileError for a corrupt one."""
    try:
        return dump_bytes(path, HistoryFileError).decode()
    except UnicodeDecodeError as exc:
        raise HistoryFileError(f"{path}: not text: {exc}") from None


def read_history(f: HistoryFile, skip_bad: bool = False) -> ReadResult:
    """Read one dump file into individual trades. aggTrades rows are expanded into their
    ``last - first + 1`` trades (same price, side and time; quantity split evenly).

    A corrupt line raises HistoryFileError naming the file and line, or with ``skip_bad`` is
    skipped and counted.
    """
    try:
        text = zip_text(f.path)
    except (OSError, UnicodeDecodeError) as exc:
        raise HistoryFileError(f"{f.path}: cannot read: {exc}") from None
    lines = text.split("\n", 2)
    header = 1 if lines[0] and not lines[0][:1].isdigit() else 0
    names = _columns(f, lines[header] if len(lines) > header else "")
    try:  # the fast path: every line well formed
        cols = _typed(text, header, names)
        skipped = 0
    except (ValueError, pd.errors.ParserError) as exc:  # find the bad line, or skip bad lines
        cols, skipped = _checked(f, text, header, names, skip_bad, exc)
    return ReadResult(_trades(f, cols), skipped)


def _columns(f: HistoryFile, line: str) -> list[str]:
    """The columns of a file from its first data line: USD-M futures dumps, or spot dumps, which
    add a last column ``is_best_match``. Any other count is refused, naming both layouts."""
    names = COLUMNS[f.kind]
    fields = line.strip().split(",") if line.strip() else names
    if len(fields) == len(names):
        return names
    if len(fields) == len(names) + 1 and fields[-1].strip().lower() in ("true", "false"):
        return [*names, "is_best_match"]
    raise HistoryFileError(
        f"{f.path}: {len(fields)} columns, but Binance {f.kind} dumps have {len(names)} (USD-M futures: "
        f"{', '.join(names)}) or {len(names) + 1} (spot: the same and is_best_match); first line: {line[:120]!r}")


def _typed(text: str, header: int, names: list[str]) -> dict[str, np.ndarray]:
    if not text.strip():
        return {c: np.empty(0, dtype=np.int64 if c != "is_buyer_maker" else bool) for c in names}
    dtypes = {c: np.int64 for c in names if c.endswith("id") or c.endswith("time")}
    dtypes.update({c: np.float64 for c in _FLOATS if c in names})
    frame = pd.read_csv(io.StringIO(text), header=None, skiprows=header, names=names, dtype=dtypes,
                        true_values=["true", "True"], false_values=["false", "False"], engine="c")
    if frame["is_buyer_maker"].dtype != bool or ("is_best_match" in frame and frame["is_best_match"].dtype != bool):
        raise ValueError("is_buyer_maker is not true/false on every line")
    return {c: frame[c].to_numpy() for c in names}


def _checked(f: HistoryFile, text: str, header: int, names: list[str], skip_bad: bool,
             cause: Exception) -> tuple[dict[str, np.ndarray], int]:
    """The slow path: parse as text, name the first bad line (or drop and count bad lines)."""
    try:
        raw = pd.read_csv(io.StringIO(text), header=None, skiprows=header, names=names, dtype=str,
                          on_bad_lines="skip" if skip_bad else "error", engine="c")
    except pd.errors.ParserError as exc:  # a line with the wrong number of fields
        m = re.search(r"line (\d+)", str(exc))
        where = f", line {int(m[1]) + header}" if m else ""
        raise HistoryFileError(f"{f.path}{where}: not a {f.kind} row ({exc}); "
                               "use --skip-bad to skip and count such lines") from None
    lines = len([ln for ln in text.splitlines()[header:] if ln.strip()])
    skipped = max(0, lines - len(raw))
    num = {c: pd.to_numeric(raw[c], errors="coerce") for c in names if c not in ("is_buyer_maker", "is_best_match")}
    side = raw["is_buyer_maker"].str.strip().str.lower().map({"true": True, "false": False})
    bad = side.isna().to_numpy().copy()
    for c in num.values():
        bad |= c.isna().to_numpy()
    if bad.any() and not skip_bad:
        row = int(np.flatnonzero(bad)[0])
        raise HistoryFileError(f"{f.path}, line {row + header + 1}: not a valid {f.kind} row "
                               f"{raw.iloc[row].tolist()!r}; use --skip-bad to skip and count such lines")
    keep = ~bad
    cols = {c: v.to_numpy()[keep].astype(np.float64 if c in _FLOATS else np.int64)
            for c, v in num.items()}
    cols["is_buyer_maker"] = side.to_numpy()[keep].astype(bool)
    return cols, skipped + int(bad.sum())


def _trades(f: HistoryFile, c: dict[str, np.ndarray]) -> pd.DataFrame:
    time_col = c["time" if f.kind == "trades" else "transact_time"].astype(np.int64)
    if len(time_col) and time_col.max() > _US_THRESHOLD:
        time_col = time_col // 1000
    if f.kind == "trades":
        frame = pd.DataFrame({"trade_id": c["id"], "ts": time_col, "price": c["price"], "qty": c["qty"],
                              "is_buyer_maker": c["is_buyer_maker"]})
    else:
        first_id = c["first_trade_id"]
        count = c["last_trade_id"] - first_id + 1
        if (count <= 0).any():
            raise HistoryFileError(f"{f.path}: an aggregate has last_trade_id < first_trade_id "
                                   f"(aggregate {int(c['agg_trade_id'][np.flatnonzero(count <= 0)[0]])})")
        rep = np.repeat(np.arange(len(count)), count)
        offset = np.arange(len(rep)) - np.repeat(np.cumsum(count) - count, count)
        frame = pd.DataFrame({"trade_id": first_id[rep] + offset, "ts": time_col[rep], "price": c["price"][rep],
                              "qty": (c["quantity"] / count)[rep], "is_buyer_maker": c["is_buyer_maker"][rep]})
    return frame.sort_values("trade_id", kind="stable", ignore_index=True)


def to_batch(frame: pd.DataFrame, code: int, kind: str = "trades") -> TickBatch:
    """The trades of a file as a batch of symbol code ``code`` (via ``dump``, or
    ``dump_agg_split`` for an aggTrades file)."""
    n = len(frame)
    return TickBatch.from_columns(sym=np.full(n, code), trade_id=frame["trade_id"].to_numpy(),
                                  ts=frame["ts"].to_numpy(), price=frame["price"].to_numpy(),
                                  qty=frame["qty"].to_numpy(), is_buyer_maker=frame["is_buyer_maker"].to_numpy(),
                                  recv_ts=np.full(n, now_ms()), via="dump" if kind == "trades" else "dump_agg_split")


# ---- download ------------------------------------------------------------------------------

#: URL folder of each market's daily dumps.
MARKETS = {"um": "/data/futures/um/daily", "spot": "/data/spot/daily"}


def daily_names(symbol: str, kind: str, start: dt.date, end: dt.date, market: str = "um") -> list[tuple[str, str]]:
    """(URL path, file name) of each daily dump from ``start`` to ``end`` inclusive; ``market``
    "um" (USD-M futures) or "spot"."""
    if market not in MARKETS:
        raise InvalidParameter(f"market must be one of {', '.join(MARKETS)}, got {market!r}")
    if end < start:
        raise InvalidParameter(f"end {end} is before start {start}")
    if kind not in (*COLUMNS, "bookTicker"):
        raise InvalidParameter(f"kind must be 'trades', 'aggTrades' or 'bookTicker', got {kind!r}")
    if kind == "bookTicker" and (market != "um" or end > BOOK_TICKER_LAST):
        raise InvalidParameter(f"Binance published USD-M bookTicker dumps up to {BOOK_TICKER_LAST} only "
                               f"(asked: {market} to {end}); later quotes exist where they were recorded "
                               "(statarb record --source live --quotes)")
    out = []
    day = start
    while day <= end:
        name = f"{symbol}-{kind}-{day:%Y-%m-%d}.zip"
        out.append((f"{MARKETS[market]}/{kind}/{symbol}/{name}", name))
        day += dt.timedelta(days=1)
    return out


def monthly_funding_names(symbol: str, kind: str, start: dt.date, end: dt.date,
                          market: str = "um") -> list[tuple[str, str]]:
    """(URL path, file name) of each monthly USD-M funding dump whose month overlaps ``start``..``end``
    (Binance publishes funding monthly only)."""
    if market != "um":
        raise InvalidParameter("funding dumps exist for USD-M futures (market 'um') only")
    if end < start:
        raise InvalidParameter(f"end {end} is before start {start}")
    out = []
    y, m = start.year, start.month
    while (y, m) <= (end.year, end.month):
        out.append(funding_dump_name(symbol, y, m))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class DownloadReport:
    downloaded: list[Path]
    skipped: list[Path]  # already present with a matching checksum
    missing: list[str]  # not published (404), e.g. today's file
    corrupt: list[str] = field(default_factory=list)  # what was wrong with each file that failed its checksum


async def download(symbols: list[str], start: dt.date, end: dt.date, dest: str | Path, kind: str = "trades",
                   base_url: str = DATA_URL, progress: bool = True, market: str = "um") -> DownloadReport:
    """Fetch daily dumps (``kind`` trades, aggTrades or bookTicker; or the monthly ``fundingRate``
    dumps) and their ``.CHECKSUM`` files into ``dest``; verify SHA-256; skip files already present
    and verified. A checksum mismatch deletes the file and raises. A range Binance never published
    is refused before ``dest`` is made."""
    names = monthly_funding_names if kind == "fundingRate" else daily_names
    jobs = [(path, name) for s in symbols for path, name in names(normalize_symbol(s), kind, start, end, market)]
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    report = DownloadReport([], [], [])
    async with httpx.AsyncClient(base_url=base_url, timeout=60.0, follow_redirects=True) as http:
        try:
            await fetch_all(http, jobs, dest, report, progress)
        except httpx.HTTPError as exc:
            raise network_error(exc, base_url) from None
    if report.corrupt:
        raise HistoryFileError("; ".join(report.corrupt))
    return report


def network_error(exc: httpx.HTTPError, base_url: str) -> NetworkError:
    """A one-line NetworkError for a failed transfer from the data site."""
    try:
        url = str(exc.request.url)
    except RuntimeError:  # no request attached
        url = base_url
    what = (f"answered HTTP {exc.response.status_code}" if isinstance(exc, httpx.HTTPStatusError)
            else f"could not be reached ({type(exc).__name__}{f': {exc}' if str(exc) else ''})")
    return NetworkError(f"{url} {what}; nothing partial was kept. Check the network, or give a mirror "
                        "of the data site with --base-url")


async def fetch_all(http: httpx.AsyncClient, jobs: list[tuple[str, str]], dest: Path, report: DownloadReport,
                    progress: bool) -> None:
    """Fetch and verify each (url path, file name) of ``jobs`` into ``dest``, filling ``report``:
    a file already present with the published checksum is not fetched again; a file that fails
    its checksum is deleted and named in ``report.corrupt`` (the others go on)."""
    for path, name in tqdm(jobs, desc="download", unit="file", disable=not progress):
        target = dest / name
        r = await http.get(path + ".CHECKSUM")
        if r.status_code == 404:
            report.missing.append(name)
            continue
        r.raise_for_status()
        expected = r.text.split()[0].lower()
        if target.exists() and sha256_of(target) == expected:
            report.skipped.append(target)
            continue
        part = target.with_suffix(".part")
        async with http.stream("GET", path) as resp:
            if resp.status_code == 404:
                report.missing.append(name)
                continue
            resp.raise_for_status()
            try:
                with open(part, "wb") as fh:
                    async for chunk in resp.aiter_bytes():
                        fh.write(chunk)
            except BaseException:  # a broken transfer leaves no partial file behind
                part.unlink(missing_ok=True)
                raise
        got = await asyncio.to_thread(sha256_of, part)
        if got != expected:
            part.unlink()
            report.corrupt.append(f"{name}: SHA-256 {got} does not match the published {expected}; "
                                  "the file was deleted, download it again")
            continue
        part.replace(target)
        report.downloaded.append(target)
