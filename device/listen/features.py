"""Per-frame features for the barge-in classifier. Pure numpy, shared by training and device.

For each 32 ms frame, log-mel energies (24 bands) of:
- the raw mic,
- the mic after echo cancellation,
- the reference (what went to the DAC) lined up with its echo,
- what the cancelled mic should hold if nobody were talking: the echo that survives the
  canceller (its non-linear part, the loudspeaker's clipping, the tail it missed) as a
  per-bin model predicts it from the reference, plus the noise floor;
- what the cancelled mic holds beyond that prediction, bin by bin, before it is summed
  into bands: a person's harmonics that fall between the device's keep their energy here
  even when the echo is louder than the person in every band;
then how far the cancelled mic rises above that prediction (dB / 10) and the VAD's
probability on the cancelled mic (always last).

The residual-echo model (device/listen/echo_gate.py, learned by normalised LMS on the
frames it already explains) belongs to the room, not to one answer: it keeps learning
for as long as the stream runs, while the classifier's recurrent state starts afresh with
every answer. So from the first frame of an answer the model is told how loud the echo
left by the canceller ought to be in each band, instead of having to infer it again.
"""

from __future__ import annotations

import numpy as np

from ..config import EchoGateConfig
from .echo_gate import EchoGate
from .vad import FRAME_SAMPLES, SAMPLE_RATE_HZ

MEL_BANDS = 24
FEATURES = 5 * MEL_BANDS + 2
VAD_INDEX = FEATURES - 1
MARGIN_INDEX = FEATURES - 2
UNEXPLAINED = slice(4 * MEL_BANDS, 5 * MEL_BANDS)
_FLOOR = 1e-9
MIC_FLOOR = -5.0
"""Lowest log-mel value of the mic features. A real mic always hears some noise (the
quietest fan in the training data gives about -5), but digital silence from a muted or
simulated mic would give -9, far outside anything the model was trained on."""


def unexplained_db(features: np.ndarray) -> float:
    """Energy (dB) of one frame's features in the cancelled mic beyond the predicted echo: what
    a person, a knock or a TV adds to the device's own voice (the barge-in policy's
    TransientWatch)."""
    return float(10.0 * np.log10(np.sum(10.0 ** features[UNEXPLAINED].astype(np.float64))))


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
    """Turns aligned (raw mic, cancelled mic, reference, VAD) into one feature vector.

    Stateful: it carries the residual-echo model. `reset()` for a new stream (another
    recording, another room); the classifier's restarts leave it alone.
    """

    def __init__(self) -> None:
        self._window = np.hanning(FRAME_SAMPLES).astype(np.float32)
        self._bank_t = mel_filterbank().T.copy()  # (bins, bands)
        self._residual = EchoGate(EchoGateConfig())
        self._bins = self._residual.powers.bins
        self._residual_bank_t = self._bank_t[self._bins].copy()
        self._frames = np.zeros((3, FRAME_SAMPLES), dtype=np.float32)  # mic, cancelled mic, reference

    def reset(self) -> None:
        """Forget the residual-echo model (a new stream)."""
        self._residual.reset()

    def __call__(self, mic: np.ndarray, clean: np.ndarray, ref: np.ndarray, vad_prob: float) -> np.ndarray:
        """Features of one frame, float32, length FEATURES."""
        frames = self._frames
        frames[0], frames[1], frames[2] = mic, clean, ref
        spectrum = np.fft.rfft(frames * self._window, axis=-1)  # one call for the three: ~2x faster
        power = spectrum.real**2 + spectrum.imag**2
        mel = np.log10(power @ self._bank_t + _FLOOR)
        # The residual-echo model learns on every frame it explains, whatever the barge-in
        # policy is doing, the same in training and on the device.
        self._residual.update_powers(power[1, self._bins], power[2, self._bins], learn=True)
        out = np.empty(FEATURES, dtype=np.float32)
        out[: 2 * MEL_BANDS] = np.maximum(mel[:2].ravel(), MIC_FLOOR)
        out[2 * MEL_BANDS : 3 * MEL_BANDS] = mel[2]
        expected = self._residual.expected
        out[3 * MEL_BANDS : 4 * MEL_BANDS] = np.maximum(np.log10(expected @ self._residual_bank_t + _FLOOR), MIC_FLOOR)
        unexplained = np.maximum(power[1, self._bins] - expected, 0.0)
        out[UNEXPLAINED] = np.maximum(np.log10(unexplained @ self._residual_bank_t + _FLOOR), MIC_FLOOR)
        out[MARGIN_INDEX] = min(5.0, max(-5.0, self._residual.margin_db / 10.0))
        out[VAD_INDEX] = vad_prob
        return out
