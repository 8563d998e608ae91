"""Pure VAD segmenter: speech probabilities in, speech_start / speech_end out. No I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import VadConfig
from .vad import FRAME_SAMPLES, SAMPLE_RATE_HZ

FRAME_S = FRAME_SAMPLES / SAMPLE_RATE_HZ


@dataclass(frozen=True)
class SpeechBoundary:
    """A segment boundary: `kind` is speech_start or speech_end.

    `onset_s` is where the speech (or silence) actually began, earlier than the
    decision time because the segmenter needs a few frames to be sure.
    """

    kind: str
    onset_s: float


class VadSegmenter:
    """Hysteresis over per-frame speech probabilities (frames of FRAME_S seconds)."""

    def __init__(self, config: VadConfig) -> None:
        self._onset = config.onset_threshold
        self._offset = config.offset_threshold
        self._speech_frames_needed = max(1, math.ceil(config.min_speech_ms / 1000 / FRAME_S))
        self._silence_frames_needed = max(1, math.ceil(config.min_silence_ms / 1000 / FRAME_S))
        self.reset()

    def reset(self) -> None:
        """Back to silence."""
        self.in_speech = False
        self._run = 0  # consecutive frames pointing at the other state
        self._run_start_s = 0.0

    def update(self, frame_start_s: float, prob: float) -> SpeechBoundary | None:
        """Feed the probability of the frame starting at `frame_start_s`."""
        towards_other = prob < self._offset if self.in_speech else prob >= self._onset
        if not towards_other:
            self._run = 0
            return None
        if self._run == 0:
            self._run_start_s = frame_start_s
        self._run += 1
        needed = self._silence_frames_needed if self.in_speech else self._speech_frames_needed
        if self._run < needed:
            return None
        self.in_speech = not self.in_speech
        self._run = 0
        return SpeechBoundary("speech_start" if self.in_speech else "speech_end", self._run_start_s)
