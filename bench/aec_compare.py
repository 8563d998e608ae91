"""Echo cancellers from PyPI, side by side on the device's own scenarios.

    .venv/bin/python bench/aec_compare.py [--per-answer 3]

Mixes: the device's answers (Piper) through the simulated loudspeaker and room, the user
(espeak-ng voices) talking over them at echo levels 0, +10 and +20 dB above the user,
pink noise. Each canceller gets the same reference, shifted by the delay the device's
own estimator (GCC-PHAT) finds. Prints per canceller and echo level:
- ERLE: echo reduction on the echo-only part, after 2 s of convergence;
- WER: Whisper tiny.en's word error rate on the user's words from the canceller's output
  (double talk: the echo is still playing), against what the user said;
- rise: how far the canceller's output rises, in the user's first 300 ms, above what the
  same canceller (started afresh) leaves of the same echo with nobody talking: what a
  barge-in detector behind it has to go on (bench/onset_audibility.py: per 32 ms, on the
  held-out scenarios);
- CPU: thread time per second of audio.
Engines not installed are skipped (pyaec, pywebrtc-audio, livekit are not device deps).
"""

from __future__ import annotations

import argparse
import json
import warnings
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from replay_set import make_set, user_gain_for  # noqa: E402

from device.audio.echo_path import EchoPath  # noqa: E402
from device.audio.wav import read_mono  # noqa: E402
from device.config import SttConfig  # noqa: E402
from device.listen.aec import DelayEstimator, SpeexCanceller  # noqa: E402
from device.stt import WhisperRecognizer, whisper_model_dir  # noqa: E402

RATE = 16000
BLOCK = 512
ONSET_S = 0.3  # the rise's window from the user's onset (bench/onset_audibility.py: per 32 ms)


class PyAec:
    name = "pyaec (Rust port of Speex)"

    def __init__(self):
        import pyaec

        self._aec = pyaec.Aec(256, 3200, RATE, False)

    def process(self, mic, ref):
        m, r = (np.clip(x * 32767, -32768, 32767).astype(np.int16) for x in (mic, ref))
        out = []
        for i in range(0, len(m), 256):
            out += self._aec.cancel_echo(m[i : i + 256].tolist(), r[i : i + 256].tolist())
        return np.array(out, dtype=np.float32) / 32768


class WebRtcAec3:
    name = "pywebrtc-audio (WebRTC AEC3)"

    def __init__(self):
        import pywebrtc_audio

        self._aec = pywebrtc_audio.EchoCanceller(sample_rate=RATE, num_channels=1)

    def process(self, mic, ref):
        m, r = (np.clip(_padded(x, 160) * 32767, -32768, 32767).astype(np.int16) for x in (mic, ref))
        out = [np.asarray(self._aec.process(m[i : i + 160], r[i : i + 160])).reshape(-1)
               for i in range(0, len(m), 160)]
        return np.concatenate(out)[: len(mic)].astype(np.float32) / 32768


class LiveKitApm:
    name = "livekit AudioProcessingModule (AEC3)"

    def __init__(self):
        from livekit import rtc

        self._rtc = rtc
        self._apm = rtc.AudioProcessingModule(echo_cancellation=True)

    def process(self, mic, ref):
        rtc = self._rtc
        n = len(mic)
        mic, ref = _padded(mic, 160), _padded(ref, 160)
        out = []
        for i in range(0, len(mic), 160):
            far = rtc.AudioFrame((np.clip(ref[i : i + 160] * 32767, -32768, 32767)).astype(np.int16).tobytes(), RATE, 1, 160)
            near = rtc.AudioFrame((np.clip(mic[i : i + 160] * 32767, -32768, 32767)).astype(np.int16).tobytes(), RATE, 1, 160)
            self._apm.process_reverse_stream(far)
            self._apm.process_stream(near)
            out.append(np.frombuffer(near.data, dtype=np.int16).astype(np.float32) / 32768)
        return np.concatenate(out)[:n]


class Speex:
    name = "Speex (libspeexdsp)"

    def __init__(self):
        self._aec = SpeexCanceller(filter_ms=200)

    def process(self, mic, ref):
        return np.concatenate([self._aec.process(mic[i : i + BLOCK], ref[i : i + BLOCK])
                               for i in range(0, len(mic), BLOCK)])


class NoAec:
    name = "no canceller (raw mic)"

    def process(self, mic, ref):
        return mic


def rise_db(heard: np.ndarray, left: np.ndarray, span: slice) -> float:
    """How far `heard` (a person and the echo) rises over `left` (the echo alone) in `span`, dB."""
    return float(10 * np.log10(np.mean(heard[span] ** 2) / (np.mean(left[span] ** 2) + 1e-12)))


def _padded(x: np.ndarray, block: int) -> np.ndarray:
    return np.pad(x, (0, -len(x) % block))


def engines():
    out = []
    for cls in (NoAec, Speex, PyAec, WebRtcAec3, LiveKitApm):
        try:
            cls()
            out.append(cls)
        except Exception as err:  # noqa: BLE001 - an engine that is not installed is skipped
            print(f"skipping {cls.name}: {type(err).__name__}: {err}")
    return out


