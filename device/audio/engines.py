"""What the audio threads run: copy, apply gain, count, signal. No I/O, no logging.

`CaptureEngine.push` and `PlaybackEngine.render` are called from PortAudio's callback
thread (or, in the simulated backend, from the virtual clock). They only touch
preallocated buffers and plain counters, and tell the event loop that something
changed through a `wake` callable (usually a `call_soon_threadsafe` wrapper).
Everything the loop asks of playback (duck, fade, flush) travels as commands on a
deque, which the render thread applies at the start of its next block, so a fade
starts within one period.
"""

from __future__ import annotations

from collections import deque
from typing import Callable

import numpy as np

from .gain import GainEnvelope, db_to_gain
from .ringbuffer import RingBuffer

Wake = Callable[[], None]

_INT16_SCALE = np.float32(1.0 / 32768.0)


def _no_wake() -> None:
    return None


class StampRing:
    """Recent (stream position, clock time) pairs written by an audio thread."""

    def __init__(self, capacity: int = 64) -> None:
        self._positions = np.zeros(capacity, dtype=np.int64)
        self._times = np.zeros(capacity, dtype=np.float64)
        self.count = 0

    def add(self, position: int, time_s: float) -> None:
        """Record that stream sample `position` is at clock time `time_s`."""
        slot = self.count % len(self._positions)
        self._positions[slot] = position
        self._times[slot] = time_s
        self.count += 1  # publish after both fields are written

    def latest(self) -> tuple[int, float] | None:
        """The newest pair, or None before the first block."""
        if self.count == 0:
            return None
        slot = (self.count - 1) % len(self._positions)
        return int(self._positions[slot]), float(self._times[slot])


class CaptureEngine:
    """Takes interleaved int16 blocks from the mic, keeps one channel as float32."""

    def __init__(
        self,
        *,
        sample_rate_hz: int,
        channels: int = 1,
        channel: int = 0,
        max_block: int = 4096,
        capacity_s: float = 4.0,
    ) -> None:
        if not 0 <= channel < channels:
            raise ValueError(f"capture channel {channel} is not in 0..{channels - 1}")
        self.sample_rate_hz = sample_rate_hz
        self.channels = channels
        self.channel = channel
        self.ring = RingBuffer(int(capacity_s * sample_rate_hz), np.float32)
        self.stamps = StampRing()
        self.wake: Wake = _no_wake
        self.blocks = 0
        self.status_flags = 0  # OR of PortAudio status flags seen (input overflow etc.)
        self._scratch = np.empty(max_block, dtype=np.float32)

    def push(self, interleaved: np.ndarray, adc_time_s: float, status: int = 0) -> None:
        """Audio thread: copy one block of interleaved int16 frames into the ring."""
        selected = interleaved[self.channel :: self.channels]
        position = self.ring._written  # noqa: SLF001 - the writer reads its own counter
        done = 0
        total = len(selected)
        while done < total:
            count = min(total - done, len(self._scratch))
            scratch = self._scratch[:count]
            np.multiply(selected[done : done + count], _INT16_SCALE, out=scratch)
            self.ring.write(scratch)
            done += count
        self.stamps.add(position, adc_time_s)
        self.status_flags |= status
        self.blocks += 1
        self.wake()


