"""Barge-in figures from closed-loop replays: latency, recall, false alarms per hour.

    .venv/bin/python bench/bargein.py [--jobs 2] [--quick]
    .venv/bin/python bench/bargein.py --model M.onnx     # another classifier (an experiment)

Every scenario runs through `device.replay.replay` (the whole device, virtual clock,
echo loop). Interruptions, per level of the echo against the user, give recall and
onset -> tentative / confirmed / output -20 dB / output silent; the same users again with
their voices through a room, near and far (the others reach the mic dry, as if they stood
by the device), give recall and onset -> confirmed beside them. Sessions with nobody
talking to the device (its four answers, each followed by a second of silence, 45 s
with one echo canceller, as in a device that stays up) give false tentatives (audible ducks) and false
confirmations (the device interrupting itself) per hour of device speech, per level of
room noise (a quiet room is the hard case: nothing masks what the canceller leaves) and
per output-to-mic delay (the hardware's buffering: a USB mic and an I2S DAC on a Pi add
tens of milliseconds that the delay tracker has to find). Users who only backchannel
("mm-hmm", "yeah"), per echo level, give how often the device stopped for them instead of
ducking and carrying on (the default, `bargein.backchannels = "resume"`); users who
backchannel and then, 0.2-1 s later, talk to the device, how often the backchannel stopped
it and how soon the command after it did. Sessions with knocks in them, dry and through a
room, give false confirmations per hour again. Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "models" / "bargein"))

from replay_set import (ECHO_OVER_USER_DB, KNOCK_DIRECT_DB, KNOCK_PEAK_DBFS, KNOCK_ROOM_RT60_S,  # noqa: E402
                        NOISE_IN_RECORDINGS_DBFS, USER_ROOM_RT60_S, knock_session, make_backchannel_then_command,
                        make_backchannels, make_set, make_users_in_a_room, session, user_gain_for)

from device.config import Config, load_config, with_overrides  # noqa: E402
from device.listen.stack import ListeningStack, load_evidence  # noqa: E402
from device.replay import replay  # noqa: E402
from generate import TRAIN_VOICES  # noqa: E402  (models/bargein/generate.py: the classifier's training voices)

ROOMS = ("small", "none")


# Room noise for the sessions: the recordings hold pink noise at -55 dBFS, scaled here.
NOISE_DBFS = (-40.0, -55.0, -70.0)
# simulation.output_delay_ms for the sessions; the simulated device adds ~40 ms of its own
# (output buffering, loudspeaker filter): the tracker measures 65 ms at the default 24.
OUTPUT_DELAYS_MS = (0.0, 24.0, 60.0, 100.0)
SESSION_ORDERS = ([0, 1, 2, 3], [1, 2, 3, 0], [2, 3, 0, 1], [3, 0, 1, 2])
WARM_S = Config().aec.converge_s  # from here on in each replay the canceller has converged


def run_one(job: tuple) -> dict:
    """One replay in a worker process; returns its figures. `level` is the echo over the
    user (interruptions) or the room noise in dBFS (sessions)."""
    config_path, model, scenario, level, room, seed, delay_ms = job
    simulation = {"echo_gain_db": 0.0, "room": room, "seed": seed}
    if delay_ms is not None:
        simulation["output_delay_ms"] = delay_ms
    config = with_overrides(load_config(config_path), simulation=simulation)
    # another classifier is not in models/manifest.toml, so it does not go through the config
    stack = ListeningStack(config, evidence=load_evidence(config, model)) if model is not None else None
    gain = user_gain_for(level) if scenario.onset_s is not None else level - NOISE_IN_RECORDINGS_DBFS
    result = asyncio.run(replay(config, scenario.user_wav, scenario.answer_wav, onset_s=scenario.onset_s,
                                user_gain_db=gain, stack=stack))
    early = [e["t"] for e in result.events if e["event"] == "bargein_confirmed"
             and (scenario.onset_s is None or e["t"] < scenario.onset_s)]
    # The device stops at its first false confirmation: the device speech it was exposed to
    # ends there. Each replay starts with a new echo canceller; from WARM_S on it has
    # converged, as it has in a device that has been talking since start-up.
    exposed_s = scenario.speech_s(early[0] if early else (scenario.onset_s if scenario.onset_s is not None
                                                          else scenario.answer_s))
    return {
        "level": level,
        "delay_ms": delay_ms,
        "interrupt": (scenario.onset_s is not None and not scenario.backchannel and not scenario.after_backchannel
                      and not scenario.user_room),
        "user_room": scenario.user_room,
        "backchannel": scenario.backchannel,
        "after_backchannel": scenario.after_backchannel,
        "knocks": scenario.knocks,
        "voice": scenario.voice,
        "answer_s": scenario.answer_s,
        "tentative_ms": result.after_onset_ms(result.tentative_s),
        "confirmed_ms": result.after_onset_ms(result.confirmed_s),
        "minus20_ms": result.after_onset_ms(result.output_minus20db_s),
        "silent_ms": result.after_onset_ms(result.output_silent_s),
        "onset_s": scenario.onset_s,
        "false_confirms": int(bool(early)),
        "warm_false_confirms": int(bool(early) and scenario.speech_s(early[0]) >= WARM_S),
        "tentatives": result.tentatives,
        # speech the device played before anyone interrupted it (the exposure to false alarms)
        "exposure_s": exposed_s,
        "warm_exposure_s": max(0.0, exposed_s - WARM_S),
        "false_tentatives": sum(1 for e in result.events if e["event"] == "bargein_tentative"
                                and (scenario.onset_s is None or e["t"] < scenario.onset_s)),
    }


def _by_level(rows: list[dict], kind: str) -> list[tuple[float, list[dict]]]:
    """(echo over the user, the replays of users of `kind` at that level) for each echo level."""
    return [(echo_db, [r for r in rows if r[kind] and r["level"] == echo_db]) for echo_db in ECHO_OVER_USER_DB]


def _print_header(header: str) -> None:
    print(header)
    print("-" * len(header))


def _pct(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q):6.0f}" if values else "     -"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="config TOML to benchmark (default: built-in defaults)")
    parser.add_argument("--model", type=Path,
                        help="another barge-in classifier ONNX (an experiment; default: the shipped one)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="2 interruptions per answer, one session per noise level")
    parser.add_argument("--delay-ms", type=float,
                        help="simulation.output_delay_ms for the interruptions (default: the config's)")
    args = parser.parse_args()

    interrupts, _ = make_set(per_answer=2 if args.quick else 6)
    backchannels = make_backchannels(per_answer=2 if args.quick else 6)
    then_commands = make_backchannel_then_command(per_answer=2 if args.quick else 6)
    in_a_room = make_users_in_a_room(per_answer=2 if args.quick else 6)
    jobs = []
    for echo_db in ECHO_OVER_USER_DB:
        for i, scenario in enumerate(interrupts):
            jobs.append((args.config, args.model, scenario, echo_db, ROOMS[i % 2], i, args.delay_ms))
        for i, scenario in enumerate(backchannels):
            jobs.append((args.config, args.model, scenario, echo_db, ROOMS[i % 2], 500 + i, args.delay_ms))
        for i, scenario in enumerate(then_commands):
            jobs.append((args.config, args.model, scenario, echo_db, ROOMS[i % 2], 700 + i, args.delay_ms))
        for i, scenario in enumerate(in_a_room):  # the seeds of the same users dry: the same echo paths
            jobs.append((args.config, args.model, scenario, echo_db, ROOMS[i % 2], i % len(interrupts), args.delay_ms))
    sessions = [session(order) for order in SESSION_ORDERS[:1 if args.quick else None]]
    for noise_dbfs in NOISE_DBFS:
        for delay_ms in OUTPUT_DELAYS_MS[1:2] if args.quick else OUTPUT_DELAYS_MS:
            for i, scenario in enumerate(sessions):
                for room in ROOMS[:1] if args.quick else ROOMS:
                    seed = 1000 + 10 * i + ROOMS.index(room)
                    jobs.append((args.config, args.model, scenario, noise_dbfs, room, seed, delay_ms))
    knocking = [knock_session(order, where) for order in SESSION_ORDERS[:1 if args.quick else None]
                for where in ("dry", *KNOCK_DIRECT_DB)]
    for i, scenario in enumerate(knocking):
        for room in ROOMS[:1] if args.quick else ROOMS:
            seed = 1500 + 10 * i + ROOMS.index(room)
            jobs.append((args.config, args.model, scenario, NOISE_IN_RECORDINGS_DBFS, room, seed, None))
    started = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(run_one, jobs))
    elapsed = time.perf_counter() - started

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"model {args.model.name if args.model else 'the shipped classifier'}; "
          f"{len(jobs)} replays in {elapsed:.0f} s with {args.jobs} jobs\n")
    print(f"{len(interrupts)} interruptions (6 espeak-ng voices) per echo level; times in ms after the user's "
          "true onset")
    header = (f"{'echo-user':>9} | {'recall':>6} | {'tent p50':>8} {'p95':>6} | {'conf p50':>8} {'p95':>6} | "
              f"{'-20dB p50':>9} {'p95':>6} | {'silent p50':>10} {'p95':>6} | onset after {WARM_S:.0f} s: "
              "recalled, conf p50 p95")
    _print_header(header)
    for echo_db, hit in _by_level(rows, "interrupt"):
        confirmed = [r["confirmed_ms"] for r in hit if r["confirmed_ms"] is not None]
        tentative = [r["tentative_ms"] for r in hit if r["tentative_ms"] is not None]
        minus20 = [r["minus20_ms"] for r in hit if r["minus20_ms"] is not None]
        silent = [r["silent_ms"] for r in hit if r["silent_ms"] is not None]
        warm = [r for r in hit if r["onset_s"] >= WARM_S]
        warm_confirmed = [r["confirmed_ms"] for r in warm if r["confirmed_ms"] is not None]
        print(f"{echo_db:+7.0f}dB | {len(confirmed) / len(hit):6.2f} | {_pct(tentative, 50):>8} {_pct(tentative, 95)} | "
              f"{_pct(confirmed, 50):>8} {_pct(confirmed, 95)} | {_pct(minus20, 50):>9} {_pct(minus20, 95)} | "
              f"{_pct(silent, 50):>10} {_pct(silent, 95)} | {len(warm_confirmed)}/{len(warm)} "
              f"{_pct(warm_confirmed, 50)} {_pct(warm_confirmed, 95)}")
    before = [r for r in rows if r["interrupt"]]
    hours = sum(r["exposure_s"] for r in before) / 3600
    print(f"  before the users spoke ({hours * 60:.1f} min of device speech): "
          f"{sum(r['false_confirms'] for r in before) / hours:.1f} false confirmations/h, "
          f"{sum(r['false_tentatives'] for r in before) / hours:.0f} ducks/h")

    print(f"\nthe same users heard through a room (RT60 {USER_ROOM_RT60_S} s; near: the direct sound as loud as the "
          f"reverberation, a metre or two away; far: {-KNOCK_DIRECT_DB['far']:.0f} dB under it, across the room), "
          "at the same level and over the same echo paths; recall, onset -> confirmed p50 p95")
    header = f"{'echo-user':>9} | {'dry':>20} | {'near':>20} | {'far':>20}"
    _print_header(header)
    for echo_db, dry in _by_level(rows, "interrupt"):
        cells = []
        for group in (dry, *([r for r in rows if r["user_room"] == where and r["level"] == echo_db]
                             for where in KNOCK_DIRECT_DB)):
            confirmed = [r["confirmed_ms"] for r in group if r["confirmed_ms"] is not None]
            cells.append(f"{len(confirmed) / len(group):4.2f} {_pct(confirmed, 50)} {_pct(confirmed, 95)}"
                         if group else "-")
        print(f"{echo_db:+7.0f}dB | " + " | ".join(f"{cell:>20}" for cell in cells))

    print(f"\n{len(backchannels)} users who only backchannel (\"mm-hmm\", \"yeah\"; 6 espeak-ng voices) per echo "
          "level: the device should duck and carry on")
    header = f"{'echo-user':>9} | {'stopped':>7} | {'ducked, carried on':>18} | {'not ducked':>10}"
    _print_header(header)
    for echo_db, said in _by_level(rows, "backchannel"):
        stopped = sum(1 for r in said if r["confirmed_ms"] is not None)
        ducked = sum(1 for r in said if r["confirmed_ms"] is None and r["tentative_ms"] is not None)
        print(f"{echo_db:+7.0f}dB | {stopped:3d}/{len(said):<3d} | {ducked:14d}/{len(said):<3d} | "
              f"{len(said) - stopped - ducked:6d}/{len(said):<3d}")
    trained_on = {name for engine, name in TRAIN_VOICES if engine == "espeak"}
    print("stopped, by voice (all echo levels; * a voice the classifier trained on, at other pitches and speeds):")
    for voice in sorted({r["voice"] for r in rows if r["backchannel"]}):
        said = [r for r in rows if r["backchannel"] and r["voice"] == voice]
        stopped = sum(1 for r in said if r["confirmed_ms"] is not None)
        print(f"  {voice + ('*' if voice in trained_on else ''):<20} {stopped:3d}/{len(said)}")

    print(f"\n{len(then_commands)} users per echo level who backchannel, then talk to the device 0.2-1 s after it "
          "(\"Mm-hmm.\" ... \"Wait a second.\"); times in ms after the command's onset")
    header = f"{'echo-user':>9} | {'stopped before the command':>26} | {'command confirmed':>17} | {'conf p50':>8} {'p95':>6}"
    _print_header(header)
    for echo_db, said in _by_level(rows, "after_backchannel"):
        stopped = sum(r["false_confirms"] for r in said)
        confirmed = [r["confirmed_ms"] for r in said if not r["false_confirms"] and r["confirmed_ms"] is not None]
        print(f"{echo_db:+7.0f}dB | {stopped:20d}/{len(said):<3d}  | {len(confirmed):11d}/{len(said) - stopped:<3d}  | "
              f"{_pct(confirmed, 50):>8} {_pct(confirmed, 95)}")

    quiet = [r for r in rows if r["onset_s"] is None and not r["knocks"]]
    print(f"\nthe device talking, nobody else: {len(quiet)} sessions of {sessions[0].answer_s:.0f} s (four answers, "
          "one echo canceller each); 'ducks' are tentative barge-ins (audible dips), 'false conf' the device "
          "interrupting itself; a session ends at its first one")
    header = (f"{'':>21} | {'device speech':>13} | {'false conf/h':>12} | {'ducks/h':>7} | "
              f"after the first {WARM_S:.0f} s: false conf/h")
    for title, key, values, unit in (("room noise", "level", NOISE_DBFS, "dBFS"),
                                     ("output delay", "delay_ms", OUTPUT_DELAYS_MS, "ms")):
        print(f"\nby {title}\n{header}")
        for value in values:
            group = [r for r in quiet if r[key] == value]
            if not group:
                continue
            hours = sum(r["exposure_s"] for r in group) / 3600
            warm_hours = sum(r["warm_exposure_s"] for r in group) / 3600
            print(f"{title:>12} {value:4.0f} {unit:<4}| {hours * 60:9.1f} min | "
                  f"{sum(r['false_confirms'] for r in group) / hours:8.1f} ({sum(r['false_confirms'] for r in group):2d}) | "
                  f"{sum(r['false_tentatives'] for r in group) / hours:7.0f} | "
                  f"{sum(r['warm_false_confirms'] for r in group) / warm_hours:6.1f} "
                  f"({sum(r['warm_false_confirms'] for r in group)}) in {warm_hours * 60:.1f} min")

    knocked = [r for r in rows if r["knocks"]]
    print(f"\nknocks while the device talks, nobody else: {len(knocked)} sessions like those above (room noise "
          f"{NOISE_IN_RECORDINGS_DBFS:.0f} dBFS), a burst of 3-11 knocks every 3-6 s, peaks {KNOCK_PEAK_DBFS[0]:.0f} "
          f"to {KNOCK_PEAK_DBFS[1]:.0f} dBFS (the device's echo: -20 dBFS rms); the same bursts dry and "
          f"through a room (RT60 {KNOCK_ROOM_RT60_S} s; near: the direct sound as loud as the reverberation, far: "
          f"{-KNOCK_DIRECT_DB['far']:.0f} dB under it); a session ends at its first false confirmation")
    header = f"{'knocks':>15} | {'device speech':>13} | {'false conf/h':>12} | {'ducks/h':>7} | sessions interrupted"
    _print_header(header)
    for where, title in (("dry", "dry"), ("near", "room, near"), ("far", "room, far")):
        group = [r for r in knocked if r["knocks"] == where]
        if not group:
            continue
        hours = sum(r["exposure_s"] for r in group) / 3600
        confirms = sum(r["false_confirms"] for r in group)
        print(f"{title:>15} | {hours * 60:9.1f} min | {confirms / hours:8.1f} ({confirms:2d}) | "
              f"{sum(r['false_tentatives'] for r in group) / hours:7.0f} | {confirms}/{len(group)}")


if __name__ == "__main__":
    main()
