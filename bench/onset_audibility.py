"""How much of a person's onset each echo canceller lets through, on the held-out set.

    .venv/bin/python bench/onset_audibility.py [--split test] [--jobs 2] [--limit N]

For every interruption of a running device in the split (the canceller has heard 4 s of the
device; models/bargein/retrain.sh makes the split), the scenario is rendered again from its
seed twice, with the person and with nobody (the same echo and noise), and each canceller
runs on both: the device's front end (delay tracking and Speex, what the classifier hears),
and WebRTC AEC3 from `pywebrtc-audio` and from `livekit` when they are installed (not device
dependencies; they get the reference as played and find the delay themselves). Per 32 ms
window from the person's onset: the rise, in dB, of the canceller's output over what the same
canceller leaves of the echo with nobody there. The raw mic is shown too: behind the
canceller the VAD hears only its output; the classifier also has the raw mic and the
reference, but under loud echo a person rises less still in the raw mic.

Prints the median rise per window by echo level, and the interruptions that rise less than
1 dB in their first 96 ms in the raw mic and after every canceller, with how many of them the
shipped stack confirms within 200 ms (`bench/classifier_eval.py`'s full stack, open loop).
Asserts nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "models" / "bargein"))

from aec_compare import LiveKitApm, WebRtcAec3, rise_db  # noqa: E402
from classifier_eval import BINS, confirmed_ms, load_scenes, stack_rule  # noqa: E402
from generate import FRAME_SAMPLES, draw, render  # noqa: E402

from device.config import Config, load_config  # noqa: E402
from device.listen.echo_gate import EchoGate  # noqa: E402
from device.listen.stack import ListeningStack  # noqa: E402
from device.models import verified_path  # noqa: E402

WINDOWS = 8  # 32 ms windows from the onset
EARLY = 3  # the first 96 ms: "rises less than 1 dB in its first 96 ms"
QUIET_DB = 1.0
SLOW_MS = 200  # the p95 target
ECHO_BINS = BINS[:2] + [("echo 10..15 dB louder", 10.0, 15.0), ("echo 15..20 dB louder", 15.0, 20.1)]


def device_front(mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """The device's cancelled mic: a fresh front end (delay tracker, Speex) frame by frame."""
    config = Config()
    stack = ListeningStack(config, evidence=EchoGate(config.echo_gate))  # the light evidence source: not used
    return np.concatenate([stack.front(mic[i : i + FRAME_SAMPLES], ref[i : i + FRAME_SAMPLES], i)[0]
                           for i in range(0, len(mic) - FRAME_SAMPLES + 1, FRAME_SAMPLES)])


OPTIONAL = ((WebRtcAec3, "pywebrtc_audio", "pywebrtc-audio"), (LiveKitApm, "livekit", "livekit"))


def cancellers() -> dict:
    """name -> function(mic, ref) -> output: the device's, and the optional WebRTC ones installed.
    Made in each worker: livekit's native runtime does not survive a fork once used."""
    out = {"no canceller (the raw mic)": lambda mic, ref: mic, "Speex (the device's front end)": device_front}
    for cls, module, _ in OPTIONAL:
        if importlib.util.find_spec(module) is not None:
            out[cls.name] = lambda mic, ref, cls=cls: cls().process(mic, ref)
    return out


def rises(index: int) -> dict[str, tuple[list[float], float]]:
    """Per canceller, the rise (dB) of each 32 ms window from the onset of test scenario `index`,
    and of its first EARLY windows together."""
    spec = draw("test", index)
    person, nobody = render(spec), render(replace(spec, kind="none"))  # the same echo and noise
    onset = person["onset"]  # the sample where the person starts
    n = len(person["mic"]) // FRAME_SAMPLES * FRAME_SAMPLES
    out = {}
    for name, cancel in cancellers().items():
        heard = cancel(person["mic"][:n], person["ref"][:n])[:n]
        out[name] = window_rises(heard, cancel(nobody["mic"][:n], nobody["ref"][:n])[:n], onset)
    return out


def window_rises(heard: np.ndarray, left: np.ndarray, onset: int) -> tuple[list[float], float]:
    """How far `heard` rises over `left` (dB) in each 32 ms window from the sample `onset`, and
    in its first EARLY windows together."""
    return ([rise_db(heard, left, slice(onset + k * FRAME_SAMPLES, onset + (k + 1) * FRAME_SAMPLES))
             for k in range(WINDOWS)],
            rise_db(heard, left, slice(onset, onset + EARLY * FRAME_SAMPLES)))


def running_interruptions(parser: argparse.ArgumentParser) -> tuple[argparse.Namespace, Config, list[dict]]:
    """The command line (--split, --jobs, --limit and what `parser` already has), the default
    config, and the split's interruptions of a running device."""
    parser.add_argument("--split", default="test", help="a held-out split made by generate.py --split test")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--limit", type=int, help="only the first N interruptions (a quick look)")
    args = parser.parse_args()
    if not args.split.startswith("test"):
        sys.exit("--split: the scenarios are drawn again from their seeds as test scenarios; give a test split")
    config = load_config(None)
    scenes = [s for s in load_scenes(args.split, config.aec.converge_s)
              if s["kind"] == "interruption" and s["onset_frame"] >= s["warm_from"]][: args.limit]
    return args, config, scenes


def print_medians(rise: list[dict], scenes: list[dict], width: int) -> None:
    """Per echo level, the median rise of each output (the keys of `rise`'s dicts) per window."""
    for label, lo, hi in ECHO_BINS:
        rows = [r for r, s in zip(rise, scenes) if lo < s["echo_over_user_db"] <= hi]
        if not rows:
            continue
        print(f"\n{label} ({len(rows)} interruptions)   ms from the onset: "
              + " ".join(f"{k * 32:>3d}+" for k in range(WINDOWS)))
        for name in rise[0]:
            medians = [np.median([r[name][0][k] for r in rows]) for k in range(WINDOWS)]
            print(f"  {name:<{width}}" + " ".join(f"{m:4.1f}" for m in medians))


def main() -> None:
    args, config, scenes = running_interruptions(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    model = verified_path(config.bargein.classifier_model)
    names = list(cancellers())
    for cls, module, package in OPTIONAL:
        if cls.name not in names:
            print(f"skipping {cls.name}: not installed (pip install {package})")
    with ProcessPoolExecutor(args.jobs) as pool:
        rise = list(pool.map(rises, [s["index"] for s in scenes]))
    latency = [confirmed_ms(s, stack_rule(s, config, model)) for s in scenes]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; split {args.split}: {len(scenes)} interruptions "
          "of a running device (voices, rooms and device sentences never trained on)")
    print("\nmedian rise (dB) of each canceller's output over what it leaves of the same echo, "
          "per 32 ms from the onset")
    print_medians(rise, scenes, 40)
    quiet = [k for k, r in enumerate(rise) if max(r[name][1] for name in names) < QUIET_DB]
    fast = sum(1 for k in quiet if latency[k] is not None and latency[k] <= SLOW_MS)
    print(f"\n{len(quiet)} of {len(scenes)} interruptions rise less than {QUIET_DB:.0f} dB in their first "
          f"{EARLY * 32} ms in every signal above; echo over the user: median "
          f"{np.median([scenes[k]['echo_over_user_db'] for k in quiet]) if quiet else float('nan'):+.1f} dB; "
          f"the shipped stack confirms {fast} of them within {SLOW_MS} ms")


if __name__ == "__main__":
    main()
