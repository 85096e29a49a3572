"""Replay Binance history dumps through the pipeline, as fast as possible or N times real time."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..errors import InvalidParameter
from ..quotes import QUOTE_FIELDS, HeldQuotes, QuoteBatch, read_book_ticker_dump
from ..ticks import TickBatch
from .base import SourceBase, SourceState, SourceStatus
from ..exchange.binance.history import HistoryFile, dump_files, read_history, to_batch


class Replay(SourceBase):
    """Source of the trades in dump files (``SYMBOL-trades-DATE.zip``, ``...-aggTrades-...``,
    zipped or not), and of the quotes of ``...-bookTicker-...`` files (``take_quotes``: each quote
    is handed over before the first trade after it). Files of the same date are merged by time
    across symbols; dates play in order. ``speed`` None plays as fast as the pipeline takes it, N plays N times real time.
    ``skip_bad`` skips and counts corrupt lines (``status.malformed``) instead of stopping at
    the first with an error naming file and line.
    """

    realtime = False

    def __init__(self, files: list[str | Path] | list[HistoryFile], speed: float | None = None,
                 skip_bad: bool = False, batch_rows: int = 100_000, progress: bool = True) -> None:
        if not files:
            raise InvalidParameter("replay needs at least one file")
        if speed is not None and speed <= 0:
            raise InvalidParameter(f"speed must be > 0 (times real time) or None, got {speed}")
        named = dump_files([f for f in files if not isinstance(f, HistoryFile)])  # each one exists
        self.files = [f if isinstance(f, HistoryFile) else named.pop(0) for f in files]
        self.symbols = tuple(dict.fromkeys(f.symbol for f in self.files))
        self.speed, self.skip_bad, self.batch_rows, self.progress = speed, skip_bad, batch_rows, progress
        self.status = SourceStatus(name="replay")
        self._quotes = HeldQuotes()

    def take_quotes(self) -> QuoteBatch | None:
        """The bookTicker files' quotes up to the trades played so far (None: none)."""
        return self._quotes.take()

    def _slices(self, day: TickBatch) -> list[tuple[int, int]]:
        """Row ranges to yield: ``batch_rows`` at a time, or 100 ms of wall time when paced."""
        n = len(day)
        if self.speed is None or not n:
            return [(lo, min(lo + self.batch_rows, n)) for lo in range(0, n, self.batch_rows)]
        step = max(1, int(100 * self.speed))  # ms of market time per 100 ms of wall time
        edges = np.searchsorted(day.ts, np.arange(int(day.ts[0]), int(day.ts[-1]) + step, step), side="left")
        edges = np.unique(np.concatenate((edges, [n])))
        return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]

    async def stream(self) -> AsyncIterator[TickBatch]:
        by_date: dict[str, list[HistoryFile]] = defaultdict(list)
        for f in self.files:
            by_date[f.date].append(f)
        code = {s: i for i, s in enumerate(self.symbols)}
        self.status.state = SourceState.STREAMING
        bar = tqdm(total=len(self.files), desc="replay", unit="file", disable=not self.progress)
        t_first: int | None = None
        wall_first = time.monotonic()
        try:
            for date in sorted(by_date):
                parts, quotes = [], []
                for f in by_date[date]:
                    if f.kind == "bookTicker":
                        q = await asyncio.to_thread(read_book_ticker_dump, f.path, f.symbol)
                        self.status.malformed += q.malformed
                        quotes.append(QuoteBatch(np.full(len(q), code[f.symbol], dtype=np.int64), q.time_ms,
                                                 q.update_id, q.bid, q.bid_qty, q.ask, q.ask_qty))
                    else:
                        result = await asyncio.to_thread(read_history, f, self.skip_bad)
                        self.status.malformed += result.skipped
                        parts.append(to_batch(result.frame, code[f.symbol], f.kind))
                    bar.update(1)
                book = QuoteBatch.concat(quotes) if quotes else None
                if book is not None:
                    order = np.lexsort((book.update_id, book.time_ms))
                    book = QuoteBatch(*(getattr(book, c)[order] for c in QUOTE_FIELDS))
                released = 0
                day = TickBatch.concat(parts) if parts else TickBatch.empty()
                day = day.take(np.lexsort((day.trade_id, day.sym, day.ts)))  # merged by time
                for lo, hi in self._slices(day):
                    batch = day.take(slice(lo, hi))  # views: the ring copies the rows in
                    if self.speed is not None:
                        t_first = int(batch.ts[0]) if t_first is None else t_first
                        due = wall_first + (int(batch.ts[-1]) - t_first) / 1000 / self.speed
                        await asyncio.sleep(max(0.0, due - time.monotonic()))
                    if book is not None:  # the quotes up to this batch's last trade, before it
                        upto = int(np.searchsorted(book.time_ms, int(batch.ts[-1]), side="right"))
                        self._quotes.hold(QuoteBatch(*(getattr(book, c)[released:upto] for c in QUOTE_FIELDS)))
                        released = max(released, upto)
                    self.status.record(batch)
                    yield batch
                if book is not None and released < len(book):
                    self._quotes.hold(QuoteBatch(*(getattr(book, c)[released:] for c in QUOTE_FIELDS)))
        finally:
            bar.close()
            self.status.state = SourceState.FINISHED
