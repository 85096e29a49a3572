"""The trade sequencer without a socket: ids in, duplicates out, gaps recorded and filled by late
trades, checked against a from-scratch set computation on random arrival orders."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from statarb_kit.exchange.binance.sequencer import Gap, TradeSequencer
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


def test_a_gap_knows_the_trades_beside_its_edges_that_share_their_time():
    """Trades at a gap's edge times are kept with their sizes (an aggregate's trades share a time):
    the lower side from the trades passed before, the upper side as they arrive; a late trade too."""
    seq = TradeSequencer(1)
    n = 7
    ids = np.array([10, 11, 12, 17, 18, 19, 20])
    ts = np.array([1, 5, 5, 9, 9, 9, 12])  # 11, 12 share the lower edge's time; 17..19 the upper's
    b = TickBatch.from_columns(sym=np.zeros(n), trade_id=ids, ts=ts, price=np.ones(n), qty=ids / 10,
                               is_buyer_maker=np.zeros(n, bool))
    seq.accept(b.take(np.arange(n) < 3))  # 10..12 first: 12 is the newest, 11 shares its time
    assert seq[0].edge == {11: 1.1, 12: 1.2}
    seq.accept(b.take(np.arange(n) >= 3))
    (gap,) = seq.gaps
    assert (gap.lo, gap.hi, gap.lo_ts, gap.hi_ts) == (13, 16, 5, 9)
    assert gap.known == {11: 1.1, 12: 1.2, 17: 1.7, 18: 1.8, 19: 1.9}
    late = TickBatch.from_columns(sym=[0], trade_id=[14], ts=[7], price=[1.0], qty=[0.25], is_buyer_maker=[False])
    seq.accept(late)
    assert sorted((g.lo, g.hi) for g in seq.gaps) == [(13, 13), (15, 16)]
    assert all(g.known[14] == 0.25 and g.known[17] == 1.7 for g in seq.gaps)


def test_an_aggregate_split_keeps_its_known_trades_and_its_total():
    """By hand: aggregate 100..104 of 9.5 with 100 (2.0) and 104 (1.5) known beside the gap
    101..103: each missing trade gets (9.5 - 3.5) / 3 = 2; a lone missing trade gets its exact rest."""
    from statarb_kit.exchange.binance.frames import expand_agg_trades

    rows = [{"a": 1, "p": "5.0", "q": "9.5", "f": 100, "l": 104, "T": 7, "m": True},
            {"a": 2, "p": "5.1", "q": "3.0", "f": 105, "l": 106, "T": 8, "m": False}]
    batch, averaged = expand_agg_trades(rows, 0, 101, 103, 0, {100: 2.0, 104: 1.5})
    assert batch.trade_id.tolist() == [101, 102, 103] and batch.qty.tolist() == [2.0, 2.0, 2.0] and averaged == 1
    lone, averaged = expand_agg_trades(rows, 0, 105, 105, 0, {106: 0.5})
    assert lone.qty.tolist() == [2.5] and averaged == 0
    plain, averaged = expand_agg_trades(rows, 0, 101, 103, 0)
    assert plain.qty.tolist() == [1.9, 1.9, 1.9] and averaged == 1  # nothing known: q / n each
