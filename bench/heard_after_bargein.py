"""What the recognizer makes of the user's words after a barge-in, by echo level.

    .venv/bin/python bench/heard_after_bargein.py [--jobs 2] [--quick]

Every interruption of the replay set runs through `device.replay.replay` (the whole device,
virtual clock, echo loop), as in bench/bargein.py. For each confirmed barge-in, Whisper
tiny.en transcribes the utterance the device recorded (from its pre-roll to the end of
the user's words) in four versions:
- user alone: the user's recording over the same span, no echo (the best it can be);
- raw mic: what the mic heard, the device's echo included (the recognizer's input
  before 2026-12-07);
- cancelled: the mic after the echo canceller, which is what the device gives its
  recognizer;
- cancelled, +300 ms: the same with 300 ms more pre-roll (a longer pre-roll, measured).
Prints the word error rate against what the user said and the share of exact transcripts.
On hard audio Whisper falls back to sampling (temperature > 0), so reruns differ by a few
hundredths in some cells. Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aec_compare import wer  # noqa: E402
from replay_set import ECHO_OVER_USER_DB, make_set, user_gain_for  # noqa: E402

from device.audio.wav import read_mono  # noqa: E402
from device.config import Config, SttConfig, with_overrides  # noqa: E402
from device.listen.stack import ListeningStack  # noqa: E402
from device.replay import replay  # noqa: E402
from device.stt import WhisperRecognizer, whisper_model_dir  # noqa: E402

RATE = 16000
ROOMS = ("small", "none")
EXTRA_PREROLL_S = 0.3
VERSIONS = ("user alone", "raw mic", "cancelled", f"cancelled, +{EXTRA_PREROLL_S * 1000:.0f} ms")

_whisper: WhisperRecognizer | None = None


class FrameKeepingStack(ListeningStack):
    """The device's listening stack, keeping each frame's raw and cancelled mic."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.mic: list[np.ndarray] = []
        self.clean: list[np.ndarray] = []

    def process(self, mic, ref, start_index, active):
        report = super().process(mic, ref, start_index, active)
        self.mic.append(mic)
        self.clean.append(report.clean)
        return report


def run_one(job: tuple) -> dict | None:
    """One replay; the transcripts of its barge-in utterance, or None when none was confirmed."""
    global _whisper
    scenario, level, room, seed = job
    if _whisper is None:
        _whisper = WhisperRecognizer(whisper_model_dir(SttConfig()), threads=1)
    config = with_overrides(Config(), simulation={"echo_gain_db": 0.0, "room": room, "seed": seed})
    stack = FrameKeepingStack(config)
    gain = user_gain_for(level)
    result = asyncio.run(replay(config, scenario.user_wav, scenario.answer_wav, onset_s=scenario.onset_s,
                                user_gain_db=gain, stack=stack))
    utterance = next((e for e in result.events if e["event"] == "utterance" and e["after_bargein"]), None)
    if utterance is None:
        return None
    start, end = round(utterance["start"] * RATE), round(utterance["end"] * RATE)
    mic, clean = np.concatenate(stack.mic), np.concatenate(stack.clean)
    user = read_mono(scenario.user_wav, RATE) * np.float32(10 ** (gain / 20))
    early = max(0, start - round(EXTRA_PREROLL_S * RATE))
    said = json.loads(scenario.user_wav.with_suffix(".json").read_text())["text"]
    heard = {
        VERSIONS[0]: user[start:end],
        VERSIONS[1]: mic[start:end],
        VERSIONS[2]: clean[start:end],
        VERSIONS[3]: clean[early:end],
    }
    texts = {version: _whisper.transcribe(audio) for version, audio in heard.items()}
    return {"level": level, "said": said, "name": scenario.name, "texts": texts,
            "wer": {version: wer(said, text) for version, text in texts.items()}}


def main() -> None:
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="2 interruptions per answer")
    parser.add_argument("--show", action="store_true", help="print every transcript")
    args = parser.parse_args()

    interrupts, _ = make_set(per_answer=2 if args.quick else 6)
    jobs = [(scenario, level, ROOMS[i % 2], i) for level in ECHO_OVER_USER_DB for i, scenario in enumerate(interrupts)]
    started = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(run_one, jobs))
    elapsed = time.perf_counter() - started

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{len(jobs)} replays in {elapsed:.0f} s with {args.jobs} jobs; Whisper tiny.en\n")
    print(f"{len(interrupts)} interruptions per echo level; WER of the barge-in utterance against what the user "
          "said (exact: share with WER 0)")
    header = f"{'echo-user':>9} | {'utterances':>10} | " + " | ".join(f"{v:>20}" for v in VERSIONS)
    print(header)
    print("-" * len(header))
    for level in ECHO_OVER_USER_DB:
        done = [r for r in rows if r is not None and r["level"] == level]
        cells = []
        for version in VERSIONS:
            errors = [r["wer"][version] for r in done]
            exact = sum(1 for e in errors if e == 0) / max(1, len(errors))
            cells.append(f"{np.mean(errors) if errors else float('nan'):5.2f}, exact {exact:4.2f}".rjust(20))
        print(f"{level:+7.0f}dB | {len(done):>4} of {len(interrupts):<2} | " + " | ".join(cells))
    if args.show:
        for r in rows:
            if r is not None:
                print(f"\n{r['name']} {r['level']:+.0f} dB: said {r['said']!r}")
                for version, text in r["texts"].items():
                    print(f"  {version:>20}: {text!r}")


if __name__ == "__main__":
    main()
