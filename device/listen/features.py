"""Per-frame features for the barge-in classifier. Pure numpy, shared by training and device.

For each 32 ms frame: log-mel energies (24 bands) of the raw mic, of the mic after echo
cancellation, and of the reference aligned with the echo, plus the VAD's probability
on the cancelled signal (the reference may be digital silence: the device is quiet;
the mic never is). Seeing all three lets the model judge how much of what is left
after cancellation still follows what the device is playing.
"""

from __future__ import annotations

import numpy as np

from .vad import FRAME_SAMPLES, SAMPLE_RATE_HZ

MEL_BANDS = 24
FEATURES = 3 * MEL_BANDS + 1
_FLOOR = 1e-9
MIC_FLOOR = -5.0
"""Lowest log-mel value of the mic features. A real mic always hears some noise (the
quietest fan in the training data gives about -5), but digital silence from a muted or
simulated mic would give -9, far outside anything the model was trained on."""


def mel_filterbank(bands: int = MEL_BANDS, n_fft: int = FRAME_SAMPLES, rate_hz: int = SAMPLE_RATE_HZ,
                   low_hz: float = 80.0, high_hz: float = 7600.0) -> np.ndarray:
    """Triangular mel filters, shape (bands, n_fft // 2 + 1)."""
    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(low_hz), mel(high_hz), bands + 2))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / rate_hz)
    bank = np.zeros((bands, len(freqs)))
    for b in range(bands):
        lo, mid, hi = edges[b], edges[b + 1], edges[b + 2]
        rising = (freqs - lo) / (mid - lo)
        falling = (hi - freqs) / (hi - mid)
        bank[b] = np.clip(np.minimum(rising, falling), 0.0, None)
    return bank


class FeatureExtractor:
    """Turns aligned (raw mic, cancelled mic, reference, VAD) into one feature vector."""

    def __init__(self) -> None:
        self._window = np.hanning(FRAME_SAMPLES).astype(np.float32)
        self._bank = mel_filterbank().astype(np.float32)

    def log_mel(self, frame: np.ndarray) -> np.ndarray:
        """log10 mel energies of one frame."""
        spectrum = np.fft.rfft(frame * self._window)
        power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
        return np.log10(self._bank @ power + _FLOOR)

    def __call__(self, mic: np.ndarray, clean: np.ndarray, ref: np.ndarray, vad_prob: float) -> np.ndarray:
        """Features of one frame, float32, length FEATURES."""
        out = np.empty(FEATURES, dtype=np.float32)
        out[:MEL_BANDS] = np.maximum(self.log_mel(mic), MIC_FLOOR)
        out[MEL_BANDS : 2 * MEL_BANDS] = np.maximum(self.log_mel(clean), MIC_FLOOR)
        out[2 * MEL_BANDS : 3 * MEL_BANDS] = self.log_mel(ref)
        out[-1] = vad_prob
        return out
