"""Echo cancellation in front of the listening stack, and the delay tracking it needs.

The device hears its own voice louder than the user. A linear echo canceller subtracts
its estimate of that echo from the mic, given the reference (what went to the DAC). It
works only if the reference is aligned with the echo within its filter's reach, so a
delay estimator (GCC-PHAT over ~1 s of mic and reference) finds the output-to-mic
delay, tracks it, and the reference is shifted by it before the canceller.

Engine: Speex (libspeexdsp through the PyPI package speexdsp-aec; Debian/Raspberry Pi
OS package libspeexdsp1), chosen by measurement (bench/aec_compare.py): it removes
~14 dB of echo and, of the cancellers measured, damages the user's words least in
double talk. `aec.engine = "none"` for mic arrays that cancel echo on board.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

from ..audio.ringbuffer import SampleHistory
from ..audio.wav import to_pcm16
from ..config import AecConfig
from ..errors import ModelError
from .vad import SAMPLE_RATE_HZ

_LOGGER = logging.getLogger(__name__)
PLAYING_RMS = 1e-3  # a reference frame above this RMS (-60 dBFS) means the device is playing


class EchoCanceller(Protocol):
    """Removes the echo of `ref` from `mic` (aligned 16 kHz float frames)."""

    name: str

    def process(self, mic: np.ndarray, ref: np.ndarray) -> np.ndarray: ...


class SpeexCanceller:
    """Speex's multi-delay block frequency-domain adaptive filter."""

    def __init__(self, frame_samples: int = 256, filter_ms: float = 200.0) -> None:
        try:
            from speexdsp_aec import SpeexAec
        except ImportError:
            raise ModelError("aec_missing", "aec.engine = speex needs the package speexdsp-aec "
                             "(./setup.sh installs it)") from None
        try:
            self._aec = SpeexAec(SAMPLE_RATE_HZ, frame_ms=frame_samples * 1000 // SAMPLE_RATE_HZ,
                                 filter_tail_ms=int(filter_ms))
        except RuntimeError as err:
            raise ModelError("aec_missing", f"{err} (apt install libspeexdsp1)") from None
        self.name = f"speex ({filter_ms:.0f} ms filter)"

    def process(self, mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """The mic with the echo removed, same length (frames are multiples of 256 samples)."""
        out = self._aec.process(to_pcm16(mic), to_pcm16(ref))
        return np.frombuffer(out, dtype=np.int16).astype(np.float32) / 32768.0


class NoCanceller:
    """For mic arrays that cancel echo themselves."""

    name = "none"

    def process(self, mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """The mic as it is."""
        return mic


def load_canceller(config: AecConfig) -> EchoCanceller:
    """The configured echo canceller."""
    if config.engine == "none":
        return NoCanceller()
    return SpeexCanceller(filter_ms=config.filter_ms)


class DelayEstimator:
    """Output-to-mic delay by GCC-PHAT over the last second, re-estimated every second.

    An estimate counts only when the correlation peak stands well out of the rest (the
    device is talking and the echo dominates); it then moves the tracked delay, which
    changes only when two estimates in a row agree, so a person talking over the device
    does not drag it around.
    """

    def __init__(self, max_delay_ms: float = 250.0, window_s: float = 1.024, every_s: float = 1.024,
                 min_peak_ratio: float = 6.0) -> None:
        self._n = int(window_s * SAMPLE_RATE_HZ)
        self._every = int(every_s * SAMPLE_RATE_HZ)
        self._max_lag = int(max_delay_ms * SAMPLE_RATE_HZ / 1000)
        self._min_ratio = min_peak_ratio
        self._mic = SampleHistory(self._n)
        self._ref = SampleHistory(self._n)
        self._since = 0
        self._candidate: int | None = None
        self.delay_samples: int | None = None
        self.estimates = 0

    def update(self, mic: np.ndarray, ref: np.ndarray) -> int | None:
        """Feed aligned frames; returns the tracked delay in samples (None until known)."""
        self._mic.append(mic)
        self._ref.append(ref)
        self._since += len(mic)
        if self._since >= self._every:
            self._since = 0
            self._estimate()
        return self.delay_samples

    def _estimate(self) -> None:
        mic = self._mic.window(self._mic.end - self._n, self._n)
        ref = self._ref.window(self._ref.end - self._n, self._n)
        if np.sqrt(np.mean(ref**2)) < PLAYING_RMS:
            return  # nothing played: nothing to measure
        size = 2 * self._n
        spectrum = np.fft.rfft(mic, size) * np.conj(np.fft.rfft(ref, size))
        spectrum /= np.abs(spectrum) + 1e-12
        corr = np.fft.irfft(spectrum, size)[: self._max_lag + 1]  # mic lags the reference
        lag = int(np.argmax(corr))
        ratio = corr[lag] / (np.mean(np.abs(corr)) + 1e-12)
        if ratio < self._min_ratio:
            return
        self.estimates += 1
        if self._candidate is not None and abs(lag - self._candidate) <= 16:
            if self.delay_samples is None or abs(lag - self.delay_samples) > 16:
                _LOGGER.info("Output-to-mic delay: %.1f ms", lag * 1000 / SAMPLE_RATE_HZ)
                self.delay_samples = lag
        self._candidate = lag


class ConvergenceWatch:
    """Whether the canceller may still let through echo that sounds like a person.

    True while it has heard less than `converge_s` of the device's voice since start-up
    (it keeps its filter between answers, so this is once per boot) and the device is
    playing, or stopped less than `tail_s` ago (the room still rings).
    """

    def __init__(self, converge_s: float, tail_s: float = 0.32, frame_s: float = 0.032) -> None:
        self._needed_frames = round(converge_s / frame_s)
        self._tail_frames = round(tail_s / frame_s)
        self._heard_frames = 0
        self._since_playing = self._tail_frames + 1

    def update(self, playing: bool) -> bool:
        """Feed one frame (was the device playing?); returns whether to be cautious."""
        self._since_playing = 0 if playing else self._since_playing + 1
        if playing and self._heard_frames < self._needed_frames:
            self._heard_frames += 1
        return self._heard_frames < self._needed_frames and self._since_playing <= self._tail_frames
