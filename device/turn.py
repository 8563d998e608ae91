"""One conversation turn: what the user said, what the device answered, what was heard."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Protocol

import numpy as np

from .audio.speaker import PlayedSpan
from .conversation import Conversation
from .tts import Speech

Speak = Callable[[Speech], Awaitable[None]]

PREPARE = "prepare"  # marker in a turn's audio feed: the user paused, transcribe early
END = "end"  # marker: the utterance is over


@dataclass(frozen=True)
class Utterance:
    """The user's words as 16 kHz audio after the echo canceller, pre-roll included."""

    audio: np.ndarray
    start_s: float
    """Mic time of the first sample (the pre-roll's start)."""
    end_s: float
    after_bargein: bool = False
    """True when the user interrupted the device to say this."""


class Responder(Protocol):
    """Answers a transcript by calling `speak` for each piece (the Assistant: LLM + TTS)."""

    async def respond(self, transcript: str, conversation: Conversation, speak: Speak) -> None: ...


class RecordedAnswer:
    """Speaks a fixed recording: the replay harness's answer, or an announcement."""

    def __init__(self, audio: np.ndarray, sample_rate_hz: int, text: str = "") -> None:
        self._speech = Speech(np.asarray(audio, dtype=np.float32), sample_rate_hz, text)

    async def respond(self, transcript: str, conversation: Conversation, speak: Speak) -> None:
        """Play the recording."""
        await speak(self._speech)


@dataclass
class Turn:
    """Everything one turn owns: its task, its audio feed, what it has played."""

    turn_id: int
    task: asyncio.Task | None = None
    transcript: str | None = None
    played: list[tuple[PlayedSpan, Speech]] = field(default_factory=list)
    feed: list = field(default_factory=list)  # mic frames, PREPARE and END, from the loop
    fed: asyncio.Event = field(default_factory=asyncio.Event)
    span: object = None  # the OpenTelemetry span of the turn, when telemetry is on

    def give(self, item) -> None:
        """Loop side: hand the recognizer a frame or a marker."""
        self.feed.append(item)
        self.fed.set()

    async def take(self) -> list:
        """Turn side: everything handed over since the last call (waits for something)."""
        while not self.feed:
            self.fed.clear()
            await self.fed.wait()
        items, self.feed = self.feed, []
        return items

    def answer_text(self) -> str:
        """Everything the turn queued for playback."""
        return " ".join(speech.text for _, speech in self.played if speech.text)

    def heard_text(self, samples_played: int, dac_rate_hz: int) -> str:
        """The words that had gone to the DAC once `samples_played` content samples had."""
        heard = []
        for span, speech in self.played:
            if samples_played >= span.end:
                heard.append(speech.text)
            elif samples_played > span.start:
                done = int((samples_played - span.start) * speech.sample_rate_hz / dac_rate_hz)
                heard.append(speech.heard_text(done))
        return " ".join(t for t in heard if t)

    def heard_samples(self, samples_played: int) -> int:
        """Answer samples (DAC rate) that went out once `samples_played` had."""
        return sum(max(0, min(samples_played, s.end) - s.start) for s, _ in self.played)

    def answer_samples(self) -> int:
        """Answer samples (DAC rate) queued so far."""
        return sum(s.end - s.start for s, _ in self.played)
