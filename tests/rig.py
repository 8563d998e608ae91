"""The virtual audio rig: real PortAudio/ALSA devices without a sound card.

PulseAudio runs with a private socket, HOME and runtime dir, two 16 kHz null sinks
stand in for the mic and the speaker, and ALSA `file` PCMs over them (from
hardware/virtual/asound.conf) make capture read a raw file and playback write one,
paced at real time by the sinks. A low-latency `parec` on each monitor keeps the
first callback from taking over a second.

PortAudio aborts if ALSA_CONFIG_PATH changes between PyAudio instances in one
process, so code using the rig runs in a child process with `rig.env`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

HARDWARE = Path(__file__).resolve().parent.parent / "hardware" / "virtual"


def rig_available() -> str | None:
    """None when the rig can run here, else what is missing."""
    for tool in ("pulseaudio", "pactl", "parec"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (./setup.sh installs pulseaudio and pulseaudio-utils)"
    plugin_dirs = [Path("/usr/lib") / d / "alsa-lib" for d in os.listdir("/usr/lib") if "linux-gnu" in d]
    if not any((d / "libasound_module_pcm_pulse.so").exists() for d in plugin_dirs):
        return "ALSA pulse plugin missing (libasound2-plugins)"
    return None


class VirtualAudioRig:
    """Start with `with VirtualAudioRig() as rig:`; `rig.env` is the child's environment."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="voice-rig-"))
        self.mic_raw = self.dir / "mic.raw"
        self.spk_raw = self.dir / "spk.raw"
        self._procs: list[subprocess.Popen] = []
        home = self.dir / "home"
        runtime = self.dir / "runtime"
        home.mkdir()
        runtime.mkdir(mode=0o700)
        socket = self.dir / "native"
        self.env = dict(
            os.environ,
            HOME=str(home),
            XDG_RUNTIME_DIR=str(runtime),
            PULSE_SERVER=f"unix:{socket}",
            ALSA_CONFIG_PATH=str(self.dir / "asound.conf"),
        )
        (self.dir / "server.pa").write_text((HARDWARE / "server.pa").read_text().replace("@SOCKET@", str(socket)))
        (self.dir / "asound.conf").write_text(
            (HARDWARE / "asound.conf").read_text()
            .replace("@MIC_RAW@", str(self.mic_raw)).replace("@SPK_RAW@", str(self.spk_raw))
        )
        self.set_mic(np.zeros(16000, dtype=np.float32))

    def set_mic(self, samples: np.ndarray, pad_s: float = 10.0) -> None:
        """What the mic will deliver (float mono 16 kHz), followed by `pad_s` of silence.

        The file plugin returns stale data after the file ends, hence the padding.
        """
        pcm = np.clip(np.round(samples * 32768.0), -32768, 32767).astype("<i2")
        pcm = np.concatenate([pcm, np.zeros(int(pad_s * 16000), dtype="<i2")])
        self.mic_raw.write_bytes(pcm.tobytes())

    def reset_speaker(self) -> None:
        """Forget what was played so far (the next stream writes a new file)."""
        self.spk_raw.unlink(missing_ok=True)

    def played(self) -> np.ndarray:
        """Everything written to the speaker so far, as float mono 16 kHz."""
        if not self.spk_raw.exists():
            return np.zeros(0, dtype=np.float32)
        return np.frombuffer(self.spk_raw.read_bytes(), dtype="<i2").astype(np.float32) / 32768.0

    def _spawn(self, *args: str) -> subprocess.Popen:
        proc = subprocess.Popen(args, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._procs.append(proc)
        return proc

    def start(self) -> VirtualAudioRig:
        """Start PulseAudio and the monitor readers; returns once the server answers."""
        server = self._spawn("pulseaudio", "-n", "-F", str(self.dir / "server.pa"), "--daemonize=no",
                             "--exit-idle-time=-1", "--use-pid-file=no", "--disable-shm=yes")
        deadline = time.monotonic() + 15.0
        while True:
            probe = subprocess.run(["pactl", "info"], env=self.env, capture_output=True)
            if probe.returncode == 0:
                break
            if server.poll() is not None or time.monotonic() > deadline:
                err = server.stderr.read().decode(errors="replace") if server.poll() is not None else ""
                self.stop()
                raise RuntimeError(f"PulseAudio for the virtual rig did not start: {err.strip()[-500:]}")
            time.sleep(0.05)
        for sink in ("mic", "spk"):
            self._spawn("parec", "--latency-msec=10", "-d", f"{sink}.monitor")
        return self

    def stop(self) -> None:
        """Stop every process the rig started and remove its files."""
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stderr:
                proc.stderr.close()
        self._procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> VirtualAudioRig:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
