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


@dataclass(frozen=True)
class Forget:
    """What the evidence source should do with a sound it heard and the policy rejected."""

    rewind_frames: int | None = None
    """None: start afresh (restart). n: go back to its state from before its last n frames."""


class EvidenceMemory:
    """When the evidence source forgets a sound whose barge-in was rejected. Pure, frame by frame.

    The classifier was trained on stretches of the device's speech holding at most one
    person, so a state that remembers a sound makes it slow to believe the person who talks
    next, and so, for half a second, does a fresh state (EXPERIMENTS.md, "A fresh state is
    slow" and "A person right after another sound"). Two rules:

    - A rejected sound the classifier took for a backchannel at least once (p(backchannel)
      >= forget_backchannel_prob: "mm-hmm", "yeah") is forgotten: the classifier goes back
      to its state from just before the sound, when it had heard only the device, and is
      as quick to believe "wait, stop" after the "mm-hmm" as before it. After a rejection
      for silence the sound is over and it goes back at once; after one as echo or for a
      timeout the sound is still going (what it has heard of it is the evidence it is
      weighing), and it goes back once the mic has been quiet for reject_silence_frames.
    - Any other sound rejected for silence (a knock, a cough) restarts it afresh: a fresh
      state is deaf to the next knock of the same burst, which keeps knocks from cancelling
      the device. After echo or a timeout it keeps its state.
    """

    BEFORE_ONSET_FRAMES = 2
    """The classifier's p(talking) crosses the threshold a frame or two into a sound: go back
    this much further than the frame that opened the barge-in."""

    def __init__(self, config: BargeInConfig, max_rewind_frames: int) -> None:
        self._cfg = config
        self._max_rewind = max_rewind_frames
        self.reset()

    def reset(self) -> None:
        """Nothing under way (the device went idle, or the evidence restarted)."""
        self._since_onset: int | None = None  # frames heard since the tentative barge-in's sound began
        self._peak = 0.0  # its highest p(backchannel)
        self._pending: int | None = None  # after echo or a timeout: frames to go back once quiet
        self._quiet = 0

    def update(self, decisions: list[BargeInDecision], vad_prob: float, talking_prob: float,
               backchannel_prob: float) -> Forget | None:
        """After the policy has weighed a frame: what to forget, if anything, now."""
        forget = None
        if self._pending is not None:  # a backchannel rejected as echo or for a timeout: quiet yet?
            self._pending += 1
            speech = vad_prob >= self._cfg.vad_threshold or talking_prob >= self._cfg.tentative_user_prob
            self._quiet = 0 if speech else self._quiet + 1
            if self._pending > self._max_rewind:
                self._pending = None  # too long ago to go back to: keep the state, as after any echo
            elif self._quiet >= self._cfg.reject_silence_frames:
                forget, self._pending = Forget(self._pending), None
        for decision in decisions:
            if decision.kind == "bargein_tentative":
                if self._pending is None:
                    self._since_onset, self._peak = self._cfg.onset_frames - 1, 0.0
                else:  # the backchannel goes on (or its person goes on talking): it began back then
                    self._since_onset, self._pending = self._pending - self.BEFORE_ONSET_FRAMES - 1, None
            elif decision.kind == "bargein_confirmed":
                self.reset()
            elif decision.kind == "bargein_rejected":
                back = (self._since_onset or 0) + 1 + self.BEFORE_ONSET_FRAMES  # this frame included
                backchannel = (self._since_onset is not None and back <= self._max_rewind
                               and max(self._peak, backchannel_prob) >= self._cfg.forget_backchannel_prob)
                if decision.reason == "silence":
                    forget = Forget(back if backchannel else None)
                elif backchannel:
                    self._pending, self._quiet = back, 0
                self._since_onset = None
        if self._since_onset is not None:
            self._since_onset += 1
            self._peak = max(self._peak, backchannel_prob)
        return forget


class TransientWatch:
    """Whether the sound of a tentative barge-in is a knock dying away. Pure, frame by frame.

    Fed the energy (dB) in the cancelled mic that the echo does not explain. A knock, a
    clap or a dropped spoon is loud in its first frame, well above the frames before it,
    and from then on only fades with the room's reverberation; a voice is loud too, but
    rises again with the next syllable. The classifier takes the first frames of a knock
    for a person often enough to confirm one (MODEL_CARD.md, "Knocks"), and this is the
    shape it does not see. A clatter of knocks, or one that the room's reverberation keeps
    up for three frames, passes: that takes the model (MODEL_CARD.md, "How the shipped model
    was made"). See BargeInConfig.transient_jump_db.
    """

    def __init__(self, config: BargeInConfig) -> None:
        self._cfg = config
        self._recent: list[float] = []  # the levels of the last two frames
        self._peak: float | None = None  # the loudest frame of the sound weighed, or of its latest rise
        self._peak_jump = 0.0  # how far that frame rose above the two before it
        self._trough = 0.0  # the quietest frame since that peak

    def end(self) -> None:
        """The barge-in under way, if any, is decided."""
        self._peak = None

    def update(self, level_db: float, weighing: bool) -> bool:
        """One frame's level; `weighing`: a tentative barge-in was under way before it.
        Returns whether this frame belongs to a knock dying away."""
        jump = level_db - min(self._recent) if len(self._recent) == 2 else 0.0
        self._recent = [*self._recent[-1:], level_db]
        if not weighing or self._peak is None:
            # the frame that may open a barge-in: the sound's first peak
            self._peak, self._peak_jump, self._trough = level_db, jump, level_db
            return False
        self._trough = min(self._trough, level_db)
        if level_db > self._peak or level_db - self._trough >= self._cfg.transient_rise_db:
            self._peak, self._peak_jump, self._trough = level_db, jump, level_db
        return self._peak_jump >= self._cfg.transient_jump_db and level_db < self._peak - self._cfg.transient_decay_db


