"""Ring buffer and sample history: wraparound, overrun, exact contents."""

import numpy as np
import pytest

from device.audio.ringbuffer import RingBuffer, SampleHistory


def test_wraparound_keeps_order():
    ring = RingBuffer(8)
    out = np.empty(8, dtype=np.float32)
    stream = np.arange(100, dtype=np.float32)
    got = []
    pos = 0
    for size in [3, 5, 2, 7, 1, 6, 4, 8, 3]:  # sizes that land on every offset of the ring
        assert ring.write(stream[pos : pos + size]) == size
        pos += size
        n = ring.read_into(out)
        got.extend(out[:n])
    assert got == list(stream[:pos])
    assert ring.overruns == 0 and ring.available == 0


def test_overrun_drops_newest_and_counts():
    ring = RingBuffer(8)
    assert ring.write(np.arange(6, dtype=np.float32)) == 6
    assert ring.write(np.arange(6, 11, dtype=np.float32)) == 2  # only 2 fit
    assert ring.overruns == 1 and ring.dropped_samples == 3
    assert list(ring.read(100)) == [0, 1, 2, 3, 4, 5, 6, 7]  # the oldest survive, in order
    assert ring.write(np.arange(3, dtype=np.float32)) == 3  # room again after reading


def test_read_partial_and_skip():
    ring = RingBuffer(5)
    ring.write(np.arange(5, dtype=np.float32))
    assert list(ring.read(2)) == [0, 1]
    assert ring.skip(2) == 2
    assert list(ring.read(10)) == [4]
    assert ring.skip(3) == 0
    assert ring.total_read == 5


def test_rejects_empty_capacity():
    with pytest.raises(ValueError):
        RingBuffer(0)


def test_history_window_across_wrap():
    hist = SampleHistory(10)
    hist.append(np.arange(7, dtype=np.float32))
    hist.append(np.arange(7, 15, dtype=np.float32))
    assert hist.end == 15
    assert list(hist.window(11, 4)) == [11, 12, 13, 14]
    assert list(hist.window(3, 4)) == [0, 0, 5, 6]  # older samples are gone: zeros
    assert list(hist.window(13, 4)) == [13, 14, 0, 0]  # not there yet: zeros
    assert list(hist.window(-2, 3)) == [0, 0, 0]


def test_history_append_longer_than_capacity():
    hist = SampleHistory(4)
    hist.append(np.arange(10, dtype=np.float32))
    assert hist.end == 10
    assert list(hist.window(6, 4)) == [6, 7, 8, 9]
