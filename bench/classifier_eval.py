"""Barge-in policies side by side on the held-out synthetic set (voices, rooms, device sentences).

    .venv/bin/python bench/classifier_eval.py [--split test] [--config FILE] [--detail]
    .venv/bin/python bench/classifier_eval.py --split val --sweep      # choose thresholds
    .venv/bin/python bench/classifier_eval.py --split val --model M.onnx   # an experiment
    .venv/bin/python bench/classifier_eval.py --split test,test-300000,...  # with extra shards

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
its hours of device speech end there), ducks per hour (the full stack's tentative
barge-ins with nobody talking: a 24 dB dip in the device's voice), how many
backchannels cancelled the device, and onset -> ducked p50/p95 for the full stack (when
the device's voice dips for the person: what they hear first; a confirmation may wait
longer, for a command that starts like "okay" or "mm" to show it is not a backchannel).

Two windows, because a running device differs from one that has just started: half the
scenarios start with a fresh echo canceller (as after start-up), half a few seconds into
the device's speech. "Running" counts what happens once the canceller has heard
aec.converge_s of the device (onsets, false alarms and device speech from then on);
"start-up" the rest, while the policy asks for more evidence.

Shards of `--kind sound_then_person` (a backchannel or a burst of knocks, then 0.1-2 s later
a person talking to the device: test-304000) are not in those tables; they get their own,
for the full stack: how often the sound cancelled the device, and how soon the person after
it is confirmed. `--detail` adds why the slow confirmations were slow (ducked late, or taken
for a backchannel first, or p(person) about the threshold), latency per interruption text,
and every false alarm. Prints figures; asserts nothing.
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
from device.listen.bargein import BargeInPolicy, EvidenceMemory  # noqa: E402
from device.listen.classifier import REWIND_FRAMES  # noqa: E402
from device.listen.features import VAD_INDEX  # noqa: E402
from device.listen.stack import decide, load_evidence  # noqa: E402
from device.models import verified_path  # noqa: E402

FRAME_S = 0.032
RECALL_WINDOW_FRAMES = int(1.5 / FRAME_S)
BINS = [("echo <= user", -10.1, 0.0), ("echo 0..10 dB louder", 0.0, 10.0), ("echo 10..20 dB louder", 10.0, 20.1)]
WINDOWS = {"running": "running device: the canceller has converged", "startup": "start-up: the canceller is new"}
FULL = "full stack (AEC + VAD + classifier + policy)"
SOUND_THEN_PERSON = "sound_then_person"  # models/bargein/generate.py: a backchannel or knocks, then a person


def load_scenes(split: str, converge_s: float) -> list[dict]:
    """The scenarios of a split, each with its frames and where its canceller counts as converged."""
    path = REPO / "models" / "bargein" / ".cache" / f"{split}.npz"
    if not path.exists():
        base, _, start = split.partition("-")
        shard = f" --start {start} --count N [--kind K]" if start else ""
        sys.exit(f"{path} is missing: generate it with models/bargein/generate.py --split {base}{shard} "
                 "(models/bargein/retrain.sh makes every split and shard)")
    data = np.load(path)
    offsets, features = data["offsets"], data["features"]
    lead_in = data["lead_in_playing"] if "lead_in_playing" in data else np.zeros(len(offsets) - 1, int)
    needed = round(converge_s / FRAME_S)  # device-speech frames until the canceller is trusted
    scenes = []
    for k, (a, b) in enumerate(zip(offsets, offsets[1:])):
        played = np.cumsum(data["ref_active"][a:b]) + int(lead_in[k])
        scenes.append({**json.loads(data["meta"][k]), "onset_frame": int(data["onset_frames"][k]),
                       "ref_active": data["ref_active"][a:b], "lead_in_playing": int(lead_in[k]),
                       "vad_raw": data["vad_raw"][a:b].astype(np.float32),
                       "vad_clean": features[a:b, VAD_INDEX].astype(np.float32),
                       "features": features[a:b].astype(np.float32),
                       "warm_from": 0 if lead_in[k] >= needed else int(np.searchsorted(played, needed))})
    return scenes


def stack_rule(scene: dict, config, model: Path, ducks: list[int] | None = None,
               restart_at: int | None = None, replay: int = 0, probs: list | None = None) -> list[int]:
    """Frames at which the full stack confirms: the classifier and the policy frame by frame,
    as on the device (device/listen/stack.py): cautious while the canceller is new, the
    classifier forgetting rejected sounds as the device's EvidenceMemory says (back to before a
    backchannel, afresh after other sounds rejected for silence); after a confirmation both start
    afresh, as when the device speaks again. The frames of its tentative barge-ins (where
    the device ducks) go into `ducks`. `restart_at`: the classifier also restarts at that
    frame, then hears again the `replay` frames before it (bench/classifier_restart.py).
    `probs`: gets the classifier's (nobody, person, backchannel) probabilities of every frame."""
    classifier = load_evidence(config, model)  # a BargeInClassifier: a model is given
    policy = BargeInPolicy(config.bargein)
    memory = EvidenceMemory(config.bargein, REWIND_FRAMES)
    convergence = ConvergenceWatch(config.aec.converge_s, config.aec.resume_caution_s)
    for _ in range(scene["lead_in_playing"]):
        convergence.update(True)
    out = []
    for i, frame in enumerate(scene["features"]):
        if i == restart_at:
            classifier.restart()
            for earlier in scene["features"][max(0, i - replay) : i]:
                classifier.update_features(earlier)
        evidence = classifier.update_features(frame)
        if probs is not None:
            probs.append(classifier.probabilities.copy())
        playing = bool(scene["ref_active"][i])
        cautious = convergence.update(playing)
        decisions = decide(policy, memory, classifier, i * FRAME_S, float(frame[VAD_INDEX]), evidence, active=True,
                           cautious=cautious, playing=playing)
        for decision in decisions:
            if decision.kind == "bargein_tentative" and ducks is not None:
                ducks.append(i)
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


