"""Barge-in policies side by side on the held-out synthetic set (voices and rooms never trained on).

    .venv/bin/python bench/classifier_eval.py [--split test] [--config FILE]

Data: models/bargein/.cache/<split>.npz from models/bargein/generate.py (per 32 ms frame:
the classifier's features, the VAD on the raw mic, labels). Open loop, like
`voice-device detect`: the device's output is not ducked, so nothing helps the policy
but what it hears. Policies:
- VAD only, Pipecat's default: speech >= 0.7 for 0.2 s on the raw mic;
- VAD only, LiveKit Agents' default: speech >= 0.5 for 0.5 s on the raw mic;
- VAD + AEC: Pipecat's rule on the echo-cancelled mic;
- full stack: AEC, VAD, the ML classifier and the device's barge-in policy.
Per echo level (echo vs user at the mic): recall (a confirmation within 1.5 s of the
onset), onset -> confirmed p50/p95, false alarms per hour of device speech (a
confirmation with nobody talking to the device: echo, noise, TV, music, knocks, before
a user's onset; a device stops at its first one, so a scenario counts at most one and
its hours of device speech end there), and how many backchannels cancelled the device.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from device.config import load_config, with_overrides  # noqa: E402
from device.listen.aec import ConvergenceWatch  # noqa: E402
from device.listen.bargein import BargeInPolicy  # noqa: E402
from device.listen.classifier import BargeInClassifier  # noqa: E402
from device.models import verified_path  # noqa: E402

FRAME_S = 0.032
BINS = [("echo <= user", -10.1, 0.0), ("echo 0..10 dB louder", 0.0, 10.0), ("echo 10..20 dB louder", 10.0, 20.1)]


def stack_rule(features: np.ndarray, playing: np.ndarray, config) -> list[int]:
    """Frames at which the full stack confirms: the classifier and the policy frame by frame,
    as on the device (device/listen/stack.py): cautious while the canceller is new (every
    scenario starts with a fresh one), the classifier restarted after each rejected
    barge-in; after a confirmation both start afresh, as when the device speaks again."""
    classifier = BargeInClassifier(verified_path(config.bargein.classifier_model),
                                   backchannels_interrupt=config.bargein.backchannels == "interrupt")
    policy = BargeInPolicy(config.bargein)
    convergence = ConvergenceWatch(config.aec.converge_s)
    out = []
    for i, frame in enumerate(features):
        evidence = classifier.update_features(frame)
        cautious = convergence.update(bool(playing[i]))
        for decision in policy.update(i * FRAME_S, float(frame[-1]), evidence, True, cautious=cautious):
            if decision.kind == "bargein_rejected":
                classifier.restart()
            elif decision.kind == "bargein_confirmed":
                out.append(i)
                policy.reset()
                classifier.restart()
    return out


def vad_rule(vad: np.ndarray, threshold: float, hold_s: float) -> list[int]:
    """Frames at which a VAD-only policy interrupts: `hold_s` of speech >= threshold."""
    need = int(np.ceil(hold_s / FRAME_S))
    out, run = [], 0
    for i, p in enumerate(vad):
        run = run + 1 if p >= threshold else 0
        if run == need:
            out.append(i)
    return out


def score(name: str, decisions: list[list[int]], scenes: list[dict], warm: bool = False) -> dict:
    """Recall, latency, false alarms per hour and backchannel cancels, per echo bin.

    `warm`: only what happens once the echo canceller has converged (after aec.converge_s
    of device speech; every scenario starts with a new canceller, a running device has
    one only after start-up): people whose onset comes later, and false alarms and
    device speech from then on.
    """
    rows = {}
    for label, lo, hi in BINS:
        sel = [i for i, s in enumerate(scenes) if lo < s["echo_over_user_db"] <= hi]
        hits, latencies, false_alarms, exposure_s, backchannels, backchannel_cancels = 0, [], 0, 0.0, 0, 0
        interruptions, speech_s = 0, 0.0
        for i in sel:
            s, frames = scenes[i], decisions[i]
            start = s["warm_from"] if warm else 0
            onset = s["onset_frame"] if s["kind"] in ("interruption", "backchannel") else len(s["ref_active"])
            if onset < start:
                continue
            # The device stops at its first false alarm: at most one per scenario, and the
            # device speech it was exposed to ends there.
            first_false = next((f for f in frames if start <= f < onset), None)
            false_alarms += first_false is not None
            heard_until = onset if first_false is None else first_false + 1
            exposure_s += float(np.sum(s["ref_active"][start:heard_until])) * FRAME_S
            speech_s += float(np.sum(s["ref_active"][start:onset])) * FRAME_S
            if s["kind"] == "interruption":
                interruptions += 1
                after = [f for f in frames if onset <= f <= onset + int(1.5 / FRAME_S)]
                if after:
                    hits += 1
                    latencies.append(((after[0] + 1) * FRAME_S - s["onset_s"]) * 1000)
            elif s["kind"] == "backchannel":
                backchannels += 1
                backchannel_cancels += any(f >= onset for f in frames)
        rows[label] = {
            "recall": hits / max(1, interruptions), "n": interruptions,
            "p50": float(np.percentile(latencies, 50)) if latencies else float("nan"),
            "p95": float(np.percentile(latencies, 95)) if latencies else float("nan"),
            "fa_per_h": false_alarms / max(1e-9, exposure_s / 3600), "fa": false_alarms, "hours": exposure_s / 3600,
            "speech_hours": speech_s / 3600,
            "backchannel_cancels": backchannel_cancels, "backchannels": backchannels,
        }
    return {"name": name, "bins": rows}


_SCENES: list[dict] = []  # the sweep's scenarios, inherited by its worker processes


def _sweep_line(job: tuple) -> str:
    config, tentative, confirm, frames, converging = job
    scenes = _SCENES
    cfg = with_overrides(config, bargein={"tentative_user_prob": tentative, "confirm_user_prob": confirm,
                                          "confirm_frames": frames, "converging_confirm_frames": converging})
    decisions = [stack_rule(s["features"], s["ref_active"], cfg) for s in scenes]
    line = f"{tentative:9.1f} {confirm:7.1f} {frames:6d} {converging:10d}"
    for warm in (False, True):
        r = score("", decisions, scenes, warm)["bins"]
        n = sum(b["n"] for b in r.values())
        recall = sum(b["recall"] * b["n"] for b in r.values()) / n
        fa = sum(b["fa"] for b in r.values()) / sum(b["hours"] for b in r.values())
        p50 = np.mean([b["p50"] for b in r.values()])
        p95 = np.mean([b["p95"] for b in r.values()])
        bc = sum(b["backchannel_cancels"] for b in r.values())
        line += f" | {recall:6.3f} {p50:5.0f} {p95:5.0f} {fa:6.1f} {bc:4d}"
    return line


def detail(decisions: list[list[int]], scenes: list[dict]) -> None:
    """Where the full stack is slow or wrong: latency per interruption text, and every false alarm."""
    by_text: dict[str, list[float]] = {}
    misses: dict[str, int] = {}
    for s, frames in zip(scenes, decisions):
        if s["kind"] != "interruption" or s["onset_frame"] < s["warm_from"]:
            continue
        after = [f for f in frames if s["onset_frame"] <= f <= s["onset_frame"] + int(1.5 / FRAME_S)]
        if after:
            by_text.setdefault(s["text"], []).append(((after[0] + 1) * FRAME_S - s["onset_s"]) * 1000)
        else:
            misses[s["text"]] = misses.get(s["text"], 0) + 1
    print("\nfull stack, converged canceller: onset -> confirmed per interruption, slowest first")
    print(f"  {'text':<40} {'n':>3} {'missed':>6} {'p50 ms':>7} {'max ms':>7}")
    for text in sorted(by_text, key=lambda t: -np.median(by_text[t])):
        v = by_text[text]
        print(f"  {text:<40} {len(v):3d} {misses.get(text, 0):6d} {np.median(v):7.0f} {max(v):7.0f}")
    print("\nfull stack: false alarms (confirmations before anyone talked to the device)")
    for s, frames in zip(scenes, decisions):
        onset = s["onset_frame"] if s["kind"] in ("interruption", "backchannel") else len(s["ref_active"])
        early = [f for f in frames if f < onset]
        if early:
            print(f"  {s['kind']:<12} #{s['index']:<6} echo {s['echo_over_user_db']:+5.1f} dB over the user, "
                  f"at {early[0] * FRAME_S:.2f} s ({'converged' if early[0] >= s['warm_from'] else 'converging'})")


def sweep(scenes: list[dict], config, jobs: int) -> None:
    """Recall, latency and false alarms over all echo levels for a grid of policy thresholds
    (p50 and p95 are the means over the three echo bins)."""
    cols = f"{'recall':>6} {'p50':>5} {'p95':>5} {'FA/h':>6} {'bc':>4}"
    print(f"{'':>37} | {'all (every scenario from a new canceller)':<30} | once the canceller has converged")
    print(f"{'tentative':>9} {'confirm':>7} {'frames':>6} {'converging':>10} | {cols} | {cols}")
    grid = []
    for tentative in (0.3, 0.5):
        for confirm in (0.5, 0.6, 0.7, 0.8):
            for frames in (2, 3):
                for converging in sorted({frames, 5, 8}):
                    if confirm >= tentative:
                        grid.append((config, tentative, confirm, frames, converging))
    _SCENES[:] = scenes
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
        for line in pool.map(_sweep_line, grid):
            print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="test")
    parser.add_argument("--config", help="device config TOML (policy thresholds)")
    parser.add_argument("--json", help="also write the table here")
    parser.add_argument("--sweep", action="store_true",
                        help="grid over the policy's thresholds (run it on --split val, not test)")
    parser.add_argument("--detail", action="store_true",
                        help="also latency per interruption text and every false alarm of the full stack")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes for --sweep")
    args = parser.parse_args()
    config = load_config(args.config)
    data = np.load(REPO / "models" / "bargein" / ".cache" / f"{args.split}.npz")
    offsets = data["offsets"]
    features = data["features"]
    scenes = []
    needed = round(config.aec.converge_s / FRAME_S)  # device-speech frames until the canceller is trusted
    for k, (a, b) in enumerate(zip(offsets, offsets[1:])):
        meta = json.loads(data["meta"][k])
        scenes.append({**meta, "onset_frame": int(data["onset_frames"][k]), "ref_active": data["ref_active"][a:b],
                       "vad_raw": data["vad_raw"][a:b].astype(np.float32), "vad_clean": features[a:b, -1].astype(np.float32),
                       "features": features[a:b].astype(np.float32),
                       "warm_from": int(np.searchsorted(np.cumsum(data["ref_active"][a:b]), needed))})
    if args.sweep:
        sweep(scenes, config, args.jobs)
        return
    rules = {
        "VAD only (Pipecat: >= 0.7 for 0.2 s)": [vad_rule(s["vad_raw"], 0.7, 0.2) for s in scenes],
        "VAD only (LiveKit: >= 0.5 for 0.5 s)": [vad_rule(s["vad_raw"], 0.5, 0.5) for s in scenes],
        "VAD + AEC (Pipecat's rule)": [vad_rule(s["vad_clean"], 0.7, 0.2) for s in scenes],
        "full stack (AEC + VAD + classifier + policy)":
            [stack_rule(s["features"], s["ref_active"], config) for s in scenes],
    }
    kinds = {k: sum(1 for s in scenes if s["kind"] == k) for k in dict.fromkeys(s["kind"] for s in scenes)}
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; split {args.split}: {len(scenes)} scenarios {kinds}"
          + ("; voices and rooms never trained on" if args.split == "test" else ""))
    tables = {}
    for warm, title in ((False, "every scenario, each from a new echo canceller"),
                        (True, f"once the canceller has converged ({config.aec.converge_s:.0f} s of device speech "
                               "into each scenario): what a running device sees")):
        results = [score(name, decisions, scenes, warm) for name, decisions in rules.items()]
        tables["warm" if warm else "all"] = results
        hours = sum(results[0]["bins"][b]["speech_hours"] for b, _, _ in BINS)
        print(f"\n== {title}; {hours:.2f} h of device speech with nobody talking to it")
        for label, _, _ in BINS:
            n = results[0]["bins"][label]["n"]
            print(f"\n{label} ({n} interruptions, {results[0]['bins'][label]['speech_hours']:.2f} h of device speech)")
            print(f"  {'policy':<46} {'recall':>6} {'p50 ms':>7} {'p95 ms':>7} {'false alarms/h':>15} "
                  f"{'backchannels that cancelled':>28}")
            for r in results:
                b = r["bins"][label]
                print(f"  {r['name']:<46} {b['recall']:6.2f} {b['p50']:7.0f} {b['p95']:7.0f} "
                      f"{b['fa_per_h']:10.1f} ({b['fa']:3d}) {b['backchannel_cancels']:>18d} of {b['backchannels']}")
    if args.detail:
        detail(rules["full stack (AEC + VAD + classifier + policy)"], scenes)
    print("\ntargets (full stack): recall >= 0.97 where echo <= user, >= 0.90 up to 20 dB louder; <= 1 false alarm/h; "
          "onset -> confirmed p50 <= 120 ms, p95 <= 200 ms")
    if args.json:
        Path(args.json).write_text(json.dumps(tables, indent=1))


if __name__ == "__main__":
    main()
