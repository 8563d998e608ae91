"""CPU cost of the listening stack per second of audio (real-time factor), one thread.

    .venv/bin/python bench/listening_cpu.py [--seconds 60]

Runs the full stack (delay tracking, Speex echo canceller, Silero VAD, the barge-in
classifier, segmenter and policy) over device echo with a user talking over it, as
`detect` does, and reports thread CPU time (time.thread_time, so other load on the
machine does not count) per stage. Prints figures only.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from device.audio.echo_path import EchoPath  # noqa: E402
from device.audio.wav import read_mono  # noqa: E402
from device.config import Config  # noqa: E402
from device.listen.stack import ListeningStack, decide  # noqa: E402
from device.listen.vad import FRAME_SAMPLES  # noqa: E402

RECORDINGS = Path(__file__).resolve().parent.parent / "tests" / "recordings"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="audio to process")
    args = parser.parse_args()

    answer = read_mono(RECORDINGS / "answer.wav", 16000)
    user = read_mono(RECORDINGS / "interrupt_f3.wav", 16000)[: len(answer)]
    mic = EchoPath(16000).apply(answer)[: len(user)] + user
    ref = answer[: len(mic)]
    repeats = int(np.ceil(args.seconds * 16000 / len(mic)))
    mic, ref = np.tile(mic, repeats), np.tile(ref, repeats)
    frames = len(mic) // FRAME_SAMPLES

    stack = ListeningStack(Config())
    stages = {"align (delay tracking)": 0.0, "echo canceller": 0.0, "vad": 0.0, "classifier": 0.0,
              "segmenter + policy": 0.0}
    start_all = time.thread_time()
    for i in range(frames):
        sl = slice(i * FRAME_SAMPLES, (i + 1) * FRAME_SAMPLES)
        m, r = mic[sl], ref[sl]
        t0 = time.thread_time()
        for_canceller, lined_up = stack.align(m, r, i * FRAME_SAMPLES)
        t1 = time.thread_time()
        clean = stack.canceller.process(m, for_canceller)
        t2 = time.thread_time()
        p = stack.vad(clean)
        t3 = time.thread_time()
        q = stack.evidence.update(m, clean, lined_up, p, True)
        t4 = time.thread_time()
        stack.segmenter.update(i * 0.032, p)
        decide(stack.policy, stack.memory, stack.evidence, i * 0.032, p, q, active=True, cautious=False, playing=True)
        t5 = time.thread_time()
        for name, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            stages[name] += dt
    total = time.thread_time() - start_all
    audio_s = frames * FRAME_SAMPLES / 16000

    # The same through ListeningStack.process, as the device and `detect` call it.
    stack = ListeningStack(Config())
    t0 = time.thread_time()
    for i in range(frames):
        sl = slice(i * FRAME_SAMPLES, (i + 1) * FRAME_SAMPLES)
        stack.process(mic[sl], ref[sl], i * FRAME_SAMPLES, active=True)
    whole = time.thread_time() - t0

    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; {audio_s:.0f} s of audio, {frames} frames of 32 ms")
    for name, seconds in stages.items():
        print(f"  {name:<20} {seconds / frames * 1000:7.3f} ms/frame   RTF {seconds / audio_s:.4f}")
    print(f"  {'all stages':<20} {total / frames * 1000:7.3f} ms/frame   RTF {total / audio_s:.4f}")
    print(f"  {'ListeningStack':<20} {whole / frames * 1000:7.3f} ms/frame   RTF {whole / audio_s:.4f}  (target <= 0.01)")


if __name__ == "__main__":
    main()
