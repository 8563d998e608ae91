"""`voice-device detect`: the listening stack over a recording, as if the device were speaking."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import IO

import numpy as np

from .config import Config
from .audio.wav import read_mono
from .listen.stack import ListeningStack
from .listen.vad import FRAME_SAMPLES, SAMPLE_RATE_HZ
from .telemetry import EventLog

_LOGGER = logging.getLogger(__name__)


def detect(config: Config, mic_path: str | Path, ref_path: str | Path | None, out: IO[str]) -> list[dict]:
    """Write one JSON line per event to `out`; returns the records.

    REF is what went to the DAC, sample-aligned with MIC (any rate, mono or stereo).
    After a confirmed barge-in the device would be listening; here the policy starts
    watching again once that speech has ended, so one recording can hold several.
    """
    mic = read_mono(mic_path, SAMPLE_RATE_HZ)
    ref = np.zeros_like(mic)
    if ref_path is not None:
        loaded = read_mono(ref_path, SAMPLE_RATE_HZ)
        if abs(len(loaded) - len(mic)) > SAMPLE_RATE_HZ // 10:
            _LOGGER.warning("REF is %.2f s, MIC %.2f s: they should be sample-aligned recordings of the same span",
                            len(loaded) / SAMPLE_RATE_HZ, len(mic) / SAMPLE_RATE_HZ)
        ref[: min(len(ref), len(loaded))] = loaded[: len(ref)]
    stack = ListeningStack(config)
    log = EventLog(stream=out)
    confirmed = False
    for start in range(0, len(mic) - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        frame = slice(start, start + FRAME_SAMPLES)
        report = stack.process(mic[frame], ref[frame], start, active=True)
        if report.boundary is not None:
            log.emit(report.end_s, report.boundary.kind, onset=report.boundary.onset_s)
            if report.boundary.kind == "speech_end" and confirmed:
                stack.policy.reset()
                confirmed = False
        for decision in report.decisions:
            log.emit(report.end_s, decision.kind, onset=decision.onset_s, reason=decision.reason,
                     vad=report.vad_prob, p_user=report.user_prob, margin_db=report.margin_db)
            confirmed = confirmed or decision.kind == "bargein_confirmed"
    return log.records
