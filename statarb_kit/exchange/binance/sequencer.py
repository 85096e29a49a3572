"""Trade ids in order, per symbol: duplicates dropped, gaps recorded, late trades filling them.

Pure bookkeeping over TickBatches (no socket, no REST, no clock but the ``seen_at`` a caller
passes): Binance numbers each symbol's trades consecutively, so an id more than one past the last
one passed opens a gap, an id at or below it is either a late trade of a gap (kept, the gap
shrinks) or a duplicate (dropped). The live client asks REST for the gaps and reconnects; this
module only says what is missing and what was seen twice.

Each gap also keeps the exact quantities of the trades received beside it that share a time with
its edges (``Gap.known``): an aggregate's trades share their time, so these are the known trades of
an aggregate the gap's edge cuts, and a fill from aggregates spreads only the rest of its quantity.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ...ticks import TickBatch


@dataclass
class Gap:
    """Missing trade ids [lo, hi] of one symbol, between two seen trades' times (ms); ``known``:
    trade id -> exact quantity of the trades received at ``lo_ts`` before it and at ``hi_ts``
    after it, and of late trades that split it."""

    code: int
    lo: int
    hi: int
    lo_ts: int
    hi_ts: int
    seen_at: float = field(default_factory=time.monotonic)
    next_try: float = 0.0
    known: dict[int, float] = field(default_factory=dict, compare=False, repr=False)


@dataclass
class SymbolSequence:
    """Where one symbol's ids stand: the newest id passed on and its time (None: none yet), the
    first trade the stream delivered (id, time; None: none yet), and ``edge``: id -> quantity of
    the trades passed on at ``last_ts`` (the part of the newest aggregate already received)."""

    last_id: int | None = None
    last_ts: int = 0
    first: tuple[int, int] | None = None
    edge: dict[int, float] = field(default_factory=dict)


class TradeSequencer:
    """The sequences of ``n`` symbols (codes 0..n-1); ``resume`` maps a code to the (id, time) of
    its last stored trade, from which its sequence continues."""

    def __init__(self, n: int, resume: dict[int, tuple[int, int]] | None = None) -> None:
        self.symbols = [SymbolSequence() for _ in range(n)]
        for code, (tid, ts) in (resume or {}).items():
            self.symbols[code].last_id, self.symbols[code].last_ts = int(tid), int(ts)
        self.gaps: list[Gap] = []
        self.duplicates = 0

    def __getitem__(self, code: int) -> SymbolSequence:
        return self.symbols[code]

    def accept(self, batch: TickBatch) -> tuple[TickBatch, list[int]]:
        """The trades of ``batch`` not seen before (duplicates dropped and counted), new gaps
        recorded, late trades taken off their gap; and the codes whose first streamed trade this
        batch holds (a backlog batch is history, not the stream)."""
        keep = np.ones(len(batch), dtype=bool)
        started: list[int] = []
        for code in np.unique(batch.sym).tolist():
            s = self.symbols[code]
            rows = np.flatnonzero(batch.sym == code)
            order = rows[np.argsort(batch.trade_id[rows], kind="stable")]
            ids, ts, qty = batch.trade_id[order], batch.ts[order], batch.qty[order]
            first = np.ones(len(ids), dtype=bool)
            first[1:] = ids[1:] != ids[:-1]
            keep[order[~first]] = False
            if s.first is None and not batch.backlog:
                s.first = (int(ids[0]), int(ts[0]))
                started.append(code)
            last = s.last_id
            if last is None:  # the very first trade of a symbol starts its sequence
                last, s.last_ts = int(ids[0]) - 1, int(ts[0])
            for i in np.flatnonzero(first & (ids <= last)):
                if not self.fill(code, int(ids[i]), float(qty[i])):
                    keep[order[i]] = False  # seen before: a duplicate
            new = first & (ids > last)
            if new.any():  # a gap before each new id more than one past the one before it
                nid, nts = ids[new], ts[new]
                prev_id = np.concatenate(([last], nid[:-1]))
                prev_ts = np.concatenate(([s.last_ts], nts[:-1]))
                for j in np.flatnonzero(nid > prev_id + 1).tolist():
                    gap = Gap(code, int(prev_id[j]) + 1, int(nid[j]) - 1, int(prev_ts[j]), int(nts[j]))
                    if gap.lo_ts == s.last_ts:
                        gap.known.update(s.edge)
                    self.gaps.append(gap)
                edge = s.edge if int(nts[-1]) == s.last_ts else {}
                s.last_id, s.last_ts = int(nid[-1]), int(nts[-1])
                at_last = new & (ts == s.last_ts)
                s.edge = {**edge, **dict(zip(ids[at_last].tolist(), qty[at_last].tolist()))}
            else:
                s.last_id = last
            self._note_edges(code, ids[first & keep[order]], ts[first & keep[order]], qty[first & keep[order]])
        self.duplicates += int((~keep).sum())
        return (batch.take(keep) if not keep.all() else batch), started

    def _note_edges(self, code: int, ids: np.ndarray, ts: np.ndarray, qty: np.ndarray) -> None:
        """Keep the quantities of the passed-on trades that share a time with an edge of one of
        ``code``'s gaps, on that gap's side of it."""
        for g in self.gaps:
            if g.code != code:
                continue
            beside = ((ts == g.lo_ts) & (ids < g.lo)) | ((ts == g.hi_ts) & (ids > g.hi))
            if beside.any():
                g.known.update(zip(ids[beside].tolist(), qty[beside].tolist()))

    def fill(self, code: int, tid: int, qty: float = float("nan")) -> bool:
        """A late trade: True (and its gap shrinks or splits, each part knowing the trade's
        quantity ``qty``) if ``tid`` was missing."""
        for g in self.gaps:
            if g.code == code and g.lo <= tid <= g.hi:
                self.gaps.remove(g)
                known = {**g.known, tid: qty}
                if g.lo < tid:
                    self.gaps.append(Gap(g.code, g.lo, tid - 1, g.lo_ts, g.hi_ts, g.seen_at, g.next_try, dict(known)))
                if tid < g.hi:
                    self.gaps.append(Gap(g.code, tid + 1, g.hi, g.lo_ts, g.hi_ts, g.seen_at, g.next_try, dict(known)))
                return True
        return False
