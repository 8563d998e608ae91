"""Loop side of the audio path: aligned 16 kHz microphone and reference frames.

The capture ring holds the chosen mic channel at the device rate; the playback
engine's reference ring holds what went to the DAC at the DAC rate. Both are
resampled to 16 kHz here (soxr, streaming), and the reference is placed on the
microphone's timeline using the clock stamps both callbacks record, so that frame i
of the mic and frame i of the reference describe the same moment. What remains
between them is the acoustic path and converter latency, which the echo model learns.
"""

from __future__ import annotations

import logging

import numpy as np
import soxr

from .engines import CaptureEngine, PlaybackEngine
from .ringbuffer import SampleHistory

_LOGGER = logging.getLogger(__name__)

RATE_HZ = 16000
_REALIGN_SAMPLES = 160  # re-anchor the reference when the clocks disagree by > 10 ms
# A mic frame waits at most this long (16 kHz samples, 64 ms) for its reference: the
# resampler releases reference audio in bursts, a little after the DAC callback.
_MAX_REFERENCE_WAIT = 1024


class _Resampler:
    """Streaming soxr resampler to 16 kHz that passes 16 kHz input through untouched."""

    def __init__(self, from_hz: int) -> None:
        self._stream = None if from_hz == RATE_HZ else soxr.ResampleStream(from_hz, RATE_HZ, 1, dtype="float32")
        self.ratio = RATE_HZ / from_hz

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        if self._stream is None:
            return samples
        return self._stream.resample_chunk(samples)


class AudioFrontEnd:
    """Pulls both rings and yields (mic, reference, start_index) 16 kHz frames."""

    def __init__(
        self,
        capture: CaptureEngine,
        playback: PlaybackEngine | None,
        *,
        frame_samples: int = 512,
        align_by_clock: bool = True,
    ) -> None:
        self.capture = capture
        self.playback = playback
        self.frame_samples = frame_samples
        self._align_by_clock = align_by_clock
        self._mic_resampler = _Resampler(capture.sample_rate_hz)
        self._mic = SampleHistory(RATE_HZ * 4)
        self._mic_read = 0  # absolute 16 kHz index of the next frame to hand out
        self._ref_resampler = _Resampler(playback.sample_rate_hz) if playback else None
        self._ref = SampleHistory(RATE_HZ * 4)
        self._ref_offset: int | None = None  # mic index of reference index 0
        self._dev_read = 0  # capture-ring samples consumed (device rate)
        self.ref_missing_frames = 0

    @property
    def samples_consumed(self) -> int:
        """16 kHz mic samples handed out as frames so far."""
        return self._mic_read

    def frames(self):
        """Yield every complete (mic, ref, start_index) frame available now."""
        self._pull()
        n = self.frame_samples
        while self._mic.end - self._mic_read >= n:
            start = self._mic_read
            if self._waiting_for_reference(start, n):
                break
            mic = self._mic.window(start, n)
            ref = self._reference_for(start, n)
            self._mic_read += n
            yield mic, ref, start

    def _pull(self) -> None:
        ring = self.capture.ring
        if ring.available:
            raw = ring.read(ring.available)
            self._dev_read += len(raw)
            self._mic.append(self._mic_resampler(raw))
        if self.playback is not None and self.playback.reference.available:
            raw = self.playback.reference.read(self.playback.reference.available)
            self._ref.append(self._ref_resampler(raw))
            self._update_alignment()

    def _update_alignment(self) -> None:
        if not self._align_by_clock:
            self._ref_offset = 0  # the simulated backend renders and captures in lock-step
            return
        mic_stamp = self.capture.stamps.latest()
        ref_stamp = self.playback.reference_stamps.latest()
        if mic_stamp is None or ref_stamp is None:
            return
        mic_pos, adc_time = mic_stamp
        ref_pos, dac_time = ref_stamp
        # Where on the mic timeline (16 kHz) the reference block's first sample sounds.
        mic_index = (mic_pos + (dac_time - adc_time) * self.capture.sample_rate_hz) * self._mic_resampler.ratio
        offset = round(mic_index - ref_pos * self._ref_resampler.ratio)
        if self._ref_offset is None or abs(offset - self._ref_offset) > _REALIGN_SAMPLES:
            if self._ref_offset is not None:
                _LOGGER.info("Reference re-aligned by %d samples", offset - self._ref_offset)
            self._ref_offset = offset

    def _waiting_for_reference(self, start: int, count: int) -> bool:
        if self.playback is None or self._ref_offset is None:
            return False
        missing = start - self._ref_offset + count > self._ref.end
        return missing and self._mic.end - (start + count) < _MAX_REFERENCE_WAIT

    def _reference_for(self, start: int, count: int) -> np.ndarray:
        if self._ref_offset is None:
            return np.zeros(count, dtype=np.float32)
        ref_start = start - self._ref_offset
        if ref_start + count > self._ref.end:
            self.ref_missing_frames += 1
        return self._ref.window(ref_start, count)
