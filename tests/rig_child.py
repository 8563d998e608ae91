"""Runs inside the virtual rig's environment (a child process): the real PyAudio backend.

Captures for `seconds` (after the first callback) while playing `play.raw` (float32, 16 kHz) and, at `fade_at_s`
after the first sample played, fades out. Prints one JSON object: what was captured,
how fast the callbacks came, and the backend's counters.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np

from device.audio.frontend import AudioFrontEnd
from device.audio.pyaudio_backend import PyAudioBackend
from device.config import AudioConfig


async def main(out_dir: Path, seconds: float, fade_at_s: float, fade_ms: float) -> dict:
    config = AudioConfig(capture_device="mic", capture_rate_hz=16000, playback_device="spk",
                         playback_rate_hz=16000, capture_block_ms=10, playback_block_ms=10)
    backend = PyAudioBackend(config)
    frontend = AudioFrontEnd(backend.capture, backend.playback)
    play = np.fromfile(out_dir / "play.raw", dtype=np.float32)
    captured: list[np.ndarray] = []
    first_callback: list[float] = []
    faded: list[int] = []

    def on_audio() -> None:
        if not first_callback:
            first_callback.append(time.monotonic())
        for mic, _ref, _start in frontend.frames():
            captured.append(mic)
        played = backend.playback.samples_played
        if not faded and played >= fade_at_s * 16000:
            backend.playback.fade_out(fade_ms)
            faded.append(played)

    backend.playback.write(play)
    started = time.monotonic()
    task = asyncio.create_task(backend.run(on_audio))
    while not first_callback and not task.done():  # opening the devices takes a second or two
        await asyncio.sleep(0.01)
    await asyncio.sleep(seconds)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    mic = np.concatenate(captured) if captured else np.zeros(0, np.float32)
    mic.astype(np.float32).tofile(out_dir / "captured.raw")
    elapsed = time.monotonic() - first_callback[0] if first_callback else 0.0
    return {
        "captured_samples": int(len(mic)),
        "capture_blocks": backend.capture.blocks,
        "seconds_since_first_callback": elapsed,
        "first_callback_s": (first_callback[0] - started) if first_callback else None,
        "samples_played": backend.playback.samples_played,
        "samples_flushed": backend.playback.samples_flushed,
        "fade_started_at_played": faded[0] if faded else None,
        "fades_completed": backend.playback.fades_completed,
        "overruns": backend.capture.ring.overruns,
        "reference_offset": frontend._ref_offset,  # noqa: SLF001 - reported for diagnosis
        "reference_missing_frames": frontend.ref_missing_frames,
        "capture_ring_samples": backend.capture.ring._written,  # noqa: SLF001
        "callback_errors": backend.callback_errors,
        "input_device": backend.input_device.name if backend.input_device else None,
        "output_device": backend.output_device.name if backend.output_device else None,
    }


if __name__ == "__main__":
    result = asyncio.run(main(Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])))
    print(json.dumps(result))
