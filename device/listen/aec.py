"""Echo cancellation in front of the listening stack, and the delay tracking it needs.

The device hears its own voice louder than the user. A linear echo canceller subtracts
its estimate of that echo from the mic, given the reference (what went to the DAC). It
works only if the reference is aligned with the echo within its filter's reach, so a
delay estimator (GCC-PHAT over ~1 s of mic and reference) finds the output-to-mic
delay, tracks it, and the reference is shifted by it before the canceller.

Engine: Speex (libspeexdsp, Debian/Raspberry Pi OS package libspeexdsp1, called through
ctypes), chosen by measurement (bench/aec_compare.py): it removes ~14 dB of echo and, of
the cancellers measured, damages the user's words least in double talk.
`aec.engine = "none"` for mic arrays that cancel echo on board.
"""

from __future__ import annotations

import ctypes
import ctypes.util
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


def is_playing(ref: np.ndarray) -> bool:
    """Whether a reference frame (what the speaker plays) carries sound."""
    return bool(np.sqrt(np.mean(ref**2)) > PLAYING_RMS)


class EchoCanceller(Protocol):
    """Removes the echo of `ref` from `mic` (aligned 16 kHz float frames)."""

    name: str

    def process(self, mic: np.ndarray, ref: np.ndarray) -> np.ndarray: ...


_SPEEX_SET_SAMPLING_RATE = 24  # speex_echo.h: SPEEX_ECHO_SET_SAMPLING_RATE
_INT16_P = ctypes.POINTER(ctypes.c_int16)


def _load_speexdsp() -> ctypes.CDLL:
    """libspeexdsp, with the prototypes of the four echo-canceller calls the device uses."""
    for name in (ctypes.util.find_library("speexdsp"), "libspeexdsp.so.1"):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.speex_echo_state_init.restype = ctypes.c_void_p
        lib.speex_echo_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.speex_echo_cancellation.restype = None
        lib.speex_echo_cancellation.argtypes = [ctypes.c_void_p, _INT16_P, _INT16_P, _INT16_P]
        lib.speex_echo_ctl.restype = ctypes.c_int
        lib.speex_echo_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        lib.speex_echo_state_destroy.restype = None
        lib.speex_echo_state_destroy.argtypes = [ctypes.c_void_p]
        return lib
    raise ModelError("aec_missing", "aec.engine = speex needs libspeexdsp: apt install libspeexdsp1 "
                     "(./setup.sh does), or set aec.engine = \"none\" for a mic array that cancels echo itself")


class SpeexCanceller:
    """Speex's multi-delay block frequency-domain adaptive filter (libspeexdsp, 16-bit PCM).

    Called directly through ctypes with buffers allocated once: the frame's samples are
    converted to PCM in place and the library runs on 256-sample blocks of them.
    """

    def __init__(self, frame_samples: int = 256, filter_ms: float = 200.0) -> None:
        self._lib = _load_speexdsp()
        self._block = frame_samples
        self._state = self._lib.speex_echo_state_init(frame_samples, int(SAMPLE_RATE_HZ * filter_ms / 1000))
        if not self._state:
            raise ModelError("aec_failed", f"libspeexdsp could not make a canceller with a {filter_ms:.0f} ms filter")
        rate = ctypes.c_int(SAMPLE_RATE_HZ)
        self._lib.speex_echo_ctl(self._state, _SPEEX_SET_SAMPLING_RATE, ctypes.byref(rate))
        self._buffers: dict[int, tuple[np.ndarray, ...]] = {}
        self.name = f"speex ({filter_ms:.0f} ms filter)"

    def process(self, mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """The mic with the echo removed, same length (a multiple of 256 samples)."""
        n = len(mic)
        if n % self._block or len(ref) != n:
            raise ValueError(f"frames must be equal multiples of {self._block} samples, got {n} and {len(ref)}")
        if n not in self._buffers:
            pcm = np.zeros((3, n), dtype=np.int16)  # mic, reference, output
            step = self._block * pcm.itemsize
            pointers = [[ctypes.cast(row.ctypes.data + k * step, _INT16_P) for k in range(n // self._block)]
                        for row in pcm]
            self._buffers[n] = (pcm, *pointers)
        pcm, mic_p, ref_p, out_p = self._buffers[n]
        pcm[0], pcm[1] = to_pcm16(mic), to_pcm16(ref)
        for k in range(n // self._block):
            self._lib.speex_echo_cancellation(self._state, mic_p[k], ref_p[k], out_p[k])
        return pcm[2] * np.float32(1 / 32768.0)

    def __del__(self) -> None:
        if getattr(self, "_state", None):
            self._lib.speex_echo_state_destroy(self._state)
            self._state = None


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
    """Output-to-mic delay by GCC-PHAT over the last second, re-estimated every half second.

    An estimate counts only when the correlation peak stands well out of the rest (the
    device is talking and the echo dominates); it then moves the tracked delay, which
    changes only when two estimates in a row agree, so a person talking over the device
    does not drag it around.
    """

    def __init__(self, max_delay_ms: float = 250.0, window_s: float = 1.024, every_s: float = 0.512,
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
        if not is_playing(ref):
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
    """Whether the echo may still sound like a person: when the policy asks for more evidence.

    True while the canceller has heard less than `converge_s` of the device's voice since
    start-up (it keeps its filter between answers, so this is once per boot) and the device
    is playing, or stopped less than `tail_s` ago (the room still rings). True again for
    `resume_s` after the device resumes playing after `gap_s` or more of silence: echo that
    comes back in a quiet room is what the classifier most often takes for a person
    (bench/bargein.py's sessions, models/bargein/EXPERIMENTS.md).
    """

    def __init__(self, converge_s: float, resume_s: float = 0.0, tail_s: float = 0.32, gap_s: float = 0.8,
                 frame_s: float = 0.032) -> None:
        self._needed_frames = round(converge_s / frame_s)
        self._tail_frames = round(tail_s / frame_s)
        self._gap_frames = round(gap_s / frame_s)
        self._resume_frames = round(resume_s / frame_s)
        self._heard_frames = 0
        self._since_playing = self._tail_frames + 1
        self._resume_left = 0

    def update(self, playing: bool) -> bool:
        """Feed one frame (was the device playing?); returns whether to be cautious."""
        if playing and self._since_playing >= self._gap_frames and self._heard_frames >= self._needed_frames:
            self._resume_left = self._resume_frames
        self._since_playing = 0 if playing else self._since_playing + 1
        if playing and self._heard_frames < self._needed_frames:
            self._heard_frames += 1
        resuming = self._resume_left > 0
        self._resume_left = max(0, self._resume_left - 1)
        converging = self._heard_frames < self._needed_frames and self._since_playing <= self._tail_frames
        return converging or resuming
