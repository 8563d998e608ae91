"""File-backed audio with a virtual clock and a closed echo loop.

Every tick the simulated DAC renders one block from the same PlaybackEngine the real
backend uses; that block goes through the echo path (loudspeaker, room, gain, delay)
and is added to the user's recording and a little noise; the sum, quantised to int16
like an ADC would, is pushed into the same CaptureEngine. Then the loop gets to run
until it has consumed the block. Nothing depends on wall time, so a run is exactly
repeatable and as fast as the CPU allows; `realtime=True` paces it to the wall clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

import numpy as np
import soxr

from ..config import AudioConfig, SimulationConfig
from .echo_path import EchoPath
from .engines import CaptureEngine, PlaybackEngine

_LOGGER = logging.getLogger(__name__)

MIC_RATE_HZ = 16000


class SimulatedBackend:
    """Plays into a buffer and captures `mic_input` + the device's own echo."""

    align_by_clock = False  # render and capture happen in lock-step: no clock to align

    def __init__(
        self,
        mic_input: np.ndarray,
        *,
        audio: AudioConfig,
        simulation: SimulationConfig,
        tail_s: float = 1.0,
        realtime: bool = False,
        echo: bool = True,
    ) -> None:
        self._sim = simulation
        self.realtime = realtime
        self.tick_mic = round(MIC_RATE_HZ * simulation.tick_ms / 1000)
        self.tick_dac = round(audio.playback_rate_hz * simulation.tick_ms / 1000)
        self.mic_input = np.concatenate([mic_input.astype(np.float32), np.zeros(round(tail_s * MIC_RATE_HZ), np.float32)])
        self.capture = CaptureEngine(sample_rate_hz=MIC_RATE_HZ, max_block=self.tick_mic)
        self.playback = PlaybackEngine(sample_rate_hz=audio.playback_rate_hz, max_block=self.tick_dac)
        self.playback.gain_trace = []  # the exact gain of every DAC sample, for the figures
        self.echo_path = (
            EchoPath(MIC_RATE_HZ, room=simulation.room, gain_db=simulation.echo_gain_db,
                     delay_ms=simulation.output_delay_ms, seed=simulation.seed)
            if echo else None
        )
        self._to_mic_rate = (
            None if audio.playback_rate_hz == MIC_RATE_HZ
            else soxr.ResampleStream(audio.playback_rate_hz, MIC_RATE_HZ, 1, dtype="float32")
        )
        self._echo_fifo = np.zeros(0, dtype=np.float32)
        self._noise = np.random.default_rng(simulation.seed)
        self._out_blocks: list[np.ndarray] = []
        self.now_s = 0.0  # the virtual clock
        self.ticks = 0

    @property
    def output(self) -> np.ndarray:
        """Everything the simulated DAC received, at the playback rate."""
        return np.concatenate(self._out_blocks) if self._out_blocks else np.zeros(0, np.float32)

    @property
    def gains(self) -> np.ndarray:
        """The gain the DAC applied to every output sample."""
        trace = self.playback.gain_trace
        return np.concatenate(trace) if trace else np.zeros(0)

    def _echo_of(self, block: np.ndarray) -> np.ndarray:
        at_mic_rate = block if self._to_mic_rate is None else self._to_mic_rate.resample_chunk(block)
        if self.echo_path is not None:
            self._echo_fifo = np.concatenate([self._echo_fifo, self.echo_path.process(at_mic_rate)])
        else:
            self._echo_fifo = np.concatenate([self._echo_fifo, np.zeros(len(at_mic_rate), np.float32)])
        echo = np.zeros(self.tick_mic, dtype=np.float32)
        take = min(self.tick_mic, len(self._echo_fifo))  # the resampler starts a few samples late
        echo[self.tick_mic - take :] = self._echo_fifo[:take]
        self._echo_fifo = self._echo_fifo[take:]
        return echo

    def tick(self) -> None:
        """Advance the virtual clock by one tick: render, echo, capture."""
        out = np.zeros(self.tick_dac, dtype=np.float32)
        self.playback.render(out, self.now_s)
        self._out_blocks.append(out)
        start = self.ticks * self.tick_mic
        mic = self.mic_input[start : start + self.tick_mic]
        mic = np.pad(mic, (0, self.tick_mic - len(mic))) + self._echo_of(out)
        if self._sim.noise_db > -120:
            mic = mic + self._noise.standard_normal(self.tick_mic).astype(np.float32) * np.float32(10 ** (self._sim.noise_db / 20))
        pcm = np.clip(np.round(mic * 32768.0), -32768, 32767).astype(np.int16)
        self.capture.push(pcm, self.now_s)
        self.ticks += 1
        self.now_s = self.ticks * self.tick_mic / MIC_RATE_HZ

    @property
    def finished(self) -> bool:
        """True once the whole mic input has been captured."""
        return self.ticks * self.tick_mic >= len(self.mic_input)

    def check(self) -> None:
        """Nothing runs on another thread here; present for the backend interface."""

    async def run(self, on_audio: Callable[[], None], busy: Callable[[], bool] = lambda: False) -> None:
        """Tick until the mic input is used up, letting the loop consume each block.

        While `busy()` says the device is computing (recognising, waiting for the LLM,
        synthesising) the clock keeps pace with the wall clock, so that work takes as
        long in virtual time as it really does; otherwise it runs as fast as it can.
        """
        anchor: tuple[float, float] | None = (time.monotonic(), 0.0) if self.realtime else None
        while not self.finished:
            self.tick()
            on_audio()
            # Let the tasks the block woke (playback writers, the turn) run before the next tick.
            for _ in range(3):
                await asyncio.sleep(0)
            if self.realtime or busy():
                if anchor is None:
                    anchor = (time.monotonic(), self.now_s)
                lag = (self.now_s - anchor[1]) - (time.monotonic() - anchor[0])
                if lag > 0:
                    await asyncio.sleep(lag)
            else:
                anchor = None