def confirmed_ms(scene: dict, frames: list[int]) -> float | None:
    """Onset -> the first confirmation within the recall window, or None (a miss)."""
    onset = scene["onset_frame"]
    after = next((f for f in frames if onset <= f <= onset + RECALL_WINDOW_FRAMES), None)
    return None if after is None else ((after + 1) * FRAME_S - scene["onset_s"]) * 1000


def tally(decisions: list[list[int]], scenes: list[dict], window: str, ducks: list[list[int]] | None,
          select=lambda s: True) -> dict:
    """Counts and latencies over the selected scenarios, in one window (running/start-up)."""
    t = {"hits": 0, "n": 0, "latencies": [], "duck_latencies": [], "fa": 0, "hours": 0.0, "speech_hours": 0.0,
         "ducks": 0, "backchannels": 0, "backchannel_cancels": 0}
    for s, frames, duck in zip(scenes, decisions, ducks or [None] * len(scenes)):
        if not select(s):
            continue
        lo, hi = (s["warm_from"], len(s["ref_active"])) if window == "running" else (0, s["warm_from"])
        person = s["kind"] in ("interruption", "backchannel")
        onset = s["onset_frame"] if person else len(s["ref_active"])
        if person and not lo <= onset < hi:
            continue  # this person belongs to the other window; so do the frames before them
        end = min(onset, hi)
        # The device stops at its first false alarm: at most one per scenario, and the
        # device speech it was exposed to ends there.
        first_false = next((f for f in frames if lo <= f < end), None)
        t["fa"] += first_false is not None
        heard_until = end if first_false is None else first_false + 1
        t["hours"] += float(np.sum(s["ref_active"][lo:heard_until])) * FRAME_S / 3600
        t["speech_hours"] += float(np.sum(s["ref_active"][lo:end])) * FRAME_S / 3600
        if duck is not None:
            t["ducks"] += sum(1 for f in duck if lo <= f < heard_until)
        if s["kind"] == "interruption":
            t["n"] += 1
            latency = confirmed_ms(s, frames)
            if latency is not None:
                t["hits"] += 1
                t["latencies"].append(latency)
            if duck is not None and (ducked := confirmed_ms(s, duck)) is not None:
                t["duck_latencies"].append(ducked)
        elif s["kind"] == "backchannel":
            t["backchannels"] += 1
            t["backchannel_cancels"] += any(f >= onset for f in frames)
    lat, ducked = t.pop("latencies"), t.pop("duck_latencies")
    hours = max(1e-9, t["hours"])
    return {**t, "recall": t["hits"] / max(1, t["n"]),
            "p50": float(np.percentile(lat, 50)) if lat else float("nan"),
            "p95": float(np.percentile(lat, 95)) if lat else float("nan"),
            "ducked_p50": float(np.percentile(ducked, 50)) if ducked else float("nan"),
            "ducked_p95": float(np.percentile(ducked, 95)) if ducked else float("nan"),
            "fa_per_h": t["fa"] / hours, "ducks_per_h": t["ducks"] / hours if ducks is not None else float("nan")}


