"""Pure barge-in policy: per-frame evidence in, tentative/confirmed/rejected out. No I/O.

While the device is speaking or thinking, a speech onset that the echo does not fully
explain opens a *tentative* barge-in (the device ducks at once). Speech frames whose
evidence says "a person, not the echo" accumulate; enough of them *confirm* it (fade
out, cancel the turn). Silence, speech the echo explains (once the duck has made the
echo quieter, a person stands out even more), or a timeout *reject* it (unduck,
carry on).

Two probabilities come in per frame: that a person is talking *to* the device
(`user_prob`, what confirms) and that someone is talking at all (`talking_prob`, which
also counts a backchannel such as "mm-hmm"; what ducks and keeps a tentative barge-in
alive). So a backchannel ducks the device and, when it ends, the device resumes.

The evidence is a probability that a person is talking to the device, from whatever
sits in that seam: the ML barge-in classifier (device/listen/classifier.py) by default,
or the energy-based echo gate (device/listen/echo_gate.py).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from ..config import BargeInConfig
from .segmenter import FRAME_S


class Phase(enum.Enum):
    """Where the policy is."""

    WATCHING = "watching"  # device active, no barge-in under way
    TENTATIVE = "tentative"  # ducked, gathering evidence
    CONFIRMED = "confirmed"  # decided; stays here until the device stops being active
    INACTIVE = "inactive"  # device idle or listening: barge-in does not apply


@dataclass(frozen=True)
class BargeInDecision:
    """A decision: `kind` is bargein_tentative, bargein_confirmed or bargein_rejected."""

    kind: str
    onset_s: float
    """Start of the first speech frame of this barge-in (for pre-roll)."""
    reason: str = ""
    """Why it was rejected (silence, echo, timeout) or confirmed (evidence)."""
    evidence_frames: int = 0


def restarts_evidence(decision: BargeInDecision) -> bool:
    """Whether the evidence source starts afresh after this decision: after a barge-in
    rejected for silence (a backchannel or a cough has ended), so that it does not remember
    that sound when the next person starts. Not after one rejected as echo or for taking too
    long: the sound is still going, and what the classifier has heard of it so far is the
    evidence it needs to make up its mind about a person it was not yet sure of."""
    return decision.kind == "bargein_rejected" and decision.reason == "silence"


class BargeInPolicy:
    """The state machine of one barge-in at a time."""

    def __init__(self, config: BargeInConfig) -> None:
        self._cfg = config
        self._max_tentative_frames = max(1, math.ceil(config.max_tentative_ms / 1000 / FRAME_S))
        self._echo_frames = math.ceil(config.speech_talking_echo_ms / 1000 / FRAME_S)
        self.reset()

    def reset(self) -> None:
        """Forget any barge-in under way; the next active frame starts watching afresh."""
        self.phase = Phase.INACTIVE
        self._since_playing = self._echo_frames + 1  # frames since the device last played
        self._rearmed = True
        self._rejected_onset_s: float | None = None
        self._rejected_at_s = 0.0
        self._reset_counts()

    def _reset_counts(self) -> None:
        self._onset_run = 0
        self._onset_s = 0.0
        self._evidence = 0
        self._silence_run = 0
        self._weak_run = 0
        self._frames = 0

    @property
    def tentative_onset_s(self) -> float | None:
        """Onset of the barge-in under way (ducked, not yet decided), or None."""
        return self._onset_s if self.phase is Phase.TENTATIVE else None

    def update(self, frame_start_s: float, vad_prob: float, user_prob: float, active: bool,
               cautious: bool = False, talking_prob: float | None = None,
               playing: bool = True) -> list[BargeInDecision]:
        """Feed one frame; `active` is whether the device is speaking or thinking;
        `cautious` while the echo canceller is still converging (more evidence needed);
        `talking_prob` (default: `user_prob`) whether anyone, a backchannel included, talks:
        given by the classifier, which also hears people the VAD misses under loud echo
        (config speech_talking_prob); the echo gate gives none, its energy is no proof of speech.
        `playing`: whether the device's voice is in this frame (the reference lined up with its
        echo); without it, a moment after it, the classifier overrules the VAD only when the
        VAD hears something too (config speech_talking_echo_ms, speech_talking_min_vad).

        Returns the decisions this frame made: none, one, or a tentative and its
        confirmation together when a single frame is enough evidence.
        """
        if not active:
            self.reset()
            return []
        if self.phase is Phase.INACTIVE:
            self.phase = Phase.WATCHING
        self._since_playing = 0 if playing else self._since_playing + 1
        talking = user_prob if talking_prob is None else max(user_prob, talking_prob)
        speech = vad_prob >= self._cfg.vad_threshold
        if (talking_prob is not None and talking >= self._cfg.speech_talking_prob
                and (self._since_playing <= self._echo_frames or vad_prob >= self._cfg.speech_talking_min_vad)):
            speech = True  # a classifier hears someone the VAD, on the cancelled mic alone, missed under the echo
        decisions = []
        if self.phase is Phase.WATCHING:
            tentative = self._watch(frame_start_s, speech, talking)
            if tentative is None:
                return []
            decisions.append(tentative)
        if self.phase is Phase.TENTATIVE:
            needed = self._cfg.converging_confirm_frames if cautious else self._cfg.confirm_frames
            weighed = self._weigh(frame_start_s, speech, user_prob, talking, needed)
            if weighed is not None:
                decisions.append(weighed)
        return decisions  # CONFIRMED: latched until the device goes inactive

    def _watch(self, frame_start_s: float, speech: bool, talking: float) -> BargeInDecision | None:
        if not (speech and talking >= self._cfg.tentative_user_prob):
            self._onset_run = 0
            self._rearmed = True
            return None
        if not self._rearmed:
            # The sound that was just rejected is still going: wait for a fresh onset, or for
            # strong evidence (a person who started talking during the rejected echo).
            if talking < self._cfg.confirm_user_prob:
                return None
            self._rearmed = True
        if self._onset_run == 0:
            self._onset_s = frame_start_s
            # Soon after rejecting a sound with evidence of a person, this is likely the same
            # person, rejected too early: keep their earlier onset so the pre-roll still
            # holds their first words. A rejected sound with no such evidence was most
            # likely the device's echo: its onset would put the device's own words into the
            # pre-roll, ahead of the user's, and the recognizer would transcribe them.
            if (self._rejected_onset_s is not None
                    and frame_start_s - self._rejected_at_s <= self._cfg.rejoin_ms / 1000):
                self._onset_s = self._rejected_onset_s
        self._onset_run += 1
        if self._onset_run < self._cfg.onset_frames:
            return None
        self.phase = Phase.TENTATIVE
        self._frames = -1  # the onset frame is weighed too, but does not count towards the timeout
        self._silence_run = 0
        self._weak_run = 0
        self._evidence = 0
        return BargeInDecision("bargein_tentative", self._onset_s)

    def _weigh(self, frame_start_s: float, speech: bool, user_prob: float, talking: float,
               needed: int) -> BargeInDecision | None:
        self._frames += 1
        if speech:
            self._silence_run = 0
            if user_prob >= self._cfg.confirm_user_prob:
                self._evidence += 1
            self._weak_run = 0 if talking >= self._cfg.tentative_user_prob else self._weak_run + 1
        else:
            self._silence_run += 1
        if self._evidence >= needed:
            self.phase = Phase.CONFIRMED
            return BargeInDecision("bargein_confirmed", self._onset_s, "evidence", self._evidence)
        if self._silence_run >= self._cfg.reject_silence_frames:
            return self._reject("silence", frame_start_s)
        if self._weak_run >= self._cfg.reject_weak_frames:
            return self._reject("echo", frame_start_s)
        if self._frames >= self._max_tentative_frames:
            return self._reject("timeout", frame_start_s)
        return None

    def _reject(self, reason: str, frame_start_s: float) -> BargeInDecision:
        decision = BargeInDecision("bargein_rejected", self._onset_s, reason, self._evidence)
        self._rejected_onset_s = self._onset_s if self._evidence > 0 else None
        self._rejected_at_s = frame_start_s
        self.phase = Phase.WATCHING
        self._rearmed = reason == "silence"  # after echo or timeout the sound is still going
        self._reset_counts()
        return decision
