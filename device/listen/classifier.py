"""The ML barge-in classifier: a small streaming GRU on onnxruntime.

Every 32 ms it takes the frame's features (device/listen/features.py) and its own
recurrent state, and returns probabilities for three classes: nobody is talking to the
device (its own echo, noise, a TV, music), a person is talking to it, a person is
backchanneling ("mm-hmm", "yeah"). Trained on synthetic scenarios only; see
models/bargein/MODEL_CARD.md for the data, the metrics and the command that retrains it.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .features import FEATURES, FeatureExtractor, unexplained_db
from .vad import onnx_session

NONE, PERSON, BACKCHANNEL = 0, 1, 2
REWIND_FRAMES = 64
"""Frames (2 s) of its own earlier states the classifier keeps, to go back to (rewind)."""


class BargeInClassifier:
    """Evidence source: p(a person is talking to the device) per frame."""

    def __init__(self, model_path: Path, backchannels_interrupt: bool = False) -> None:
        self._session = onnx_session(model_path)
        inputs = {i.name: i for i in self._session.get_inputs()}
        self._state_shape = [d if isinstance(d, int) else 1 for d in inputs["state"].shape]
        if inputs["features"].shape[-1] != FEATURES:
            raise ModelError("classifier_mismatch", f"{model_path} takes {inputs['features'].shape[-1]} features, "
                             f"the device makes {FEATURES}; retrain it (models/bargein/retrain.sh)")
        self._features = FeatureExtractor()
        self._input = np.zeros((1, 1, FEATURES), dtype=np.float32)
        self._backchannels_interrupt = backchannels_interrupt
        self.reset()

    def reset(self) -> None:
        """Forget everything heard so far, the residual-echo model too (a new stream)."""
        self._features.reset()
        self.unexplained_db: float | None = None
        """The last frame's energy beyond the predicted echo, dB (features.unexplained_db)."""
        self.restart()

    @property
    def p_backchannel(self) -> float:
        """Probability of a backchannel in the last frame."""
        return float(self.probabilities[BACKCHANNEL])

    @property
    def p_talking(self) -> float:
        """Probability that someone, talking to the device or backchanneling, is there in the
        last frame: what ducks the device (a backchannel ducks it, then it resumes)."""
        return float(self.probabilities[PERSON] + self.probabilities[BACKCHANNEL])

    def restart(self) -> None:
        """The device starts speaking or thinking, or a barge-in was rejected for silence.

        The model was trained on 10 s stretches of device speech holding at most one
        person, each from a fresh state; a state that remembers an earlier person (the
        user's last question, a backchannel) makes it slow to believe in the next one.
        A fresh state is slow too, for about half a second: it has never met a person in
        its first 0.3 s (bench/classifier_restart.py; EXPERIMENTS.md, "A fresh state...").
        The residual-echo model in the features describes the room and carries on.
        """
        self._state = np.zeros(self._state_shape, dtype=np.float32)
        self._past: deque[np.ndarray] = deque(maxlen=REWIND_FRAMES)  # the state before each recent frame
        self.probabilities = np.array([1.0, 0.0, 0.0], dtype=np.float32)

    def rewind(self, frames: int) -> None:
        """Forget the last `frames` frames (a backchannel rejected as a barge-in): back to the
        state from before them, as if they had not been heard (device/listen/bargein.py,
        EvidenceMemory), or to the fresh state of its last restart if that came later. The
        residual-echo model in the features carries on."""
        if not 0 < frames <= REWIND_FRAMES:
            raise ValueError(f"can rewind 1..{REWIND_FRAMES} frames, not {frames}")
        if not self._past:
            return  # nothing heard since the restart
        for _ in range(min(frames, len(self._past)) - 1):
            self._past.pop()
        self._state = self._past.pop()
        self.probabilities = np.array([1.0, 0.0, 0.0], dtype=np.float32)

    def update(self, mic: np.ndarray, clean: np.ndarray, ref: np.ndarray, vad_prob: float, learn: bool) -> float:
        """Feed one frame; returns the evidence for the barge-in policy."""
        return self.update_features(self._features(mic, clean, ref, vad_prob))

    def update_features(self, features: np.ndarray) -> float:
        """Feed one frame's features (device/listen/features.py); returns the evidence."""
        self._input[0, 0] = features
        self.unexplained_db = unexplained_db(features)
        self._past.append(self._state)  # run() returns a new state array: no copy needed
        probs, self._state = self._session.run(None, {"features": self._input, "state": self._state})
        self.probabilities = probs[0, 0]
        if self._backchannels_interrupt:
            return self.p_talking
        return float(self.probabilities[PERSON])
