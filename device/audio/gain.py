"""Sample-accurate gain envelope: linear ramps applied block by block, no I/O.

A ramp of N samples from g0 to g1 gives sample i (1-based inside the ramp) the gain
g0 + (g1 - g0) * i / N, so the last ramp sample is exactly g1 whatever the block
boundaries are. With full-scale audio the largest sample-to-sample step a ramp can
add is |g1 - g0| / N, e.g. 1/1280 for an 80 ms fade at 16 kHz: no click.
"""

from __future__ import annotations

import numpy as np


def db_to_gain(db: float) -> float:
    """Amplitude gain for a level change in decibels."""
    return float(10.0 ** (db / 20.0))


def gain_to_db(gain: float) -> float:
    """Level change in decibels for an amplitude gain (-inf for 0)."""
    return float(20.0 * np.log10(gain)) if gain > 0 else float("-inf")


class GainEnvelope:
    """A gain that follows linear ramps, applied in place to float blocks."""

    def __init__(self, max_block: int, gain: float = 1.0) -> None:
        self.gain = gain  # gain of the last sample processed
        self._target = gain
        self._step = 0.0
        self._remaining = 0  # samples left in the current ramp
        # Preallocated so apply() allocates nothing in the audio callback.
        self._index = np.arange(1, max_block + 1, dtype=np.float64)
        self._ramp = np.empty(max_block, dtype=np.float64)

    @property
    def target(self) -> float:
        """Gain the envelope is heading to (equal to `gain` when at rest)."""
        return self._target

    @property
    def ramp_samples_left(self) -> int:
        """Samples until the current ramp ends (0 when at rest)."""
        return self._remaining

    def ramp_to(self, target: float, samples: int) -> None:
        """Start a ramp from the current gain to `target` over `samples` samples."""
        if target < 0:
            raise ValueError(f"gain must be >= 0, got {target}")
        if samples <= 0:
            self.set(target)
            return
        self._target = target
        self._remaining = samples
        self._step = (target - self.gain) / samples

    def set(self, gain: float) -> None:
        """Jump to `gain` at once (use only where the output is silent)."""
        self.gain = self._target = gain
        self._step = 0.0
        self._remaining = 0

    def gains(self, count: int) -> np.ndarray:
        """The gains of the next `count` samples (a view into a preallocated buffer), advancing."""
        out = self._ramp[:count]
        ramp_len = min(count, self._remaining)
        if ramp_len:
            ramp = out[:ramp_len]
            np.multiply(self._index[:ramp_len], self._step, out=ramp)
            ramp += self.gain
            self._remaining -= ramp_len
            if self._remaining == 0:
                ramp[-1] = self._target  # land exactly, whatever the float error
            self.gain = float(ramp[-1])
        out[ramp_len:] = self.gain
        return out

    def apply(self, block: np.ndarray) -> None:
        """Multiply `block` in place by the envelope and advance it."""
        block *= self.gains(len(block))
