"""The listening stack: VAD, evidence, segmenter and barge-in policy over one 32 ms frame.

Pure computation on numpy frames (the VAD runs on onnxruntime in-process, ~0.1 ms a
frame); no asyncio and no I/O, so `detect`, the device loop and the tests share it.
The evidence source is a seam: the reference-aware echo gate today, the ML barge-in
classifier (with echo cancellation in front) later; both answer "how likely is it
that a person, not the device's own echo, is talking in this frame?".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..config import Config
from ..models import verified_path
from .bargein import BargeInDecision, BargeInPolicy, Phase
from .echo_gate import EchoGate
from .segmenter import SpeechBoundary, VadSegmenter
from .vad import FRAME_SAMPLES, SAMPLE_RATE_HZ, SileroVad


class EvidenceSource(Protocol):
    """Probability per frame that a person is talking, given mic and reference."""

    def reset(self) -> None: ...

    def update(self, mic: np.ndarray, ref: np.ndarray, learn: bool) -> float: ...


@dataclass(frozen=True)
class FrameReport:
    """What the stack concluded about one frame."""

    start_s: float
    end_s: float
    vad_prob: float
    user_prob: float
    margin_db: float
    boundary: SpeechBoundary | None = None
    decisions: list[BargeInDecision] = field(default_factory=list)


class ListeningStack:
    """Runs every frame through VAD, evidence, segmenter and policy."""

    def __init__(self, config: Config, vad: SileroVad | None = None, evidence: EvidenceSource | None = None) -> None:
        self.config = config
        self.vad = vad or SileroVad(verified_path(config.vad.model))
        self.evidence = evidence or EchoGate(config.echo_gate)
        self.segmenter = VadSegmenter(config.vad)
        self.policy = BargeInPolicy(config.bargein)

    def process(self, mic: np.ndarray, ref: np.ndarray, start_index: int, active: bool) -> FrameReport:
        """One aligned 512-sample frame; `active` when barge-in applies (speaking/thinking)."""
        start_s = start_index / SAMPLE_RATE_HZ
        vad_prob = self.vad(mic)
        learn = active and self.policy.phase in (Phase.WATCHING, Phase.INACTIVE)
        user_prob = self.evidence.update(mic, ref, learn)
        boundary = self.segmenter.update(start_s, vad_prob)
        decisions = self.policy.update(start_s, vad_prob, user_prob, active)
        return FrameReport(
            start_s=start_s,
            end_s=start_s + FRAME_SAMPLES / SAMPLE_RATE_HZ,
            vad_prob=vad_prob,
            user_prob=user_prob,
            margin_db=getattr(self.evidence, "margin_db", float("nan")),
            boundary=boundary,
            decisions=decisions,
        )
