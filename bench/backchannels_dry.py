"""How often a backchannel by a voice the classifier never heard stops the device, open loop.

    .venv/bin/python bench/backchannels_dry.py [--jobs 2] [--model M.onnx ...]

Four espeak-ng voices held out from training (models/bargein/generate.py TEST_VOICES) say
"Mm-hmm.", "Uh-huh.", "Yeah." and "Okay." 3, 5 and 7 s into each of five device answers
(the tests' recorded answer and the closed-loop bench's four), added dry to the answer's
echo (small room, 24 ms output delay) at 0 and 6 dB under it: 96 backchannels per answer.
The full stack (echo canceller, VAD, classifier, policy) hears each once, with no ducking;
a confirmation means the device would have stopped instead of ducking and carrying on (the
default, `bargein.backchannels = "resume"`).

This is where the models trained on 84 device sentences, with or without restarts
(EXPERIMENTS.md, "Trained to restart"), differ from the shipped one, while the held-out
synthetic set (users in simulated rooms) and the closed loop (`bench/bargein.py`, the device
ducking) barely tell them apart. Several `--model`s are compared on the same audio. Prints
figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "models" / "bargein"))

from replay_set import answer_files  # noqa: E402

from device.audio.echo_path import EchoPath  # noqa: E402
from device.audio.wav import read_mono  # noqa: E402
from device.config import Config  # noqa: E402
from device.listen.stack import ListeningStack, load_evidence  # noqa: E402
from device.listen.vad import FRAME_SAMPLES  # noqa: E402
from device.scenarios import BACKCHANNELS, RATE_HZ, active_rms, user_says  # noqa: E402
from generate import TEST_VOICES  # noqa: E402

VOICES = ("en-gb-scotland+f2", "en-gb-scotland+m3", "en-029+f4", "en-029+m2")
assert all(("espeak", v) in TEST_VOICES for v in VOICES), "the voices must be held out from training"
WORDS = BACKCHANNELS[:4]
AT_S = (3.0, 5.0, 7.0)
ECHO_OVER_USER_DB = (0.0, 6.0)
LENGTH_S = 10.0


def answer_paths() -> list[Path]:
    """The tests' recorded answer and the closed-loop bench's four (made once with Piper)."""
    return [HERE.parent / "tests" / "recordings" / "answer.wav"] + [path for path, _ in answer_files()]


@functools.cache
def answer_audio(path: Path) -> np.ndarray:
    """An answer's first LENGTH_S seconds at 16 kHz (read once per worker process)."""
    return read_mono(path, RATE_HZ)[: int(LENGTH_S * RATE_HZ)]


@functools.cache
def backchannel(voice: str, word: str) -> np.ndarray:
    """A held-out voice saying a backchannel, dry (espeak-ng, made once per worker process)."""
    return user_says(word, voice)


def stopped(case: tuple, model: Path | None) -> bool:
    """Whether the full stack confirms a barge-in on one backchannel over one answer's echo."""
    path, voice, word, at_s, echo_over_user_db = case
    answer, words = answer_audio(path), backchannel(voice, word)
    echo = EchoPath(RATE_HZ, room="small", delay_ms=24.0, seed=5).apply(answer)
    mic = echo.copy()
    start = int(at_s * RATE_HZ)
    end = min(len(mic), start + len(words))
    mic[start:end] += words[: end - start] * (active_rms(echo) / active_rms(words) / 10 ** (echo_over_user_db / 20))
    config = Config()
    stack = ListeningStack(config, evidence=load_evidence(config, model))
    for i in range(0, len(mic) - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        report = stack.process(mic[i : i + FRAME_SAMPLES], answer[i : i + FRAME_SAMPLES], i, active=True)
        if any(d.kind == "bargein_confirmed" for d in report.decisions):
            return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append",
                        help="another classifier ONNX (an experiment; repeat to compare; default: the shipped one)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    paths = answer_paths()
    names = ["tests' answer"] + [f"bench answer {i}" for i in range(len(paths) - 1)]
    cases = [(path, voice, word, at_s, db) for path in paths for voice in VOICES for word in WORDS
             for at_s in AT_S for db in ECHO_OVER_USER_DB]
    each = len(cases) // len(paths)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{each} backchannels per answer ({len(VOICES)} held-out voices x {len(WORDS)} words x {len(AT_S)} "
          f"times x echo {' / '.join(f'{db:.0f}' for db in ECHO_OVER_USER_DB)} dB over the user); "
          "how many stopped the device:")
    print(f"{'model':<24} | " + " | ".join(f"{name:>14}" for name in names) + f" | {'all':>10}")
    with ProcessPoolExecutor(args.jobs) as pool:
        for model in args.model or [None]:
            hits = list(pool.map(functools.partial(stopped, model=model), cases, chunksize=4))
            per = [sum(hit for hit, case in zip(hits, cases) if case[0] == path) for path in paths]
            print(f"{model.name if model else 'shipped':<24} | " + " | ".join(f"{n:>8d} / {each}" for n in per)
                  + f" | {sum(hits):>4d} / {len(hits)}")


if __name__ == "__main__":
    main()
