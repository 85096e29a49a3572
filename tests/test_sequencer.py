"""The trade sequencer without a socket: ids in, duplicates out, gaps recorded and filled by late
trades, checked against a from-scratch set computation on random arrival orders."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from statarb_kit.sources.sequencer import Gap, TradeSequencer
from statarb_kit.ticks import TickBatch


def batch(sym, ids, backlog: bool = False) -> TickBatch:
    ids = np.asarray(ids, dtype=np.int64)
    n = len(ids)
    return TickBatch.from_columns(sym=np.full(n, sym) if np.isscalar(sym) else sym, trade_id=ids, ts=1_000 + ids,
                                  price=np.ones(n), qty=np.ones(n), is_buyer_maker=np.zeros(n, bool), backlog=backlog)


def missing(seq: TradeSequencer, code: int = 0) -> set[int]:
    return {i for g in seq.gaps if g.code == code for i in range(g.lo, g.hi + 1)}


def test_gaps_duplicates_and_late_trades():
    seq = TradeSequencer(2)
    kept, started = seq.accept(batch(0, [10, 11, 11, 15, 16]))
    assert kept.trade_id.tolist() == [10, 11, 15, 16] and started == [0] and seq.duplicates == 1
    assert seq.gaps == [Gap(0, 12, 14, 1_011, 1_015, seq.gaps[0].seen_at)] and seq[0].last_id == 16
    kept, started = seq.accept(batch(0, [13, 16, 17]))  # a late trade splits the gap; 16 is a duplicate
    assert kept.trade_id.tolist() == [13, 17] and started == [] and seq.duplicates == 2
    assert missing(seq) == {12, 14} and seq[0].last_ts == 1_017
    assert seq[1].last_id is None and seq[1].first is None


def test_a_backlog_is_not_the_stream_and_a_resume_continues():
    seq = TradeSequencer(1, {0: (99, 1_099)})
    kept, started = seq.accept(batch(0, [100, 101], backlog=True))
    assert started == [] and seq[0].first is None and not seq.gaps
    kept, started = seq.accept(batch(0, [105]))
    assert started == [0] and seq[0].first == (105, 1_105) and missing(seq) == {102, 103, 104}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 60), min_size=1, max_size=120), st.integers(1, 12), st.randoms(use_true_random=False))
def test_any_arrival_order_keeps_each_id_once_and_misses_exactly_the_unseen(ids, cut, rng):
    """Whatever the order and batching: each id is kept once, duplicates counted, and the gaps are
    exactly the ids between the first and the newest that never arrived."""
    seq = TradeSequencer(1)
    order = list(ids)
    rng.shuffle(order)
    kept = []
    for lo in range(0, len(order), cut):
        b, _ = seq.accept(batch(0, order[lo : lo + cut]))
        kept += b.trade_id.tolist()
    first_batch = order[:cut]
    base = min(first_batch)  # the sequence starts at the first batch's lowest id
    seen_after = {i for i in order if i >= base}
    assert sorted(kept) == sorted(seen_after) and len(kept) == len(set(kept))
    assert seq.duplicates == len(order) - len(set(order)) + len({i for i in order if i < base})
    assert missing(seq) == set(range(base, max(order) + 1)) - set(order)
