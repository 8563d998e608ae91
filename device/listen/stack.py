"""The listening stack: echo cancellation, VAD, evidence, segmenter and barge-in policy.

Pure computation on numpy frames (the engines run in-process, a fraction of a
millisecond a frame); no asyncio and no I/O, so `detect`, the device loop, the tests
and the classifier's training data share it. The evidence source answers "how likely
is it that a person, not the device's own echo, is talking to it in this frame?": the
ML barge-in classifier by default, or the energy-based echo gate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ..audio.ringbuffer import SampleHistory
from ..config import Config
from ..models import verified_path
from .aec import ConvergenceWatch, DelayEstimator, EchoCanceller, is_playing, load_canceller
from .bargein import BargeInDecision, BargeInPolicy, EvidenceMemory, Forget, Phase
from .classifier import REWIND_FRAMES, BargeInClassifier
from .echo_gate import EchoGate
from .segmenter import SpeechBoundary, VadSegmenter
from .vad import FRAME_SAMPLES, SAMPLE_RATE_HZ, SileroVad

CLEANED_HISTORY_S = 3
"""Seconds of echo-cancelled mic kept for pre-roll: more than a barge-in's onset usually lies
before its confirmation (bargein.rejoin_ms + max_tentative_ms + preroll_ms)."""


class EvidenceSource(Protocol):
    """Probability per frame that a person is talking to the device."""

    def reset(self) -> None: ...

    def restart(self) -> None:
        """The device starts speaking or thinking, or a barge-in was rejected for silence."""

    def rewind(self, frames: int) -> None:
        """Forget the last `frames` frames: a backchannel rejected as a barge-in."""

    def update(self, mic: np.ndarray, clean: np.ndarray, ref: np.ndarray, vad_prob: float, learn: bool) -> float: ...


@dataclass(frozen=True)
class FrameReport:
    """What the stack concluded about one frame."""

    start_s: float
    end_s: float
    vad_prob: float
    user_prob: float
    margin_db: float
    clean: np.ndarray
    """The frame's mic after the echo canceller: what the recognizer hears."""
    boundary: SpeechBoundary | None = None
    decisions: list[BargeInDecision] = field(default_factory=list)
    p_backchannel: float = 0.0


def forget(evidence: EvidenceSource, what: Forget) -> None:
    """Do what the evidence memory (device/listen/bargein.py) says with a rejected sound."""
    if what.rewind_frames is None:
        evidence.restart()
    else:
        evidence.rewind(what.rewind_frames)


def decide(policy: BargeInPolicy, memory: EvidenceMemory, evidence: EvidenceSource, start_s: float,
           vad_prob: float, user_prob: float, *, active: bool, cautious: bool, playing: bool) -> list[BargeInDecision]:
    """One frame of the barge-in policy and the evidence memory, after the evidence source has
    heard it: the policy weighs the frame (with whatever else the source gives: p(talking),
    the level beyond the predicted echo), and the source forgets what the memory says to.
    ListeningStack.process and bench/classifier_eval.py, which has only features, share it."""
    talking_prob = getattr(evidence, "p_talking", None)
    decisions = policy.update(start_s, vad_prob, user_prob, active, cautious=cautious, talking_prob=talking_prob,
                              playing=playing, level_db=getattr(evidence, "unexplained_db", None))
    what = memory.update(decisions, vad_prob, user_prob if talking_prob is None else talking_prob,
                         getattr(evidence, "p_backchannel", 0.0))
    if what is not None:
        forget(evidence, what)
    return decisions


def load_evidence(config: Config, model: Path | None = None) -> EvidenceSource:
    """The ML classifier (default), or the energy-based echo gate. `model`: another classifier
    ONNX file than the manifest's (an experiment in the benches; not hash-checked)."""
    if model is None and config.bargein.evidence == "gate":
        return EchoGate(config.echo_gate)
    return BargeInClassifier(model or verified_path(config.bargein.classifier_model),
                             backchannels_interrupt=config.bargein.backchannels == "interrupt")