def wer(reference: str, hypothesis: str) -> float:
    ref = re.sub(r"[^a-z ]", "", reference.lower()).split()
    hyp = re.sub(r"[^a-z ]", "", hypothesis.lower()).split()
    d = np.arange(len(hyp) + 1)
    for i, r in enumerate(ref, 1):
        prev, d[0] = d.copy(), i
        for j, h in enumerate(hyp, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (r != h))
    return d[len(hyp)] / max(1, len(ref))


def main() -> None:
    warnings.filterwarnings("ignore", category=RuntimeWarning)  # empty spans give NaN, shown as nan
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-answer", type=int, default=3)
    args = parser.parse_args()
    interrupts, _ = make_set(per_answer=6)
    interrupts = [s for i, s in enumerate(interrupts) if i % 6 < args.per_answer]
    stt = WhisperRecognizer(whisper_model_dir(SttConfig()), threads=2)
    classes = engines()
    rows = []
    for level in (0.0, 10.0, 20.0):
        for k, sc in enumerate(interrupts):
            answer = read_mono(sc.answer_wav, RATE)
            user = read_mono(sc.user_wav, RATE)
            n = min(len(answer), len(user))
            answer, user = answer[:n], user[:n]
            meta = json.loads(sc.user_wav.with_suffix(".json").read_text())
            user = user * np.float32(10 ** (user_gain_for(level) / 20))
            echo = EchoPath(RATE, room=("small", "none")[k % 2], gain_db=0.0, seed=k).apply(answer)
            mic = echo + user
            estimator = DelayEstimator()
            for i in range(0, n - BLOCK + 1, BLOCK):
                estimator.update(mic[i : i + BLOCK], answer[i : i + BLOCK])
            shift = max(0, (estimator.delay_samples or 0) - 128)  # 8 ms margin: keep it causal
            ref = np.concatenate([np.zeros(shift, np.float32), answer[: n - shift]])
            n = (n // BLOCK) * BLOCK
            onset = sc.onset_s
            user_span = slice(int((onset - 0.3) * RATE), min(n, int((onset + 2.5) * RATE)))
            echo_span = slice(2 * RATE, int((onset - 0.3) * RATE))
            onset_span = slice(int(onset * RATE), min(n, int((onset + ONSET_S) * RATE)))
            for cls in classes:
                aec = cls()
                t0 = time.thread_time()
                out = aec.process(mic[:n], ref[:n])
                cpu = (time.thread_time() - t0) / (n / RATE)
                out = out[:n]
                echo_power = np.mean(echo[echo_span] ** 2)
                erle = 10 * np.log10(echo_power / (np.mean(out[echo_span] ** 2) + 1e-12)) if echo_span.stop > echo_span.start else float("nan")
                left = cls().process(echo[:n], ref[:n])[:n]  # what it leaves of the echo alone
                rows.append({"level": level, "engine": cls.name, "erle": erle, "rise": rise_db(out, left, onset_span),
                             "cpu_ms": cpu * 1000,
                             "wer": wer(meta["text"], stt.transcribe(out[user_span])),
                             "delay_ms": (estimator.delay_samples or 0) / 16})
            rows.append({"level": level, "engine": "the user alone (no echo at all)", "erle": float("nan"),
                         "rise": float("nan"), "cpu_ms": 0.0,
                         "wer": wer(meta["text"], stt.transcribe(user[user_span])), "delay_ms": 0.0})
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {len(interrupts)} double-talk scenarios per echo level "
          f"(6 voices, rooms small/none); delay found by GCC-PHAT: "
          f"{np.median([r['delay_ms'] for r in rows if r['delay_ms']]):.1f} ms median (true: 24 ms + speaker + room)\n")
    names = list(dict.fromkeys(r["engine"] for r in rows))
    print(f"{'canceller':<38} | " + " | ".join(f"echo +{int(l):>2} dB: ERLE  WER  rise" for l in (0, 10, 20))
          + " | CPU ms per s")
    for name in names:
        cells = []
        for level in (0.0, 10.0, 20.0):
            sel = [r for r in rows if r["engine"] == name and r["level"] == level]
            erle, wer_, rise = (np.nanmedian([r["erle"] for r in sel]), np.mean([r["wer"] for r in sel]),
                                np.nanmedian([r["rise"] for r in sel]))
            cells.append(f"       {erle:5.1f} {wer_:5.2f} {rise:5.1f}")
        cpu = np.mean([r["cpu_ms"] for r in rows if r["engine"] == name])
        print(f"{name:<38} | " + " | ".join(cells) + f" | {cpu:8.1f}")
    print("\nERLE: median dB of echo removed (echo-only part); WER: mean word error rate of Whisper on the user's "
          "words while the echo plays (lower is better); rise: median dB by which the output rises in the user's "
          f"first {ONSET_S * 1000:.0f} ms above what the canceller leaves of the echo alone (higher: the onset "
          "is easier to hear)")


if __name__ == "__main__":
    main()
