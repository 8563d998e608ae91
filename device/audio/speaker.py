"""Loop side of playback: queue answer audio, wait for room or the end, shape the gain."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from .engines import PlaybackEngine
from .wav import resample


@dataclass(frozen=True)
class PlayedSpan:
    """Where a piece of audio sits in the playback stream (content positions, DAC rate)."""

    start: int
    end: int


class Speaker:
    """Async facade over a PlaybackEngine, used only from the event loop."""

    def __init__(self, engine: PlaybackEngine) -> None:
        self.engine = engine
        self._changed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def sample_rate_hz(self) -> int:
        """The DAC rate."""
        return self.engine.sample_rate_hz

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Let the render thread wake this loop (called once the loop runs)."""
        self._loop = loop
        self.engine.wake = self._wake_threadsafe

    def _wake_threadsafe(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._changed.set)

    async def play(self, samples: np.ndarray, sample_rate_hz: int | None = None) -> PlayedSpan:
        """Queue mono float samples (resampled to the DAC rate), waiting for room as needed."""
        if sample_rate_hz is not None and sample_rate_hz != self.sample_rate_hz:
            samples = resample(samples, sample_rate_hz, self.sample_rate_hz)
        samples = np.asarray(samples, dtype=np.float32)
        start = self.engine.written_position
        done = 0
        while done < len(samples):
            done += self.engine.write(samples[done:])
            if done < len(samples):
                self._changed.clear()
                self.engine.want_space = True
                await self._changed.wait()
        return PlayedSpan(start, start + len(samples))

    async def wait_drained(self) -> None:
        """Return once everything queued so far has gone to the DAC."""
        while self.engine.queued_samples:
            self._changed.clear()
            self.engine.want_drain = True
            await self._changed.wait()

    @property
    def samples_played(self) -> int:
        """Content samples handed to the DAC since start."""
        return self.engine.samples_played

    @property
    def played_position(self) -> int:
        """Content position the DAC has reached; compare with PlayedSpan positions."""
        return self.engine.played_position

    def duck(self, db: float, ms: float) -> None:
        """Lower the output to `db` over `ms`."""
        self.engine.duck(db, ms)

    def unduck(self, ms: float) -> None:
        """Back to full level over `ms`."""
        self.engine.unduck(ms)

    def fade_out(self, ms: float) -> None:
        """Fade to silence over `ms` and drop what is queued."""
        self.engine.fade_out(ms)

    def flush(self) -> None:
        """Drop what is queued at once."""
        self.engine.flush()
