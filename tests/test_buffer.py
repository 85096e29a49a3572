import numpy as np
import pytest

from statarb_kit import InvalidParameter, Tick, TickBatch, TickRing
from tests.conftest import make_ticks


def ids(batch: TickBatch) -> list[int]:
    return batch.trade_id.tolist()


def test_append_and_drain_in_order():
    ring = TickRing(4)
    for i in range(3):
        ring.append(Tick(0, i, 1000 + i, 1.0, 2.0, True))
    assert len(ring) == 3 and ring.free == 1
    out = ring.drain()
    assert ids(out) == [0, 1, 2]
    assert out.is_buyer_maker.all() and (out.qty == 2.0).all()
    assert (ring.appended, ring.drained, ring.overwritten, len(ring)) == (3, 3, 0, 0)


def test_wrap_around_keeps_order_across_the_seam():
    ring = TickRing(5)
    ring.extend(make_ticks(3, first_id=1))
    assert ids(ring.drain(2)) == [1, 2]
    ring.extend(make_ticks(4, first_id=4))  # writes positions 3, 4, 0, 1: wraps
    assert len(ring) == 5
    assert ids(ring.drain()) == [3, 4, 5, 6, 7]
    assert ring.overwritten == 0


def test_overwrite_of_undrained_rows_is_counted():
    ring = TickRing(5)
    ring.extend(make_ticks(4, first_id=1))
    ring.extend(make_ticks(3, first_id=5))  # 7 rows into 5 slots: the 2 oldest are lost
    assert ring.overwritten == 2
    assert ids(ring.drain()) == [3, 4, 5, 6, 7]
    assert ring.appended == 7 and ring.drained == 5


def test_batch_larger_than_capacity_keeps_the_newest():
    ring = TickRing(3)
    ring.extend(make_ticks(10, first_id=1))
    assert ids(ring.drain()) == [8, 9, 10]
    assert ring.overwritten == 7 and ring.appended == 10


def test_partial_drains_and_counters_over_many_wraps():
    ring = TickRing(7)
    expected, got = [], []
    next_id = 0
    rng = np.random.default_rng(1)
    for _ in range(200):
        k = int(rng.integers(0, 5))
        ring.extend(make_ticks(k, first_id=next_id))
        expected.extend(range(next_id, next_id + k))
        next_id += k
        got.extend(ids(ring.drain(int(rng.integers(max(1, k - 1), k + 3)))))
        assert len(ring) <= 3  # never near capacity, so nothing may be overwritten
    got.extend(ids(ring.drain()))
    assert ring.overwritten == 0 and got == expected
    assert ring.appended == ring.drained == next_id


def test_tail_reads_history_without_draining():
    ring = TickRing(4)
    ring.extend(make_ticks(6, first_id=1))
    ring.mark_drained()
    assert ids(ring.tail(2)) == [5, 6]
    assert ids(ring.tail(100)) == [3, 4, 5, 6]
    assert len(ring) == 0 and ring.overwritten == 2


def test_memory_is_preallocated_and_bounded():
    ring = TickRing(1000)
    before = {k: v.ctypes.data for k, v in ring._cols.items()}
    for i in range(50):
        ring.extend(make_ticks(300, first_id=i * 300))
        ring.drain()
    assert {k: v.ctypes.data for k, v in ring._cols.items()} == before
    assert all(len(v) == 1000 for v in ring._cols.values())


@pytest.mark.parametrize("capacity", [0, -1, 2.5])
def test_bad_capacity(capacity):
    with pytest.raises(InvalidParameter):
        TickRing(capacity)


def test_batch_rejects_wrong_dtypes():
    with pytest.raises(InvalidParameter):
        TickBatch(**{**make_ticks(2).columns(), "ts": np.array([1.0, 2.0])})
