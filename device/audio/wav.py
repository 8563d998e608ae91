"""Reading and writing WAV files, with errors that say what is wrong and how to fix it.

Reads PCM 8/16/24/32-bit and IEEE float 32/64-bit, plain or WAVE_FORMAT_EXTENSIBLE,
any sample rate and channel count, using the standard library and numpy only.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from ..errors import AudioInputError

_PCM = 1
_FLOAT = 3
_EXTENSIBLE = 0xFFFE


@dataclass(frozen=True)
class Audio:
    """Samples as float32 in [-1, 1], shape (frames, channels)."""

    samples: np.ndarray
    sample_rate_hz: int

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate_hz

    def mono(self) -> np.ndarray:
        """Channels averaged to one, float32."""
        if self.samples.shape[1] == 1:
            return self.samples[:, 0].copy()
        return self.samples.mean(axis=1, dtype=np.float32)


def read_wav(path: str | Path) -> Audio:
    """Read a WAV file; raises AudioInputError naming the problem and the fix."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise AudioInputError("audio_missing", f"{path}: no such file") from None
    except OSError as err:
        raise AudioInputError("audio_unreadable", f"{path}: cannot read ({err.strerror})") from None
    return parse_wav(data, path)


def parse_wav(data: bytes, path: str | Path = "<bytes>") -> Audio:
    """Parse WAV file contents (`path` only names it in error messages)."""
    hint = "convert it with: sox INPUT -b 16 OUTPUT.wav"
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioInputError("audio_not_wav", f"{path}: not a RIFF/WAVE file; {hint}")
    fmt = None
    payload = None
    offset = 12
    while offset + 8 <= len(data):
        chunk_id = data[offset : offset + 4]
        (size,) = struct.unpack_from("<I", data, offset + 4)
        body = data[offset + 8 : offset + 8 + size]
        if chunk_id == b"fmt ":
            fmt = body
        elif chunk_id == b"data":
            payload = body  # a truncated file still gives what is there
            break
        offset += 8 + size + (size & 1)
    if fmt is None or len(fmt) < 16:
        raise AudioInputError("audio_bad_header", f"{path}: WAV has no valid 'fmt ' chunk; {hint}")
    if payload is None:
        raise AudioInputError("audio_bad_header", f"{path}: WAV has no 'data' chunk; {hint}")
    tag, channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == _EXTENSIBLE and len(fmt) >= 26:
        (tag,) = struct.unpack_from("<H", fmt, 24)  # first two bytes of the sub-format GUID
    if channels == 0 or rate == 0 or block_align == 0:
        raise AudioInputError("audio_bad_header", f"{path}: WAV header says {channels} channels at {rate} Hz")
    frames = len(payload) // block_align
    raw = payload[: frames * block_align]
    width = bits // 8
    if tag == _PCM and bits == 8:
        samples = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif tag == _PCM and bits == 16:
        samples = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif tag == _PCM and bits == 24:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        ints = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8
        samples = ints.astype(np.float32) / 8388608.0
    elif tag == _PCM and bits == 32:
        samples = (np.frombuffer(raw, "<i4").astype(np.float64) / 2147483648.0).astype(np.float32)
    elif tag == _FLOAT and bits in (32, 64):
        samples = np.frombuffer(raw, "<f4" if bits == 32 else "<f8").astype(np.float32)
    else:
        raise AudioInputError(
            "audio_unsupported_format",
            f"{path}: WAV format tag {tag} with {bits}-bit samples is not supported; {hint}",
        )
    if width * channels != block_align:
        raise AudioInputError("audio_bad_header", f"{path}: WAV block align {block_align} does not match")
    return Audio(samples.reshape(-1, channels), rate)


def to_pcm16(samples: np.ndarray) -> np.ndarray:
    """Float samples in -1..1 as 16-bit little-endian PCM (rounded, clipped)."""
    return np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2")


def write_wav(path: str | Path, samples: np.ndarray, sample_rate_hz: int) -> None:
    """Write float samples (frames,) or (frames, channels) as 16-bit PCM."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 1:
        samples = samples[:, None]
    pcm = to_pcm16(samples)
    channels = samples.shape[1]
    body = pcm.tobytes()
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", 36 + len(body), b"WAVE",
        b"fmt ", 16, _PCM, channels, sample_rate_hz,
        sample_rate_hz * channels * 2, channels * 2, 16,
        b"data", len(body),
    )  # fmt: skip
    Path(path).write_bytes(header + body)


def resample(samples: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Resample a whole mono float32 signal (soxr, high quality)."""
    if from_hz == to_hz:
        return np.asarray(samples, dtype=np.float32)
    return soxr.resample(np.asarray(samples, dtype=np.float32), from_hz, to_hz).astype(np.float32)


def read_mono(path: str | Path, sample_rate_hz: int) -> np.ndarray:
    """A WAV file as mono float32 at `sample_rate_hz`."""
    audio = read_wav(path)
    return resample(audio.mono(), audio.sample_rate_hz, sample_rate_hz)