def by_bin(decisions, scenes, window, ducks=None) -> dict[str, dict]:
    """tally() per echo level, and over all of them ("all")."""
    rows = {label: tally(decisions, scenes, window, ducks, lambda s, lo=lo, hi=hi: lo < s["echo_over_user_db"] <= hi)
            for label, lo, hi in BINS}
    rows["all"] = tally(decisions, scenes, window, ducks)
    return rows


_SCENES: list[dict] = []  # the sweep's scenarios, inherited by its worker processes


def _sweep_line(job: tuple) -> str:
    config, model, tentative, confirm, frames, converging = job
    cfg = with_overrides(config, bargein={"tentative_user_prob": tentative, "confirm_user_prob": confirm,
                                          "confirm_frames": frames, "converging_confirm_frames": converging})
    ducks: list[list[int]] = [[] for _ in _SCENES]
    decisions = [stack_rule(s, cfg, model, d) for s, d in zip(_SCENES, ducks)]
    line = f"{tentative:9.1f} {confirm:7.1f} {frames:6d} {converging:10d}"
    for window in WINDOWS:
        r = tally(decisions, _SCENES, window, ducks)
        line += (f" | {r['recall']:6.3f} {r['p50']:5.0f} {r['p95']:5.0f} {r['fa_per_h']:6.1f} {r['ducks_per_h']:5.0f}"
                 f" {r['backchannel_cancels']:4d}")
    return line


def sweep(scenes: list[dict], config, model: Path, jobs: int) -> None:
    """Recall, latency and false alarms over all echo levels for a grid of policy thresholds."""
    cols = f"{'recall':>6} {'p50':>5} {'p95':>5} {'FA/h':>6} {'duck':>5} {'bc':>4}"
    print(f"{'':>37} | {WINDOWS['running'][:37]:<37} | {WINDOWS['startup']}")
    print(f"{'tentative':>9} {'confirm':>7} {'frames':>6} {'converging':>10} | {cols} | {cols}")
    grid = []
    for tentative in (0.3, 0.5, 0.6):
        for confirm in (0.5, 0.6, 0.7, 0.8):
            for frames in (2, 3):
                for converging in sorted({frames, 5, 8}):
                    if confirm >= tentative:
                        grid.append((config, model, tentative, confirm, frames, converging))
    _SCENES[:] = scenes
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
        for line in pool.map(_sweep_line, grid):
            print(line, flush=True)


SLOW_MS = 200  # the p95 target: what counts as a slow confirmation in --detail


def why_slow(scene: dict, frames: list[int], ducks: list[int], probs: np.ndarray) -> str | None:
    """Why a running interruption was confirmed after SLOW_MS or not at all (None: it was not):
    the device ducked late (under the echo, more than 160 ms after the onset), or it ducked in
    time and the classifier took the person for a backchannel first (p(backchannel) above
    p(person) in 3 of the 10 frames from the duck, someone surely talking), or it ducked in
    time and p(person) stayed about the confirming threshold."""
    latency = confirmed_ms(scene, frames)
    if latency is not None and latency <= SLOW_MS:
        return None
    onset = scene["onset_frame"]
    duck = next((f for f in ducks if onset <= f <= onset + 4), None)
    if duck is None:
        return "ducked late, under the echo"
    first = probs[duck : duck + 10]
    if np.sum((first[:, 2] > first[:, 1]) & (first[:, 1] + first[:, 2] >= 0.6)) >= 3:
        return "ducked in time, taken for a backchannel first"
    return "ducked in time, p(person) about the threshold"