class BargeInPolicy:
    """The state machine of one barge-in at a time."""

    def __init__(self, config: BargeInConfig) -> None:
        self._cfg = config
        self._max_tentative_frames = max(1, math.ceil(config.max_tentative_ms / 1000 / FRAME_S))
        self._echo_frames = math.ceil(config.speech_talking_echo_ms / 1000 / FRAME_S)
        self._transient = TransientWatch(config)
        self.reset()

    def reset(self) -> None:
        """Forget any barge-in under way; the next active frame starts watching afresh."""
        self.phase = Phase.INACTIVE
        self._since_playing = self._echo_frames + 1  # frames since the device last played
        self._rearmed = True
        self._rejected_onset_s: float | None = None
        self._rejected_at_s = 0.0
        self._reset_counts()
        self._transient.end()

    def _reset_counts(self) -> None:
        self._onset_run = 0
        self._onset_s = 0.0
        self._evidence = 0
        self._silence_run = 0
        self._weak_run = 0
        self._sure_run = 0
        self._held = 0
        self._frames = 0

    @property
    def tentative_onset_s(self) -> float | None:
        """Onset of the barge-in under way (ducked, not yet decided), or None."""
        return self._onset_s if self.phase is Phase.TENTATIVE else None

    def update(self, frame_start_s: float, vad_prob: float, user_prob: float, active: bool,
               cautious: bool = False, talking_prob: float | None = None,
               playing: bool = True, level_db: float | None = None) -> list[BargeInDecision]:
        """Feed one frame; `active` is whether the device is speaking or thinking;
        `cautious` while the echo canceller is still converging (more evidence needed);
        `talking_prob` (default: `user_prob`) whether anyone, a backchannel included, talks:
        given by the classifier, which also hears people the VAD misses under loud echo
        (config speech_talking_prob); the echo gate gives none, its energy is no proof of speech.
        `playing`: whether the device's voice is in this frame (the reference lined up with its
        echo); without it, a moment after it, the classifier overrules the VAD only when the
        VAD hears something too (config speech_talking_echo_ms, speech_talking_min_vad).
        `level_db`: the energy in the cancelled mic the echo does not explain, for telling a
        knock from a voice (TransientWatch; None: the evidence source gives none, no such rule).

        Returns the decisions this frame made: none, one, or a tentative and its
        confirmation together when a single frame is enough evidence.
        """
        dying_away = level_db is not None and self._transient.update(level_db, self.phase is Phase.TENTATIVE)
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
            needed, sure_needed = ((self._cfg.converging_confirm_frames, self._cfg.converging_sure_frames) if cautious
                                   else (self._cfg.confirm_frames, self._cfg.confirm_sure_frames))
            weighed = self._weigh(frame_start_s, speech, user_prob, talking, needed, sure_needed, dying_away)
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
        self._sure_run = 0
        self._held = 0
        self._evidence = 0
        return BargeInDecision("bargein_tentative", self._onset_s)

    def _weigh(self, frame_start_s: float, speech: bool, user_prob: float, talking: float,
               needed: int, sure_needed: int, dying_away: bool) -> BargeInDecision | None:
        self._frames += 1
        # The frames of a sound dying away like a knock are held back: they count once the
        # sound rises again, or the classifier has heard a person through transient_hold_frames
        # of them. If it stops hearing one first, it was a knock, and what its first frames
        # seemed to say is dropped too. Such a frame, unless transient_sure_prob sure of a person,
        # is not sure enough for confirm_sure_frames either.
        knock_like = dying_away and user_prob < self._cfg.transient_sure_prob
        if speech:
            self._silence_run = 0
            if user_prob >= self._cfg.confirm_user_prob:
                if knock_like and self._held < self._cfg.transient_hold_frames:
                    self._held += 1
                else:
                    self._evidence += self._held + 1
                    self._held = 0
            elif self._held:
                self._evidence = self._held = 0
            self._weak_run = 0 if talking >= self._cfg.tentative_user_prob else self._weak_run + 1
        else:
            self._silence_run += 1
            if self._held:
                self._evidence = self._held = 0
        sure = speech and user_prob >= self._cfg.confirm_sure_prob and not knock_like
        self._sure_run = self._sure_run + 1 if sure else 0
        if self._evidence >= needed or self._sure_run >= sure_needed:
            self.phase = Phase.CONFIRMED
            self._transient.end()
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
        self._transient.end()
        self._rearmed = reason == "silence"  # after echo or timeout the sound is still going
        self._reset_counts()
        return decision