class ListeningStack:
    """Every frame: align the reference, cancel the echo, VAD, evidence, segmenter, policy."""

    def __init__(self, config: Config, vad: SileroVad | None = None, evidence: EvidenceSource | None = None,
                 canceller: EchoCanceller | None = None) -> None:
        self.config = config
        self.vad = vad or SileroVad(verified_path(config.vad.model))
        self.canceller = canceller or load_canceller(config.aec)
        self.evidence = evidence or load_evidence(config)
        self.segmenter = VadSegmenter(config.vad)
        self.policy = BargeInPolicy(config.bargein)
        self.memory = EvidenceMemory(config.bargein, REWIND_FRAMES)
        self.delay = DelayEstimator()
        self._margin = round(config.aec.delay_margin_ms * SAMPLE_RATE_HZ / 1000)
        self._max_unshifted = round(config.aec.max_unshifted_delay_ms * SAMPLE_RATE_HZ / 1000)
        self._refs = SampleHistory(SAMPLE_RATE_HZ)  # the reference, indexed like the mic frames
        self._cleaned = SampleHistory(SAMPLE_RATE_HZ * CLEANED_HISTORY_S)  # the mic after the canceller
        self._active = False
        self._convergence = (ConvergenceWatch(config.aec.converge_s, config.aec.resume_caution_s)
                             if self.canceller.name != "none" else None)

    def align(self, mic: np.ndarray, ref: np.ndarray, start_index: int) -> tuple[np.ndarray, np.ndarray]:
        """(reference for the canceller, reference lined up with the echo) of one frame.

        Both follow the tracked output-to-mic delay, differently. The canceller's is
        shifted only when the delay is too long for its filter to cover: a shift that
        changes makes the filter converge again (a burst of echo gets through), and short
        delays the filter absorbs. The lined-up one, which the classifier and the
        convergence watch see, is always shifted once the delay is known, so the device's
        voice and its echo start and stop in the same frame on any hardware, whatever
        its buffering (until the first estimate, about a second into the device's first
        answer, it is the reference as played).
        """
        self._refs.append(ref)
        delay = self.delay.update(mic, ref) or 0
        lined_up = max(0, delay - self._margin)
        for_canceller = lined_up if delay > self._max_unshifted else 0
        return self._shifted(ref, start_index, for_canceller), self._shifted(ref, start_index, lined_up)

    def _shifted(self, ref: np.ndarray, start_index: int, shift: int) -> np.ndarray:
        return ref if shift == 0 else self._refs.window(start_index - shift, len(ref))

    def _converging(self, playing: bool) -> bool:
        """Whether the canceller is still new (see ConvergenceWatch)."""
        if self._convergence is None:
            return False
        return self._convergence.update(playing)

    def front(self, mic: np.ndarray, ref: np.ndarray, start_index: int) -> tuple[np.ndarray, np.ndarray, float]:
        """(echo-cancelled mic, reference lined up with the echo, VAD probability) of one frame."""
        for_canceller, lined_up = self.align(mic, ref, start_index)
        clean = self.canceller.process(mic, for_canceller)
        return clean, lined_up, self.vad(clean)

    def cleaned_since(self, index: int) -> tuple[int, np.ndarray]:
        """(start, samples): the echo-cancelled mic from absolute sample `index` to the end of
        the last frame processed, a barge-in's pre-roll. It starts later than `index` when
        that is no longer kept (more than CLEANED_HISTORY_S seconds back)."""
        index = min(max(index, self._cleaned.end - self._cleaned.capacity), self._cleaned.end)
        return index, self._cleaned.window(index, self._cleaned.end - index)

    def process(self, mic: np.ndarray, ref: np.ndarray, start_index: int, active: bool) -> FrameReport:
        """One 512-sample frame; `active` when barge-in applies (speaking/thinking)."""
        start_s = start_index / SAMPLE_RATE_HZ
        clean, lined_up, vad_prob = self.front(mic, ref, start_index)
        self._cleaned.append(clean)
        if active and not self._active:
            self.evidence.restart()
        if not active:
            self.memory.reset()  # nothing to forget while barge-in does not apply
        self._active = active
        learn = active and self.policy.phase in (Phase.WATCHING, Phase.INACTIVE)
        user_prob = self.evidence.update(mic, clean, lined_up, vad_prob, learn)
        boundary = self.segmenter.update(start_s, vad_prob)
        playing = is_playing(lined_up)
        p_backchannel = getattr(self.evidence, "p_backchannel", 0.0)  # before the evidence forgets anything
        decisions = decide(self.policy, self.memory, self.evidence, start_s, vad_prob, user_prob, active=active,
                           cautious=self._converging(playing), playing=playing)
        return FrameReport(
            start_s=start_s,
            end_s=start_s + FRAME_SAMPLES / SAMPLE_RATE_HZ,
            vad_prob=vad_prob,
            user_prob=user_prob,
            margin_db=getattr(self.evidence, "margin_db", float("nan")),
            clean=clean,
            boundary=boundary,
            decisions=decisions,
            p_backchannel=p_backchannel,
        )