def detail(decisions: list[list[int]], scenes: list[dict], ducks: list[list[int]],
           probs: list[np.ndarray | None]) -> None:
    """Where the full stack is slow or wrong: why interruptions were slow, latency per
    interruption text, and every false alarm."""
    running = [k for k, s in enumerate(scenes) if s["kind"] == "interruption" and s["onset_frame"] >= s["warm_from"]]
    reasons: dict[str, list[float]] = {}
    for k in running:
        reason = why_slow(scenes[k], decisions[k], ducks[k], probs[k])
        if reason is not None:
            reasons.setdefault(reason, []).append(scenes[k]["echo_over_user_db"])
    print(f"\nfull stack, running device: why {sum(map(len, reasons.values()))} of {len(running)} interruptions "
          f"were not confirmed within {SLOW_MS} ms")
    for reason, echoes in sorted(reasons.items(), key=lambda r: -len(r[1])):
        print(f"  {reason:<48} {len(echoes):4d}  (echo over the user: median {np.median(echoes):+.1f} dB)")
    by_text: dict[str, list[float]] = {}
    misses: dict[str, int] = {}
    for s, frames in zip(scenes, decisions):
        if s["kind"] != "interruption" or s["onset_frame"] < s["warm_from"]:
            continue
        latency = confirmed_ms(s, frames)
        if latency is not None:
            by_text.setdefault(s["text"], []).append(latency)
        else:
            misses[s["text"]] = misses.get(s["text"], 0) + 1
            by_text.setdefault(s["text"], [])
    print("\nfull stack, running device: onset -> confirmed per interruption, slowest first")
    print(f"  {'text':<40} {'n':>3} {'missed':>6} {'p50 ms':>7} {'max ms':>7}")
    for text in sorted(by_text, key=lambda t: -np.median(by_text[t] or [1e9])):
        v = by_text[text] or [float("nan")]
        print(f"  {text:<40} {len(by_text[text]):3d} {misses.get(text, 0):6d} {np.median(v):7.0f} {max(v):7.0f}")
    print("\nfull stack: false alarms (confirmations before anyone talked to the device)")
    for s, frames in zip(scenes, decisions):
        onset = s["onset_frame"] if s["kind"] in ("interruption", "backchannel") else len(s["ref_active"])
        early = [f for f in frames if f < onset]
        if early:
            print(f"  {s['kind']:<12} #{s['index']:<6} echo {s['echo_over_user_db']:+5.1f} dB over the user, "
                  f"room {s['room'][0]:.1f} m, RT60 {s['rt60_s']:.2f} s, output delay {s['output_delay_ms']:.0f} ms, "
                  f"at {early[0] * FRAME_S:.2f} s ({'running' if early[0] >= s['warm_from'] else 'start-up'})")


def sound_then_person(decisions: list[list[int]], scenes: list[dict]) -> None:
    """The full stack on a person who talks to the device 0.1-2 s after a backchannel or a burst
    of knocks (running device): whether the sound cancelled the device first, and how soon the
    person is confirmed (after a cancellation the stack starts afresh, as the device would when
    it next speaks, so the person still counts)."""
    print("\nfull stack, running device: a person 0.1-2 s after another sound "
          f"(--kind {SOUND_THEN_PERSON} shards)")
    print(f"  {'before the person':<20} {'n':>4} {'the sound cancelled':>20} {'recall':>6} {'p50 ms':>7} {'p95 ms':>7}")
    for before in ("backchannel", "knocks", "all"):
        rows = [(s, f) for s, f in zip(scenes, decisions) if s["onset_frame"] >= s["warm_from"]
                and before in (s["before"], "all")]
        if not rows:
            continue
        cancelled = sum(any(s["warm_from"] <= f < s["onset_frame"] for f in frames) for s, frames in rows)
        latencies = [ms for s, frames in rows if (ms := confirmed_ms(s, frames)) is not None]
        p50, p95 = np.percentile(latencies, [50, 95]) if latencies else (float("nan"),) * 2
        print(f"  {before:<20} {len(rows):4d} {cancelled:20d} {len(latencies) / len(rows):6.2f} {p50:7.0f} {p95:7.0f}")


def print_window(window: str, results: dict[str, dict]) -> None:
    first = next(iter(results.values()))
    print(f"\n== {WINDOWS[window]}; {first['all']['speech_hours']:.2f} h of device speech with nobody talking to it, "
          f"{first['all']['n']} interruptions")
    for label in [b[0] for b in BINS] + ["all"]:
        b0 = first[label]
        print(f"\n{label} ({b0['n']} interruptions, {b0['speech_hours']:.2f} h of device speech)")
        print(f"  {'policy':<46} {'recall':>6} {'p50 ms':>7} {'p95 ms':>7} {'false alarms/h':>15} "
              f"{'ducks/h':>7} {'backchannels that cancelled':>28} {'ducked p50/p95 ms':>18}")
        for name, rows in results.items():
            b = rows[label]
            ducks = "-" if np.isnan(b["ducks_per_h"]) else f"{b['ducks_per_h']:.0f}"
            ducked = "-" if np.isnan(b["ducked_p50"]) else f"{b['ducked_p50']:.0f} / {b['ducked_p95']:.0f}"
            print(f"  {name:<46} {b['recall']:6.2f} {b['p50']:7.0f} {b['p95']:7.0f} "
                  f"{b['fa_per_h']:10.1f} ({b['fa']:3d}) {ducks:>7} {b['backchannel_cancels']:>18d} of "
                  f"{b['backchannels']:<3d} {ducked:>18}")


