"""A watchlist: live views of many pairs of one session, their state as a table, their events.

Pairs come from a list (``"BTCUSDT/ETHUSDT, SOLUSDT/AVAXUSDT"``), a file (one pair a line, ``X/Y``
or ``X,Y``, or a CSV with columns x and y) or a scan's rows (the ``selected`` ones).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .alerts import Alert
from .analytics.stationarity import half_life_rows
from .paper import PaperBook, PaperDesk
from .errors import InvalidParameter
from .pair import PairView
from .rule import DEFAULT, Rule
from .api import SessionAPI
from .ticks import normalize_symbol, now_ms
from .view_options import ViewOptions

#: Columns of ``Watchlist.table()``.
TABLE_COLUMNS = ("pair", "x", "y", "z", "abs_z", "corr", "beta", "half_life_bars", "rows", "warm", "last_event",
                 "last_event_ms", "since_s", "time_ms", "paper", "paper_pnl")


def parse_pairs(spec: str | list | pd.DataFrame) -> list[tuple[str, str]]:
    """Pairs from ``"X/Y, A/B"`` (or ``X,Y`` per line), a list of such strings or tuples, or scan
    rows (columns x, y; only ``selected`` rows when that column exists). Duplicates dropped."""
    if isinstance(spec, pd.DataFrame):
        rows = spec[spec["selected"]] if "selected" in spec else spec
        items = list(zip(rows["x"], rows["y"]))
    elif isinstance(spec, str):
        items = [re.split(r"[/,]", part) for part in re.split(r"[\s;]+|,(?=[^,/]*/)", spec.strip()) if part]
    else:
        items = [re.split(r"[/,]", p) if isinstance(p, str) else p for p in spec]
    pairs: list[tuple[str, str]] = []
    for item in items:
        if len(item) != 2:
            raise InvalidParameter(f"a watchlist pair is X/Y, got {item!r}")
        x, y = normalize_symbol(str(item[0])), normalize_symbol(str(item[1]))
        if x == y:
            raise InvalidParameter(f"a pair needs two different symbols, got {x}/{y}")
        if (x, y) not in pairs:
            pairs.append((x, y))
    if not pairs:
        raise InvalidParameter("the watchlist names no pair")
    return pairs


def read_watchlist(path: str | Path) -> list[tuple[str, str]]:
    """Pairs of a watchlist file: a CSV with columns x and y (a scan's output), else one X/Y a line."""
    path = Path(path)
    if not path.is_file():
        raise InvalidParameter(f"watchlist file {path} does not exist")
    text = path.read_text()
    first = text.lstrip().split("\n", 1)[0].lower().replace(" ", "")
    if first.startswith("x,y") or ",x," in f",{first}," and ",y," in f",{first},":
        return parse_pairs(pd.read_csv(path))
    lines = [ln.split("#")[0].strip() for ln in text.splitlines()]
    return parse_pairs([ln for ln in lines if ln])


class Watchlist:
    """Live views of ``pairs`` on ``timeframe`` of ``session`` (which must record their symbols),
    one rule and view options for all (None: the defaults); the last event of each pair."""

    def __init__(self, session: SessionAPI, pairs: list[tuple[str, str]], timeframe: str = "1s",
                 rule: Rule | None = None, options: ViewOptions | None = None) -> None:
        missing = sorted({s for p in pairs for s in p} - set(session.symbols))
        if missing:
            raise InvalidParameter(f"the session does not record {', '.join(missing)}")
        self.session, self.timeframe = session, timeframe
        self.rule, self.options = rule or DEFAULT, options or ViewOptions()
        self.params = self.options.params(self.rule)  # the analytics of every view
        self.views: list[PairView] = [session.pair(x, y, timeframe, self.rule, self.options)
                                      for x, y in pairs]
        self._index = {v.name: i for i, v in enumerate(self.views)}
        self.last_event: list[Alert | None] = [None] * len(self.views)
        self._unsubscribe = session.subscribe_events(self._on_event)
        self.desk: PaperDesk | None = None
        self.books: list[PaperBook | None] = [None] * len(self.views)

    async def trade_on_paper(self, **trading: object) -> None:
        """Follow every pair's rule on paper (``trading``: z_exit, costs, ... see PaperDesk.follow),
        stored in the session's file; books stored for the same rules are continued."""
        self.desk = self.desk or PaperDesk(self.session)
        for i, v in enumerate(self.views):
            if self.books[i] is None:
                self.books[i] = await self.desk.follow(v, **trading)

    def view(self, pair: str) -> PairView:
        """The live view of ``pair`` ("X/Y"); InvalidParameter if the watchlist has no such pair."""
        if pair not in self._index:
            raise InvalidParameter(f"{pair} is not a pair of this watchlist")
        return self.views[self._index[pair]]

    def __len__(self) -> int:
        return len(self.views)

    def _on_event(self, event: Alert) -> None:
        i = self._index.get(event.pair)
        if i is not None and event.timeframe == self.timeframe:
            self.last_event[i] = event

    def table(self, clock_ms: int | None = None) -> pd.DataFrame:
        """One row per pair (see TABLE_COLUMNS): the newest z, |z|, corr, beta; the spread's AR(1)
        half-life over the last ``hedge_window`` rows; rows added and whether warm (a z exists);
        the last event (direction) and seconds since it; the newest row's bar time (ms UTC, -1: none);
        paper trading's position (LONG_SPREAD, SHORT_SPREAD, FLAT; "" when not trading) and its PnL
        (realised plus open, on capital 1 per trade; NaN when not trading). Pairs in watchlist order."""
        clock_ms = now_ms() if clock_ms is None else clock_ms
        w = self.params.hedge_window
        k = len(self.views)
        z, corr, beta = np.full(k, np.nan), np.full(k, np.nan), np.full(k, np.nan)
        spreads = np.full((k, w), np.nan)
        rows = np.zeros(k, dtype=np.int64)
        newest = np.full(k, -1, dtype=np.int64)
        for i, v in enumerate(self.views):
            n = len(v)
            rows[i] = v.rows_added  # a monitor's mirror holds a few of the rows its view added
            if n:
                newest[i] = v.tail("time", 1)[0]
                z[i], corr[i], beta[i] = v.tail("z", 1)[0], v.tail("corr", 1)[0], v.tail("beta", 1)[0]
                tail = v.tail("spread", w)
                spreads[i, w - len(tail):] = tail
        hl = half_life_rows(spreads)
        positions = [b.position() if b is not None else None for b in self.books]
        last = [e.direction if e else "" for e in self.last_event]
        last_ms = np.array([e.time_ms if e else -1 for e in self.last_event], dtype=np.int64)
        since = np.where(last_ms >= 0, (clock_ms - last_ms) / 1000.0, np.nan)
        return pd.DataFrame({
            "pair": [v.name for v in self.views], "x": [v.symbols[0] for v in self.views],
            "y": [v.symbols[1] for v in self.views], "z": z, "abs_z": np.abs(z), "corr": corr, "beta": beta,
            "half_life_bars": hl, "rows": rows, "warm": rows >= self.params.rows_for_z, "last_event": last,
            "last_event_ms": last_ms, "since_s": since, "time_ms": newest,
            "paper": [p.direction if p else "" for p in positions],
            "paper_pnl": [p.realised_pnl + p.open_pnl if p else np.nan for p in positions],
        }, columns=list(TABLE_COLUMNS))

    def close(self) -> None:
        if self.desk is not None:
            self.desk.stop()
        self._unsubscribe()
        for v in self.views:
            v.close()
