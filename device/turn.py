"""One conversation turn: what the user said, what the device answers, what was heard."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import AsyncIterator, Protocol

import numpy as np

from .audio.speaker import PlayedSpan


@dataclass(frozen=True)
class Utterance:
    """The user's words as 16 kHz audio, pre-roll included."""

    audio: np.ndarray
    start_s: float
    """Mic time of the first sample (the pre-roll's start)."""
    end_s: float
    after_bargein: bool = False
    """True when the user interrupted the device to say this."""


@dataclass(frozen=True)
class AnswerChunk:
    """A piece of the answer, usually one sentence, with the text it speaks."""

    audio: np.ndarray
    sample_rate_hz: int
    text: str = ""


class Responder(Protocol):
    """Turns an utterance into answer audio (STT -> LLM -> TTS in the full device)."""

    def respond(self, utterance: Utterance) -> AsyncIterator[AnswerChunk]: ...


class RecordedAnswer:
    """Speaks a fixed recording: the replay harness's answer, or an announcement."""

    def __init__(self, audio: np.ndarray, sample_rate_hz: int, text: str = "") -> None:
        self._chunk = AnswerChunk(audio, sample_rate_hz, text)

    async def respond(self, utterance: Utterance | None = None) -> AsyncIterator[AnswerChunk]:
        """Yield the recording as one chunk."""
        yield self._chunk


@dataclass
class Turn:
    """A running turn: the task that owns all its work, and what it has played."""

    turn_id: int
    task: asyncio.Task | None = None
    played: list[tuple[PlayedSpan, str]] = field(default_factory=list)
    span: object = None  # the OpenTelemetry span of the turn, when telemetry is on

    def heard_samples(self, samples_played: int) -> int:
        """Answer samples that went to the DAC before `samples_played` was read."""
        return sum(max(0, min(samples_played, s.end) - s.start) for s, _ in self.played)

    def answer_samples(self) -> int:
        """Answer samples queued so far."""
        return sum(s.end - s.start for s, _ in self.played)