def against_targets(rows: dict[str, dict]) -> None:
    """The issue's targets for the full stack on a running device: met or not, with the figure."""
    low, mid, high = (rows[label] for label, _, _ in BINS)
    every = rows["all"]
    checks = [
        ("recall >= 0.97 where echo <= user", low["recall"] >= 0.97, f"{low['recall']:.3f}"),
        ("recall >= 0.90 with echo up to 20 dB louder", min(mid["recall"], high["recall"]) >= 0.90,
         f"{mid['recall']:.3f} / {high['recall']:.3f}"),
        ("false alarms <= 1 per hour of device speech", every["fa_per_h"] <= 1.0,
         f"{every['fa_per_h']:.1f}/h ({every['fa']} in {every['hours']:.2f} h)"),
        ("onset -> confirmed p50 <= 120 ms", every["p50"] <= 120, f"{every['p50']:.0f} ms"),
        ("onset -> confirmed p95 <= 200 ms", every["p95"] <= 200, f"{every['p95']:.0f} ms"),
    ]
    print("\ntargets, full stack on a running device:")
    for what, ok, figure in checks:
        print(f"  {'met    ' if ok else 'NOT MET'}  {what}: {figure}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="test",
                        help="a split, or several .cache files' names with commas (test,test-300000: extra shards)")
    parser.add_argument("--config", help="device config TOML (policy thresholds)")
    parser.add_argument("--model", type=Path, help="another classifier ONNX (an experiment; default: the shipped one)")
    parser.add_argument("--json", help="also write the tables here")
    parser.add_argument("--sweep", action="store_true",
                        help="grid over the policy's thresholds (run it on --split val, not test)")
    parser.add_argument("--detail", action="store_true",
                        help="also latency per interruption text and every false alarm of the full stack")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes for --sweep")
    args = parser.parse_args()
    config = load_config(args.config)
    model = args.model or verified_path(config.bargein.classifier_model)
    splits = args.split.split(",")
    scenes = [s for split in splits for s in load_scenes(split, config.aec.converge_s)]
    sequences = [s for s in scenes if s["kind"] == SOUND_THEN_PERSON]  # reported on their own
    scenes = [s for s in scenes if s["kind"] != SOUND_THEN_PERSON]
    if args.sweep:
        sweep(scenes, config, model, args.jobs)
        return
    full_ducks: list[list[int]] = [[] for _ in scenes]
    # the classifier's outputs, kept for --detail (interruptions only: the rest is not needed)
    traces = [[] if args.detail and s["kind"] == "interruption" else None for s in scenes]
    rules = {
        "VAD only (Pipecat: >= 0.7 for 0.2 s)": [vad_rule(s["vad_raw"], 0.7, 0.2) for s in scenes],
        "VAD only (LiveKit: >= 0.5 for 0.5 s)": [vad_rule(s["vad_raw"], 0.5, 0.5) for s in scenes],
        "VAD + AEC (Pipecat's rule)": [vad_rule(s["vad_clean"], 0.7, 0.2) for s in scenes],
        FULL: [stack_rule(s, config, model, ducks, probs=probs) for s, ducks, probs in zip(scenes, full_ducks, traces)],
    }
    kinds = {k: sum(1 for s in scenes if s["kind"] == k) for k in dict.fromkeys(s["kind"] for s in scenes)}
    held_out = all(name.startswith("test") for name in splits)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; model {model.name}; split {args.split}: "
          f"{len(scenes)} scenarios {kinds}" + (f" + {len(sequences)} {SOUND_THEN_PERSON}" if sequences else "")
          + ("; voices, rooms and device sentences never trained on" if held_out else ""))
    tables = {}
    for window in WINDOWS:
        results = {name: by_bin(decisions, scenes, window, full_ducks if name == FULL else None)
                   for name, decisions in rules.items()}
        tables[window] = results
        print_window(window, results)
    if args.detail:
        detail(rules[FULL], scenes, full_ducks, [None if t is None else np.array(t) for t in traces])
    against_targets(tables["running"][FULL])
    if sequences:
        sound_then_person([stack_rule(s, config, model) for s in sequences], sequences)
    if args.json:
        Path(args.json).write_text(json.dumps(tables, indent=1))


if __name__ == "__main__":
    main()
