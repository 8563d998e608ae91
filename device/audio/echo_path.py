"""A model of the acoustic path from the DAC back into the mic: small loudspeaker, room, delay.

Used by the simulated backend to close the echo loop and by the recordings generator.
The loudspeaker soft-clips and band-limits (a 40 mm driver has little below ~250 Hz);
the room is a direct path, a few early reflections and an exponentially decaying tail.
Everything is deterministic for a given seed.
"""

from __future__ import annotations

import numpy as np

RT60_S = {"small": 0.3, "none": 0.0}


def bandpass_fir(sample_rate_hz: int, low_hz: float, high_hz: float, taps: int = 129) -> np.ndarray:
    """Windowed-sinc band-pass FIR with unit gain in the pass band."""
    n = np.arange(taps) - (taps - 1) / 2
    def lowpass(cut_hz: float) -> np.ndarray:
        return 2 * cut_hz / sample_rate_hz * np.sinc(2 * cut_hz / sample_rate_hz * n)
    h = (lowpass(high_hz) - lowpass(low_hz)) * np.blackman(taps)
    return h.astype(np.float64)


def reverb_tail(sample_rate_hz: int, rt60_s: float, rng: np.random.Generator) -> np.ndarray:
    """A room's diffuse tail, `rt60_s` long: white noise under an envelope that starts at 1
    and falls 60 dB by the end (amplitude exp(-6.9 t / rt60))."""
    length = int(rt60_s * sample_rate_hz)
    t = np.arange(length) / sample_rate_hz
    return rng.standard_normal(length) * np.exp(-6.9 * t / rt60_s)


def room_response(sample_rate_hz: int, room: str, seed: int) -> np.ndarray:
    """Impulse response of the speaker-to-mic path in `room` (small or none)."""
    rt60_s = RT60_S[room]
    rng = np.random.default_rng(seed)
    if rt60_s == 0.0:
        return np.array([1.0])
    tail = reverb_tail(sample_rate_hz, rt60_s, rng) * 0.25
    tail[: int(0.003 * sample_rate_hz)] = 0.0  # reflections arrive a few ms after the direct path
    ir = tail
    ir[0] = 1.0  # direct path: speaker centimetres from the mic dominates
    for delay_ms, gain in ((2.9, 0.5), (5.3, -0.35), (8.1, 0.25), (11.7, -0.2)):  # desk, walls
        ir[int(delay_ms * sample_rate_hz / 1000)] += gain * (0.7 + 0.6 * rng.random())
    return ir


class EchoPath:
    """Streaming echo: soft clip -> loudspeaker band-pass -> room -> delay -> gain."""

    def __init__(
        self,
        sample_rate_hz: int,
        *,
        room: str = "small",
        gain_db: float = 0.0,
        delay_ms: float = 24.0,
        seed: int = 0,
        drive: float = 2.0,
    ) -> None:
        self._drive = drive
        speaker = bandpass_fir(sample_rate_hz, 250.0, min(7000.0, 0.45 * sample_rate_hz))
        ir = np.convolve(speaker, room_response(sample_rate_hz, room, seed))
        ir /= np.sqrt(np.sum(ir**2))  # unit energy: white input comes out at the same level
        ir *= 10.0 ** (gain_db / 20.0)
        delay = int(round(delay_ms * sample_rate_hz / 1000.0))
        self.impulse_response = np.concatenate([np.zeros(delay), ir])
        self._tail = np.zeros(len(self.impulse_response) - 1)

    def _clip(self, block: np.ndarray) -> np.ndarray:
        # tanh soft clip, normalised so small signals pass with unit gain.
        return np.tanh(self._drive * block) / self._drive

    def process(self, block: np.ndarray) -> np.ndarray:
        """The echo (float32) caused by playing `block`, same length, streaming."""
        if len(block) == 0:
            return np.zeros(0, dtype=np.float32)
        full = np.convolve(self._clip(block.astype(np.float64)), self.impulse_response)
        full[: len(self._tail)] += self._tail
        count = len(block)
        self._tail = full[count:].copy()  # what spills past this block, for the next ones
        return full[:count].astype(np.float32)

    def apply(self, signal: np.ndarray) -> np.ndarray:
        """The echo of a whole signal at once (same length as `signal`)."""
        full = np.convolve(self._clip(signal.astype(np.float64)), self.impulse_response)
        return full[: len(signal)].astype(np.float32)
