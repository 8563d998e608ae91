"""Real audio: PyAudio (PortAudio/ALSA) streams in callback mode driving the engines.

The callbacks run on PortAudio's thread. They hand the block to the engine (copy,
gain, count, wake the loop) and return; exceptions there would be invisible to the
loop, so they are caught, counted and re-raised on the loop by `check()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Callable

import numpy as np

from ..config import AudioConfig
from ..errors import AudioDeviceError
from .devices import DeviceInfo, list_devices, resolve_device
from .engines import CaptureEngine, PlaybackEngine

_LOGGER = logging.getLogger(__name__)


@contextlib.contextmanager
def _quiet_stderr():
    """Hide what PortAudio's JACK/ALSA probing prints on fd 2 while it enumerates."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def open_pyaudio(config: AudioConfig):
    """A PyAudio instance; plughw device names make PortAudio list plughw PCMs."""
    import pyaudio

    if config.capture_device.startswith("plughw:") or config.playback_device.startswith("plughw:"):
        os.environ.setdefault("PA_ALSA_PLUGHW", "1")
    with _quiet_stderr():
        return pyaudio.PyAudio()


class PyAudioBackend:
    """Capture and playback streams on real (or virtual ALSA) devices."""

    align_by_clock = True

    def __init__(self, config: AudioConfig) -> None:
        self._cfg = config
        self.capture_block = round(config.capture_rate_hz * config.capture_block_ms / 1000)
        self.playback_block = round(config.playback_rate_hz * config.playback_block_ms / 1000)
        self.capture = CaptureEngine(
            sample_rate_hz=config.capture_rate_hz,
            channels=config.capture_channels,
            channel=config.capture_channel,
            max_block=max(4096, self.capture_block),
        )
        self.playback = PlaybackEngine(sample_rate_hz=config.playback_rate_hz, max_block=max(4096, self.playback_block))
        self._out_float = np.zeros(max(4096, self.playback_block), dtype=np.float32)
        self._out_int16 = np.zeros_like(self._out_float, dtype=np.int16)
        self.callback_errors = 0
        self._callback_error: BaseException | None = None
        self.input_device: DeviceInfo | None = None
        self.output_device: DeviceInfo | None = None

    # -- PortAudio thread -------------------------------------------------------------

    def _capture_callback(self, in_data, frame_count, time_info, status):
        import pyaudio

        try:
            self.capture.push(np.frombuffer(in_data, dtype=np.int16), time_info["input_buffer_adc_time"], status)
        except BaseException as err:  # noqa: BLE001 - must not escape into PortAudio
            self.callback_errors += 1
            self._callback_error = err
        return (None, pyaudio.paContinue)

    def _playback_callback(self, in_data, frame_count, time_info, status):
        import pyaudio

        out = self._out_float[:frame_count]
        pcm = self._out_int16[:frame_count]
        try:
            self.playback.render(out, time_info["output_buffer_dac_time"], status)
            np.clip(out, -1.0, 32767.0 / 32768.0, out=out)
            np.multiply(out, 32768.0, out=out)
            pcm[:] = out  # float -> int16 into the preallocated buffer
        except BaseException as err:  # noqa: BLE001
            self.callback_errors += 1
            self._callback_error = err
            pcm[:] = 0
        return (pcm.tobytes(), pyaudio.paContinue)  # PyAudio's API copies a bytes object

    # -- loop side --------------------------------------------------------------------

    def check(self) -> None:
        """Raise on the loop what a callback raised on the audio thread."""
        if self._callback_error is not None:
            err, self._callback_error = self._callback_error, None
            raise AudioDeviceError("callback_failed", f"audio callback failed ({self.callback_errors} time(s)): {err!r}") from err

    async def run(self, on_audio: Callable[[], None], busy: Callable[[], bool] | None = None) -> None:
        """Open both streams, call `on_audio` on the loop after each capture block, until cancelled.

        (`busy` is for the simulated backend's clock; real time needs no hint.)
        """
        import pyaudio

        loop = asyncio.get_running_loop()
        self.capture.wake = lambda: loop.call_soon_threadsafe(on_audio)
        pa = open_pyaudio(self._cfg)
        streams = []
        try:
            devices = list_devices(pa)
            self.input_device = resolve_device(devices, self._cfg.capture_device, direction="input", channels=self._cfg.capture_channels)
            self.output_device = resolve_device(devices, self._cfg.playback_device, direction="output", channels=1)
            _LOGGER.info("Capture: %s (%d ch at %d Hz, channel %d)", self.input_device.name,
                         self._cfg.capture_channels, self._cfg.capture_rate_hz, self._cfg.capture_channel)
            _LOGGER.info("Playback: %s (%d Hz)", self.output_device.name, self._cfg.playback_rate_hz)
            streams.append(self._open(pa, pyaudio, output=True))
            streams.append(self._open(pa, pyaudio, output=False))
            for stream in streams:
                stream.start_stream()
            while True:
                await asyncio.sleep(0.5)
                self.check()
                for stream in streams:
                    if not stream.is_active():
                        raise AudioDeviceError("stream_stopped", "an audio stream stopped (device unplugged?)")
        finally:
            self.capture.wake = lambda: None
            for stream in streams:
                with contextlib.suppress(Exception):
                    stream.stop_stream()
                    stream.close()
            pa.terminate()

    def _open(self, pa, pyaudio, *, output: bool):
        cfg = self._cfg
        device = self.output_device if output else self.input_device
        try:
            if output:
                return pa.open(format=pyaudio.paInt16, channels=1, rate=cfg.playback_rate_hz, output=True,
                               output_device_index=device.index, frames_per_buffer=self.playback_block,
                               stream_callback=self._playback_callback, start=False)
            return pa.open(format=pyaudio.paInt16, channels=cfg.capture_channels, rate=cfg.capture_rate_hz,
                           input=True, input_device_index=device.index, frames_per_buffer=self.capture_block,
                           stream_callback=self._capture_callback, start=False)
        except (OSError, ValueError) as err:
            what = "playback" if output else "capture"
            rate = cfg.playback_rate_hz if output else cfg.capture_rate_hz
            raise AudioDeviceError(
                "stream_open_failed",
                f"cannot open {what} on {device.name!r} at {rate} Hz: {err}; "
                f"try a plughw: device name (ALSA converts rates) or set audio.{what}_rate_hz to "
                f"{int(device.default_rate_hz)}",
            ) from err
