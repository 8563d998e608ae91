"""The VAD segmenter on synthetic probabilities."""

from device.config import VadConfig
from device.listen.segmenter import FRAME_S, VadSegmenter


def boundaries(probs, **cfg):
    seg = VadSegmenter(VadConfig(**cfg))
    out = []
    for i, p in enumerate(probs):
        b = seg.update(i * FRAME_S, p)
        if b:
            out.append((i, b.kind, round(b.onset_s / FRAME_S)))
    return out


def test_start_needs_min_speech_and_reports_true_onset():
    probs = [0.1] * 3 + [0.9] * 5
    assert boundaries(probs, min_speech_ms=64) == [(4, "speech_start", 3)]


def test_short_blip_is_not_speech():
    assert boundaries([0.1, 0.9, 0.1, 0.1], min_speech_ms=64) == []


def test_end_needs_min_silence_and_hysteresis_holds():
    probs = [0.9] * 4 + [0.4] * 10 + [0.1] * 12  # 0.4 is above the 0.35 offset: still speech
    out = boundaries(probs, min_speech_ms=64, min_silence_ms=320)
    assert out == [(1, "speech_start", 0), (23, "speech_end", 14)]