class PlaybackEngine:
    """Queued answer audio, rendered through a gain envelope, with exact counters.

    Positions are counted in samples of content written since start: `write()` returns
    the span it occupies, and `samples_played` says how far the DAC has consumed, so
    the device knows exactly how much of an answer went out.
    """

    def __init__(
        self,
        *,
        sample_rate_hz: int,
        max_block: int = 4096,
        capacity_s: float = 30.0,
        reference_capacity_s: float = 4.0,
    ) -> None:
        self.sample_rate_hz = sample_rate_hz
        self._content = RingBuffer(int(capacity_s * sample_rate_hz), np.float32)
        self._envelope = GainEnvelope(max_block)
        self._commands: deque[tuple] = deque()
        self._flush_after_fade: int | None = None  # content position to skip to
        # What went to the DAC, after gain: the echo reference for the listening stack.
        self.reference = RingBuffer(int(reference_capacity_s * sample_rate_hz), np.float32)
        self.reference_stamps = StampRing()
        self.wake: Wake = _no_wake
        self.samples_rendered = 0  # everything handed to the DAC, silence included
        self.samples_played = 0  # content samples handed to the DAC
        self.samples_flushed = 0  # content samples dropped by flush or fade-out
        self.fades_completed = 0
        self.status_flags = 0
        self.gain_trace: list[np.ndarray] | None = None  # the simulator records every gain here
        # Set by the loop, cleared by the render thread when it wakes the loop.
        self.want_space = False
        self.want_drain = False

    # -- loop side --------------------------------------------------------------------

    @property
    def written_position(self) -> int:
        """Content position just after the last sample written."""
        return self._content._written  # noqa: SLF001 - the loop is the ring's writer

    @property
    def played_position(self) -> int:
        """Content position the DAC has reached (played or dropped by a fade/flush)."""
        return self._content.total_read

    @property
    def queued_samples(self) -> int:
        """Content written and not yet rendered."""
        return self._content.available

    @property
    def free_samples(self) -> int:
        """How many samples `write` would accept now."""
        return self._content.capacity - self._content.available

    @property
    def gain(self) -> float:
        """Gain of the last rendered sample."""
        return self._envelope.gain

    def write(self, samples: np.ndarray) -> int:
        """Queue float32 samples at `sample_rate_hz`; returns how many fit."""
        return self._content.write(samples)

    def duck(self, db: float, ms: float) -> None:
        """Ramp the gain to `db` (negative) over `ms` milliseconds."""
        self._commands.append(("ramp", db_to_gain(db), self._ms(ms)))

    def unduck(self, ms: float) -> None:
        """Ramp the gain back to unity over `ms` milliseconds."""
        self._commands.append(("ramp", 1.0, self._ms(ms)))

    def fade_out(self, ms: float = 80.0) -> None:
        """Ramp to silence over `ms`, then drop everything queued before this call.

        Audio written after this call plays afterwards at unity gain.
        """
        self._commands.append(("fade", self.written_position, self._ms(ms)))

    def flush(self) -> None:
        """Drop everything queued before this call at once (a hard cut)."""
        self._commands.append(("flush", self.written_position, 0))

    def _ms(self, ms: float) -> int:
        return max(0, round(ms * self.sample_rate_hz / 1000.0))

    # -- audio thread -----------------------------------------------------------------

    def render(self, out: np.ndarray, dac_time_s: float, status: int = 0) -> None:
        """Audio thread: fill `out` (float32) with the next block for the DAC."""
        self._apply_commands()
        total = len(out)
        filled = 0
        while filled < total:
            segment = total - filled
            ramp_left = self._envelope.ramp_samples_left
            if ramp_left:
                segment = min(segment, ramp_left)
            view = out[filled : filled + segment]
            readable = segment
            if self._flush_after_fade is not None:
                # Never let audio queued after the fade command leak into the fade.
                readable = min(readable, self._flush_after_fade - self._content.total_read)
            got = self._content.read_into(view[: max(0, readable)])
            if got < segment:
                view[got:] = 0.0
            gains = self._envelope.gains(segment)
            view *= gains
            if self.gain_trace is not None:
                self.gain_trace.append(gains.copy())
            self.samples_played += got
            filled += segment
            if self._flush_after_fade is not None and self._envelope.ramp_samples_left == 0:
                self._finish_fade()
        self.reference_stamps.add(self.samples_rendered, dac_time_s)
        self.reference.write(out)
        self.samples_rendered += total
        self.status_flags |= status
        self._maybe_wake()

    def _apply_commands(self) -> None:
        while self._commands:
            kind, value, samples = self._commands.popleft()
            if kind == "ramp":
                if self._flush_after_fade is None:  # a fade in progress wins
                    self._envelope.ramp_to(value, samples)
            elif kind == "fade":
                self._flush_after_fade = value
                self._envelope.ramp_to(0.0, samples)
                if samples == 0:  # zero-length fade: nothing left to ramp
                    self._finish_fade()
            elif kind == "flush":
                self._drop_until(value)
                self._flush_after_fade = None
                self._envelope.set(1.0)

    def _finish_fade(self) -> None:
        """The fade reached silence: drop the faded answer, reset to unity gain."""
        self._drop_until(self._flush_after_fade)
        self._flush_after_fade = None
        self._envelope.set(1.0)
        self.fades_completed += 1

    def _drop_until(self, position: int) -> None:
        self.samples_flushed += self._content.skip(position - self._content.total_read)

    def _maybe_wake(self) -> None:
        wake = False
        if self.want_space and self.free_samples >= self._content.capacity // 2:
            self.want_space = False
            wake = True
        if self.want_drain and self._content.available == 0:
            self.want_drain = False
            wake = True
        if wake:
            self.wake()
