"""Preallocated sample ring buffers: a lock-free SPSC queue and a loop-owned history.

`RingBuffer` sits between an audio callback thread (the only writer) and the event
loop (the only reader). Each side owns one counter and only reads the other's, so
no lock is needed: under CPython an int attribute store is atomic, and the writer
publishes its counter only after the samples are in place.
"""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """Single-producer/single-consumer ring of samples with overrun counting.

    When the reader falls behind, the writer drops what does not fit (the newest
    samples) and counts it; it never touches the reader's counter.
    """

    def __init__(self, capacity: int, dtype: np.dtype | type = np.float32) -> None:
        if capacity <= 0:
            raise ValueError(f"ring capacity must be positive, got {capacity}")
        self.capacity = capacity
        self._buffer = np.zeros(capacity, dtype=dtype)
        self._written = 0  # total samples ever written; only the writer stores it
        self._read = 0  # total samples ever read; only the reader stores it
        self.overruns = 0  # writes that did not fit whole
        self.dropped_samples = 0  # samples lost to overruns

    # -- writer side (audio callback) -------------------------------------------------

    def write(self, samples: np.ndarray) -> int:
        """Copy `samples` in; returns how many fit. Allocates nothing."""
        free = self.capacity - (self._written - self._read)
        count = len(samples)
        if count > free:
            self.overruns += 1
            self.dropped_samples += count - free
            count = free
        if count == 0:
            return 0
        start = self._written % self.capacity
        first = min(count, self.capacity - start)
        self._buffer[start : start + first] = samples[:first]
        if count > first:
            self._buffer[: count - first] = samples[first:count]
        self._written += count  # publish after the copy
        return count

    # -- reader side (event loop) -----------------------------------------------------

    @property
    def available(self) -> int:
        """Samples written and not yet read."""
        return self._written - self._read

    @property
    def total_read(self) -> int:
        """Samples the reader has consumed since creation."""
        return self._read

    def read_into(self, out: np.ndarray) -> int:
        """Fill `out` with the oldest unread samples; returns how many were copied."""
        count = min(len(out), self.available)
        if count == 0:
            return 0
        start = self._read % self.capacity
        first = min(count, self.capacity - start)
        out[:first] = self._buffer[start : start + first]
        if count > first:
            out[first:count] = self._buffer[: count - first]
        self._read += count
        return count

    def read(self, count: int) -> np.ndarray:
        """Return a new array with up to `count` of the oldest unread samples."""
        out = np.empty(min(count, self.available), dtype=self._buffer.dtype)
        self.read_into(out)
        return out

    def skip(self, count: int) -> int:
        """Drop up to `count` unread samples; returns how many were dropped."""
        count = min(count, self.available)
        self._read += count
        return count


class SampleHistory:
    """The most recent `capacity` samples of a stream, addressed by absolute position.

    Owned by one thread (the event loop). The frontend keeps the 16 kHz mic and
    reference streams in these, and the listening stack the echo-cancelled mic, which
    is where the pre-roll comes from.
    """

    def __init__(self, capacity: int, dtype: np.dtype | type = np.float32) -> None:
        if capacity <= 0:
            raise ValueError(f"history capacity must be positive, got {capacity}")
        self.capacity = capacity
        self._buffer = np.zeros(capacity, dtype=dtype)
        self.end = 0  # absolute position just past the newest sample

    def append(self, samples: np.ndarray) -> None:
        """Add samples at the end, overwriting the oldest."""
        skipped = max(0, len(samples) - self.capacity)
        self.end += skipped
        samples = samples[skipped:]
        count = len(samples)
        start = self.end % self.capacity
        first = min(count, self.capacity - start)
        self._buffer[start : start + first] = samples[:first]
        if count > first:
            self._buffer[: count - first] = samples[first:]
        self.end += count

    def window(self, start: int, count: int) -> np.ndarray:
        """Samples [start, start + count); zeros where nothing is (or no longer) kept."""
        out = np.zeros(count, dtype=self._buffer.dtype)
        lo = max(start, self.end - self.capacity, 0)
        hi = min(start + count, self.end)
        if hi > lo:
            first = lo % self.capacity
            n = hi - lo
            head = min(n, self.capacity - first)
            out[lo - start : lo - start + head] = self._buffer[first : first + head]
            if n > head:
                out[lo - start + head : hi - start] = self._buffer[: n - head]
        return out
