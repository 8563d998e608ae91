"""Silero VAD on onnxruntime: streaming speech probability for 32 ms frames at 16 kHz."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ModelError

SAMPLE_RATE_HZ = 16000
FRAME_SAMPLES = 512  # 32 ms: the frame size Silero v5+ takes at 16 kHz
_CONTEXT_SAMPLES = 64  # the model also sees the last 64 samples of the previous frame


def onnx_session(model_path: Path):
    """An onnxruntime session pinned to one intra-op and one inter-op thread."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    try:
        return onnxruntime.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as err:  # onnxruntime raises its own untyped errors
        raise ModelError("model_load", f"onnxruntime cannot load {model_path}: {err}") from err


class SileroVad:
    """Speech probability per 512-sample frame, keeping the recurrent state between calls."""

    def __init__(self, model_path: Path) -> None:
        self._session = onnx_session(model_path)
        self._sr = np.array(SAMPLE_RATE_HZ, dtype=np.int64)
        self._input = np.zeros((1, _CONTEXT_SAMPLES + FRAME_SAMPLES), dtype=np.float32)
        self.reset()

    def reset(self) -> None:
        """Forget everything heard so far."""
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._input[:] = 0.0

    def __call__(self, frame: np.ndarray) -> float:
        """Probability (0..1) that `frame` (512 float32 samples) contains speech."""
        if len(frame) != FRAME_SAMPLES:
            raise ValueError(f"VAD frames are {FRAME_SAMPLES} samples, got {len(frame)}")
        self._input[0, :_CONTEXT_SAMPLES] = self._input[0, -_CONTEXT_SAMPLES:]
        self._input[0, _CONTEXT_SAMPLES:] = frame
        prob, self._state = self._session.run(
            None, {"input": self._input, "state": self._state, "sr": self._sr}
        )
        return float(prob[0, 0])
